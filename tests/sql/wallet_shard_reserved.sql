-- wallet_shard_reserved: a key the proxy's directory gives to another player: returns when the key is taken on
-- this shard (a transaction or a hold: the function called next answers WL004 itself), else WL004 "reserved";
-- either way after the key's advisory lock (_wallet_claim_key's), held to the end of the transaction.
BEGIN;
SELECT plan(11);

-- the advisory locks of the two-integer form this session holds, as 'key1/key2' (key2 as an unsigned oid), sorted
CREATE FUNCTION pg_temp.advisory_locks() RETURNS text[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(format('%s/%s', l.classid, l.objid) ORDER BY format('%s/%s', l.classid, l.objid)), '{}')
      FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.pid = pg_backend_pid() AND l.granted
$$;
CREATE FUNCTION pg_temp.sorted(p text[]) RETURNS text[] LANGUAGE sql AS $$ SELECT array_agg(x ORDER BY x) FROM unnest(p) x $$;

SELECT has_function('wallet_shard_reserved', ARRAY['text', 'text'], 'wallet_shard_reserved exists');

SELECT lives_ok($$SELECT wallet_shard_reserved('init_bob_gold_001', 'user_bob')$$,
    'a key a transaction holds here: returns');
SELECT lives_ok($$SELECT wallet_hold('user_charlie', 'GOLD_COINS', 10, 'rs_hold')$$, 'charlie places a hold');
CREATE TEMP TABLE locks_after_hold AS SELECT pg_temp.advisory_locks() AS l;
SELECT lives_ok($$SELECT wallet_shard_reserved('rs_hold', 'user_charlie')$$, 'a key a hold holds here: returns');

SELECT throws_ok($$SELECT wallet_shard_reserved('rs_free', 'user_eve')$$, 'WL004',
    'reference id rs_free is reserved for user_eve', 'a key nothing holds here: WL004, reserved for its owner');
SELECT is(pg_temp.error_of($$SELECT wallet_shard_reserved('rs_free', 'user_eve')$$) ->> 'detail',
          '{"reference_id" : "rs_free", "user_id" : "user_eve"}', 'with the key and its owner as JSON detail');
SELECT throws_ok($$SELECT wallet_shard_reserved('INIT_BOB_GOLD_001', 'user_bob')$$, 'WL004',
    'reference id INIT_BOB_GOLD_001 is reserved for user_bob', 'keys are case-sensitive');

-- the lock: the one _wallet_claim_key takes for the key (so it waits for a posting of the key in flight)
SELECT is(pg_temp.advisory_locks(), (SELECT l FROM locks_after_hold),
          'for the hold''s key it took no lock the hold (_wallet_claim_key) had not taken already');
CREATE TEMP TABLE locks_before AS SELECT pg_temp.advisory_locks() AS l;
SELECT lives_ok($$SELECT wallet_shard_reserved('init_alice_gold_001', 'user_alice')$$, 'a key not locked yet');
SELECT is(pg_temp.advisory_locks(),
          pg_temp.sorted((SELECT l FROM locks_before)
                         || format('1464615748/%s', hashtext('init_alice_gold_001')::bigint & 4294967295)),
          'it holds that key''s advisory lock (1464615748, hashtext(key)) to the end of the transaction');

SET LOCAL ROLE wallet_app;
SELECT lives_ok($$SELECT wallet_shard_reserved('init_bob_gold_001', 'user_bob')$$,
    'wallet_app may run it (the proxy calls it with the caller''s rights), though it may read no table');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
