-- wallet_shard_seed: wallet_seed() of one shard for the proxy: the opening balances of the demo players at home
-- here only, each with its reference id and player; idempotent. wallet_seed is filtered the same way. Neither
-- is for wallet_app (they mint credits).
BEGIN;
SELECT plan(18);

-- the seed rows of the players at home under this shard_identity, as 'reference_id|user_id', in seed order
CREATE FUNCTION pg_temp.home_seed() RETURNS text[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(s.reference_id || '|' || s.user_id ORDER BY s.n), '{}')
      FROM _wallet_seed_rows() s, shard_identity i
     WHERE (hashtext(s.user_id) & (i.partition_count - 1)) = ANY (i.partitions)
$$;

SELECT has_function('wallet_shard_seed', 'wallet_shard_seed exists');
SELECT ok(NOT has_function_privilege('wallet_app', 'wallet_shard_seed()', 'EXECUTE'), 'wallet_app may not execute it');
SET LOCAL ROLE wallet_app;
SELECT throws_ok($$SELECT * FROM wallet_shard_seed()$$, '42501', 'permission denied for function wallet_shard_seed',
    'wallet_app cannot seed through it (it mints credits)');
RESET ROLE;

-- ---------------------------------------------------------------- the seeded template, no shard identity
SELECT results_eq($$SELECT reference_id, user_id, posting FROM wallet_shard_seed()$$,
                  $$SELECT s.reference_id, s.user_id, to_jsonb(p) FROM _wallet_seed_rows() s
                      JOIN wallet_seed() p ON p.transaction_id = pg_temp.tx(s.reference_id) ORDER BY s.n$$,
                  'no shard identity: every seed player, in seed order, each with its wallet_posting row as JSON');
SELECT is(ARRAY(SELECT (posting ->> 'replayed')::boolean FROM wallet_shard_seed()), ARRAY[true, true, true, true],
          'all four replayed: the template is seeded already');

-- ---------------------------------------------------------------- partition 0 of 2: no seed player lives there
INSERT INTO shard_identity (name, partition_count, partitions) VALUES ('s0', 2, '{0}');
SELECT is(pg_temp.home_seed(), '{}'::text[], 'every seed player is of partition 1 of 2');
SELECT is_empty($$SELECT * FROM wallet_shard_seed()$$, 'a shard of partition 0 of 2: nothing to seed, no row');
SELECT is_empty($$SELECT * FROM wallet_seed()$$, 'nor for wallet_seed');

-- ---------------------------------------------------------------- an unseeded shard of partition 3 of 4
-- (undo the template's seed with the guarding triggers off: no transaction, entry, inbox row, player wallet)
SET LOCAL session_replication_role = replica;
DELETE FROM event_inbox;
DELETE FROM ledger_entries;
DELETE FROM transactions;
DELETE FROM wallets WHERE kind = 'PLAYER';
SET LOCAL session_replication_role = origin;
UPDATE shard_identity SET name = 's3', partition_count = 4, partitions = '{3}';
SELECT is(pg_temp.home_seed(), ARRAY['init_alice_gold_001|user_alice', 'init_alice_diamonds_001|user_alice',
                                     'init_charlie_gold_001|user_charlie'],
          'alice and charlie are of partition 3 of 4, bob is not');

CREATE TEMP TABLE first_seed AS SELECT * FROM wallet_shard_seed();
SELECT is(ARRAY(SELECT reference_id || '|' || user_id FROM first_seed), pg_temp.home_seed(),
          'a shard of partition 3 of 4: the opening balances of exactly its players, in seed order');
SELECT results_eq(
    $$SELECT (f.posting ->> 'transaction_id')::uuid, f.posting ->> 'user_id', f.posting ->> 'asset_code',
             (f.posting ->> 'amount')::bigint, (f.posting ->> 'balance')::bigint, f.posting ->> 'transaction_type',
             (f.posting ->> 'replayed')::boolean
        FROM first_seed f$$,
    $$SELECT t.id, t.user_id::text, t.asset_code, t.amount::bigint, t.amount::bigint, t.type::text, false
        FROM transactions t JOIN _wallet_seed_rows() s ON s.reference_id = t.reference_id ORDER BY s.n$$,
    'each posted (not replayed): its posting is the new INITIAL_BALANCE transaction of its reference id');
SELECT is(ARRAY(SELECT reference_id::text FROM transactions ORDER BY 1),
          ARRAY['init_alice_diamonds_001', 'init_alice_gold_001', 'init_charlie_gold_001'],
          'nothing else is posted: bob is not seeded here');
SELECT lives_ok('SET CONSTRAINTS ALL IMMEDIATE', 'the deferred checks pass');
SET CONSTRAINTS ALL DEFERRED;
SELECT is_empty($$SELECT * FROM wallet_shard_verify()$$, 'the shard verifies: a healthy ledger, every player at home');

SELECT results_eq($$SELECT reference_id, user_id, posting FROM wallet_shard_seed()$$,
                  $$SELECT reference_id, user_id, posting || '{"replayed": true}' FROM first_seed$$,
                  'the second time: the same postings, replayed');
SELECT is((SELECT count(*) FROM ledger_entries)::int, 6, 'and nothing new written');

-- wallet_seed filters the same way: on a shard of partition 1 of 4 it posts bob only
UPDATE shard_identity SET name = 's1', partitions = '{1}';
SELECT results_eq($$SELECT user_id, asset_code, amount, replayed FROM wallet_seed()$$,
                  $$VALUES ('user_bob', 'GOLD_COINS', 50000::bigint, false)$$,
                  'wallet_seed on a shard of partition 1 of 4: bob''s opening balance only, posted');
SELECT is((SELECT count(*) FROM transactions)::int, 4, 'one transaction more');

SELECT * FROM finish();
ROLLBACK;
