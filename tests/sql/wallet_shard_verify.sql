-- wallet_shard_verify: wallet_verify() of this shard with every subject prefixed by the shard's name, plus the
-- shard's own invariants: shard_identity_missing (never set up as a shard) and player_not_home (a player wallet
-- whose partition is not one of this shard's).
BEGIN;
SELECT plan(12);

-- wallet_shard_verify() as sorted 'invariant|subject|detail' lines
CREATE FUNCTION pg_temp.shard_violations() RETURNS text[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(concat_ws('|', v.invariant, v.subject, v.detail) ORDER BY concat_ws('|', v.invariant, v.subject, v.detail)), '{}')
      FROM wallet_shard_verify() v
$$;
-- Run p_sql (the damage), collect wallet_verify() and wallet_shard_verify() as sorted lines, then undo the damage
-- (the wallet_verify test's way: an exception caught in this block rolls back to before p_sql).
CREATE FUNCTION pg_temp.both_after(p_sql text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_found jsonb;
BEGIN
    BEGIN
        EXECUTE p_sql;
        v_found := jsonb_build_object(
            'verify', (SELECT coalesce(jsonb_agg(concat_ws('|', v.invariant, v.subject, v.detail) ORDER BY concat_ws('|', v.invariant, v.subject, v.detail)), '[]')
                         FROM wallet_verify() v),
            'shard', to_jsonb(pg_temp.shard_violations()));
        RAISE EXCEPTION 'undo' USING ERRCODE = 'WLTST';
    EXCEPTION WHEN SQLSTATE 'WLTST' THEN
        RETURN v_found;
    END;
END;
$$;

SELECT has_function('wallet_shard_verify', 'wallet_shard_verify exists');

-- ---------------------------------------------------------------- no shard identity
SELECT is(pg_temp.shard_violations(),
          ARRAY[format('shard_identity_missing|%s|this database was never set up as a shard (wallet-service shards init)',
                       current_database())],
          'a database that is no shard: shard_identity_missing naming the database, and nothing else');

SET CONSTRAINTS ALL IMMEDIATE;
SET CONSTRAINTS ALL DEFERRED;
SELECT is((SELECT pg_temp.both_after($$
              SET LOCAL session_replication_role = replica;  -- the deferred stored-balance check is off
              UPDATE wallets SET balance = 49999 WHERE user_id = 'user_bob';
           $$) -> 'shard'),
          jsonb_build_array(
              format('shard_identity_missing|%s|this database was never set up as a shard (wallet-service shards init)',
                     current_database()),
              format('stored_balance_mismatch|%s:%s|wallet of user_bob in GOLD_COINS stores 49999, its entries sum to 50000',
                     current_database(), pg_temp.wallet_of('user_bob', 'GOLD_COINS'))),
          'and a wallet_verify violation there is prefixed with the database''s name');

-- ---------------------------------------------------------------- a shard holding every seed player
-- (the seed players user_alice, user_bob, user_charlie are all of partition 1 of 2)
SELECT is(ARRAY(SELECT DISTINCT hashtext(user_id) & 1 FROM wallets WHERE kind = 'PLAYER'), ARRAY[1],
          'every seed player is of partition 1 of 2');
INSERT INTO shard_identity (name, partition_count, partitions) VALUES ('s1', 2, '{1}');
SELECT is(pg_temp.shard_violations(), '{}'::text[], 'a shard with a clean ledger, every player at home: no row');

-- a wallet_verify violation, prefixed with the shard's name
SET CONSTRAINTS ALL IMMEDIATE;
SET CONSTRAINTS ALL DEFERRED;
CREATE TEMP TABLE damaged AS SELECT pg_temp.both_after($$
    SET LOCAL session_replication_role = replica;  -- the deferred stored-balance check is off
    UPDATE wallets SET balance = 25001 WHERE user_id = 'user_charlie';
$$) AS found;
SELECT is((SELECT found -> 'verify' FROM damaged),
          jsonb_build_array(format('stored_balance_mismatch|%s|wallet of user_charlie in GOLD_COINS stores 25001, its entries sum to 25000',
                                   pg_temp.wallet_of('user_charlie', 'GOLD_COINS'))),
          'the damage: wallet_verify reports a stored_balance_mismatch ...');
SELECT is((SELECT found -> 'shard' FROM damaged),
          jsonb_build_array(format('stored_balance_mismatch|s1:%s|wallet of user_charlie in GOLD_COINS stores 25001, its entries sum to 25000',
                                   pg_temp.wallet_of('user_charlie', 'GOLD_COINS'))),
          '... which wallet_shard_verify reports with the subject prefixed "s1:"');
SELECT is(pg_temp.shard_violations(), '{}'::text[], 'the damage is undone');

-- ---------------------------------------------------------------- players not at home
UPDATE shard_identity SET name = 's0', partitions = '{0}';
SELECT is(pg_temp.shard_violations(),
          ARRAY['player_not_home|s0:user_alice/DIAMONDS|partition 1 of 2 is not one of this shard''s (0)',
                'player_not_home|s0:user_alice/GOLD_COINS|partition 1 of 2 is not one of this shard''s (0)',
                'player_not_home|s0:user_bob/GOLD_COINS|partition 1 of 2 is not one of this shard''s (0)',
                'player_not_home|s0:user_charlie/GOLD_COINS|partition 1 of 2 is not one of this shard''s (0)'],
          'a shard of partition 0 of 2: every seed player''s wallet is player_not_home, as shard:user/asset');
SELECT is(ARRAY(SELECT user_id::text || ':' || (hashtext(user_id) & 3) FROM wallets WHERE kind = 'PLAYER'
                 GROUP BY user_id ORDER BY 1),
          ARRAY['user_alice:3', 'user_bob:1', 'user_charlie:3'], 'of 4 partitions: alice and charlie 3, bob 1');
UPDATE shard_identity SET name = 's13', partition_count = 4, partitions = '{1,3}';
SELECT is(pg_temp.shard_violations(), '{}'::text[], 'a shard of partitions 1 and 3 of 4: every player at home');
UPDATE shard_identity SET name = 's023', partition_count = 4, partitions = '{0,2,3}';
SELECT is(pg_temp.shard_violations(),
          ARRAY['player_not_home|s023:user_bob/GOLD_COINS|partition 1 of 4 is not one of this shard''s (0,2,3)'],
          'a shard of partitions 0, 2 and 3 of 4: only bob is not at home');

SELECT * FROM finish();
ROLLBACK;
