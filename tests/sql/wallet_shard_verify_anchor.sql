-- wallet_shard_verify_anchor: wallet_verify_anchor() of one shard, given every head the proxy has: only the heads
-- of players at home here are checked (wallet ids are per shard), each violation's subject prefixed with the
-- shard's name.
BEGIN;
SELECT plan(17);

SELECT has_function('wallet_shard_verify_anchor', ARRAY['jsonb'], 'wallet_shard_verify_anchor exists');

-- dora (partition 0 of 2) gets a wallet; the seed players are all of partition 1 of 2
SELECT lives_ok($$SELECT wallet_topup('user_dora', 'GOLD_COINS', 30, 'va_dora', 'card')$$, 'dora tops up');
SELECT is(ARRAY(SELECT DISTINCT user_id::text || ':' || (hashtext(user_id) & 1) FROM wallets WHERE kind = 'PLAYER' ORDER BY 1),
          ARRAY['user_alice:1', 'user_bob:1', 'user_charlie:1', 'user_dora:0'], 'dora is of partition 0 of 2, the others of 1');
CREATE TEMP TABLE anchor AS SELECT jsonb_agg(to_jsonb(h) ORDER BY h.wallet_id) AS heads FROM wallet_chain_heads() h;
CREATE TEMP TABLE w AS SELECT pg_temp.wallet_of('user_dora', 'GOLD_COINS') AS dora, pg_temp.wallet_of('user_alice', 'GOLD_COINS') AS alice;

SELECT is_empty($$SELECT * FROM wallet_shard_verify_anchor((SELECT heads FROM anchor))$$,
                'no shard identity: every head holds, no row');
INSERT INTO shard_identity (name, partition_count, partitions) VALUES ('s0', 2, '{0}');
SELECT is_empty($$SELECT * FROM wallet_shard_verify_anchor((SELECT heads FROM anchor))$$, 'a shard of partition 0: no row');

-- a superuser forges the newest entry of dora (at home) and of alice (not at home)
SET LOCAL session_replication_role = replica;
UPDATE ledger_entries SET entry_hash = sha256('forged'::bytea)
 WHERE id IN (SELECT max(e.id) FROM ledger_entries e, w WHERE e.wallet_id IN (w.dora, w.alice) GROUP BY e.wallet_id);
SET LOCAL session_replication_role = origin;

SELECT is(ARRAY(SELECT subject FROM wallet_verify_anchor((SELECT heads FROM anchor)) ORDER BY 1),
          ARRAY(SELECT x::text FROM w, unnest(ARRAY[w.dora, w.alice]) x ORDER BY 1),
          'wallet_verify_anchor: both anchored heads no longer hold');
SELECT results_eq($$SELECT invariant, subject, detail FROM wallet_shard_verify_anchor((SELECT heads FROM anchor))$$,
                  $$SELECT a.invariant, 's0:' || a.subject, a.detail FROM wallet_verify_anchor((SELECT heads FROM anchor)) a, w
                     WHERE a.subject = w.dora::text$$,
                  'on the shard: only dora''s (at home) is reported, its subject prefixed "s0:"; alice''s head is ignored');
SELECT is((SELECT detail FROM wallet_shard_verify_anchor((SELECT heads FROM anchor))),
          (SELECT format('anchored entry %s of wallet %s had hash %s, now %s', h ->> 'entry_id', w.dora, h ->> 'entry_hash',
                         encode(sha256('forged'::bytea), 'hex'))
             FROM jsonb_array_elements((SELECT heads FROM anchor)) h, w WHERE (h ->> 'wallet_id')::bigint = w.dora),
          'with wallet_verify_anchor''s detail');

-- wallet ids are per shard: a head of another shard's player may name a wallet id of this one
SELECT is_empty(format($$SELECT * FROM wallet_shard_verify_anchor('[{"wallet_id": %s, "entry_id": 999999, "entry_hash": "00", "user_id": "user_bob"}]')$$,
                       (SELECT dora FROM w)),
                'a head of a player not at home naming a wallet id of this shard: ignored');
SELECT is(ARRAY(SELECT subject FROM wallet_shard_verify_anchor(format(
              '[{"wallet_id": %1$s, "entry_id": 999999, "entry_hash": "00", "user_id": "user_dora"}, {"wallet_id": %1$s, "entry_id": 999998, "entry_hash": "00"}]',
              (SELECT dora FROM w))::jsonb)),
          ARRAY(SELECT 's0:' || dora FROM w UNION ALL SELECT 's0:' || dora FROM w),
          'the same head of a player at home is checked (gone), and so is a head that names no player');
SELECT is(hashtext('1') & 1, 1, '(the text 1 is of partition 1 of 2)');
SELECT is(ARRAY(SELECT subject FROM wallet_shard_verify_anchor(format(
              '[{"wallet_id": %s, "entry_id": 999999, "entry_hash": "00", "user_id": 1}]', (SELECT dora FROM w))::jsonb)),
          ARRAY(SELECT 's0:' || dora FROM w),
          'a head whose user_id is no string (so names no player) is checked too, not taken for player "1"');
SELECT is_empty($$SELECT * FROM wallet_shard_verify_anchor('[]')$$, 'no heads: no row');

SELECT throws_ok($$SELECT * FROM wallet_shard_verify_anchor('{"wallet_id": 1}')$$, 'WL006',
    'invalid argument heads: must be a JSON array of {wallet_id, entry_id, entry_hash}', 'no array: WL006 as wallet_verify_anchor');
SELECT throws_ok($$SELECT * FROM wallet_shard_verify_anchor('[{"wallet_id": 1, "user_id": "user_dora"}]')$$, 'WL006',
    'invalid argument heads: must be a JSON array of {wallet_id, entry_id, entry_hash}',
    'a malformed head of a player at home: WL006');

GRANT SELECT ON anchor TO wallet_app;
SET LOCAL ROLE wallet_app;
CREATE TEMP TABLE app_anchor AS SELECT * FROM wallet_shard_verify_anchor((SELECT heads FROM anchor));
RESET ROLE;
SELECT is((SELECT array_agg(subject) FROM app_anchor), ARRAY(SELECT 's0:' || dora FROM w), 'wallet_app may run it');

DELETE FROM shard_identity;
SELECT is(ARRAY(SELECT subject FROM wallet_shard_verify_anchor((SELECT heads FROM anchor)) ORDER BY 1),
          ARRAY(SELECT current_database() || ':' || x FROM w, unnest(ARRAY[w.dora, w.alice]) x ORDER BY 1),
          'no shard identity: every player is at home, both reported, prefixed with the database''s name');

SELECT * FROM finish();
ROLLBACK;
