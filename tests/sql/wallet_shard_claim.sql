-- wallet_shard_claim: the key directory claims each valid reference id for its player unless it is claimed
-- already, and says whose each one is now: the first claim wins for good, of two claims of one key in one call
-- the earlier; an invalid key is not claimed; wallet_app may run it but not touch the directory itself.
BEGIN;
SELECT plan(20);

SELECT has_function('wallet_shard_claim', ARRAY['text[]', 'text[]'], 'wallet_shard_claim exists');
SELECT is((SELECT count(*) FROM reference_directory)::int, 0, 'the directory starts empty');

SELECT results_eq($$SELECT * FROM wallet_shard_claim('{cl_1,cl_2}', '{user_dora,user_eve}') ORDER BY 1$$,
                  $$VALUES ('cl_1', 'user_dora'), ('cl_2', 'user_eve')$$,
                  'two new keys: each claimed for its player, and said so');
SELECT results_eq($$SELECT reference_id::text, user_id::text FROM reference_directory ORDER BY 1$$,
                  $$VALUES ('cl_1', 'user_dora'), ('cl_2', 'user_eve')$$, 'both are in the directory');
CREATE TEMP TABLE claimed AS SELECT * FROM reference_directory;
SELECT results_eq($$SELECT * FROM wallet_shard_claim('{cl_1}', '{user_dora}')$$, $$VALUES ('cl_1', 'user_dora')$$,
                  'claimed again for the same player: the same owner');
SELECT results_eq($$SELECT * FROM wallet_shard_claim('{cl_1,cl_3}', '{user_gina,user_gina}') ORDER BY 1$$,
                  $$VALUES ('cl_1', 'user_dora'), ('cl_3', 'user_gina')$$,
                  'a claimed key for another player: its first owner; a new key in the same call: the caller''s');
SELECT set_eq($$SELECT reference_id, user_id, created_at FROM reference_directory WHERE reference_id <> 'cl_3'$$,
              $$SELECT reference_id, user_id, created_at FROM claimed$$,
              'the earlier claims are unchanged (owner and time)');

SELECT results_eq($$SELECT * FROM wallet_shard_claim('{cl_dup,cl_4,cl_dup}', '{user_eve,user_dora,user_dora}') ORDER BY 1$$,
                  $$VALUES ('cl_4', 'user_dora'), ('cl_dup', 'user_eve')$$,
                  'one key twice in one call: one row, the earlier claim wins');
SELECT results_eq($$SELECT * FROM wallet_shard_claim('{cl_dup2,cl_dup2}', '{user_gina,user_eve}')$$,
                  $$VALUES ('cl_dup2', 'user_gina')$$, 'whichever of the two players it names first');
SELECT is((SELECT user_id::text FROM reference_directory WHERE reference_id = 'cl_dup'), 'user_eve',
          'the directory has the earlier claim');

-- invalid keys (and players) are not claimed; the valid ones of the same call are
SELECT results_eq(
    format($$SELECT * FROM wallet_shard_claim(ARRAY[NULL, '', %L, E'cl_\u200bhidden', E'cl_ctl\x01', 'cl_ok'],
                                               ARRAY['user_dora', 'user_dora', 'user_dora', 'user_dora', 'user_dora', 'user_dora'])$$,
           repeat('k', 129)),
    $$VALUES ('cl_ok', 'user_dora')$$,
    'NULL, empty, too long or unprintable keys: not claimed, no row; the valid key of the call is');
SELECT results_eq(format($$SELECT * FROM wallet_shard_claim(ARRAY[%L], ARRAY['user_dora'])$$, repeat('k', 128)),
                  format($$VALUES (%L, 'user_dora')$$, repeat('k', 128)), 'a key of the longest length is claimed');
SELECT is_empty(format($$SELECT * FROM wallet_shard_claim('{cl_p1,cl_p2,cl_p3,cl_p4}', ARRAY[NULL, '', %L, E'user\x01'])$$,
                       repeat('u', 129)),
                'a key for an invalid player (NULL, empty, too long, unprintable): not claimed');
SELECT is(ARRAY(SELECT reference_id::text FROM reference_directory ORDER BY 1),
          ARRAY['cl_1', 'cl_2', 'cl_3', 'cl_4', 'cl_dup', 'cl_dup2', 'cl_ok', repeat('k', 128)],
          'the directory holds exactly the valid claims');

SELECT throws_ok($$SELECT * FROM wallet_shard_claim('{cl_5,cl_6}', '{user_dora}')$$, 'WL006',
    'invalid argument user_ids: must have one player per reference id', 'arrays of different lengths: WL006');
SELECT throws_ok($$SELECT * FROM wallet_shard_claim('{cl_5}', NULL)$$, 'WL006',
    'invalid argument user_ids: must have one player per reference id', 'keys without players: WL006');
SELECT is((SELECT count(*) FROM reference_directory WHERE reference_id IN ('cl_5', 'cl_6'))::int, 0,
          'and nothing claimed');

-- wallet_app (the proxy calls with the caller's rights) may claim, but not read or write the directory itself
SET LOCAL ROLE wallet_app;
SELECT results_eq($$SELECT * FROM wallet_shard_claim('{cl_app,cl_1}', '{user_eve,user_eve}') ORDER BY 1$$,
                  $$VALUES ('cl_1', 'user_dora'), ('cl_app', 'user_eve')$$, 'wallet_app claims keys');
SELECT throws_ok($$SELECT * FROM reference_directory$$, '42501', 'permission denied for table reference_directory',
    'wallet_app cannot SELECT the directory');
SELECT throws_ok($$UPDATE reference_directory SET user_id = 'user_eve'$$, '42501',
    'permission denied for table reference_directory', 'nor change an owner');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
