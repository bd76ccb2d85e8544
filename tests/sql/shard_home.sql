-- wallets_player_at_home (sql/0008.shards.sql, procedures/_wallet_check_home.sql): on a shard, a player wallet
-- opens only for a player whose partition the shard holds, whoever posts (the proxy routes by player; a DBA
-- posting on the wrong shard directly is refused instead of splitting a player over two shards). On a
-- database that is no shard every player is at home.
BEGIN;
SELECT plan(11);

-- two players of partition 0 and 1 of 2 (hashtext & 1), none with a wallet yet
CREATE TEMP TABLE p AS
SELECT (SELECT u FROM (SELECT 'home_' || n AS u FROM generate_series(1, 100) n) x WHERE hashtext(u) & 1 = 0 LIMIT 1) AS home,
       (SELECT u FROM (SELECT 'away_' || n AS u FROM generate_series(1, 100) n) x WHERE hashtext(u) & 1 = 1 LIMIT 1) AS away;

SELECT has_trigger('wallets', 'wallets_player_at_home', 'the guard is a trigger on wallets');

-- no shard_identity row: every player is at home
SELECT lives_ok(format($$SELECT wallet_topup(%L, 'GOLD_COINS', 5, 'sh_plain')$$, (SELECT away FROM p)),
                'a database that is no shard opens any player''s wallet');

INSERT INTO shard_identity (name, partition_count, partitions) VALUES ('s0', 2, '{0}');

SELECT lives_ok(format($$SELECT wallet_topup(%L, 'GOLD_COINS', 5, 'sh_home')$$, (SELECT home FROM p)),
                'on shard s0 (partition 0 of 2) a player of partition 0 opens a wallet');
SELECT is(pg_temp.error_of(format($$SELECT wallet_topup(%L, 'DIAMONDS', 5, 'sh_away')$$, (SELECT away FROM p)))
              ->> 'sqlstate', 'WL008',
          'a player of partition 1 does not: WL008');
SELECT is(pg_temp.error_of(format($$SELECT wallet_bonus(%L, 'DIAMONDS', 5, 'sh_away_b', 'WELCOME')$$,
                                  (SELECT away FROM p))) ->> 'message',
          format('player %s does not live on shard s0 (partition 1 of 2; this shard holds 0)', (SELECT away FROM p)),
          'the message names the player, the shard and the partitions');
SELECT is(pg_temp.error_of(format($$SELECT wallet_bonus(%L, 'DIAMONDS', 5, 'sh_away_b', 'WELCOME')$$,
                                  (SELECT away FROM p))) ->> 'detail',
          json_build_object('user_id', (SELECT away FROM p), 'shard', 's0', 'partition', 1)::text,
          'the JSON detail too');
SELECT is((SELECT count(*)::integer FROM transactions WHERE reference_id IN ('sh_away', 'sh_away_b')), 0,
          'nothing was posted');
SELECT is(pg_temp.error_of(format($$SELECT * FROM wallet_post_batch('[{"operation": "topup", "user_id": %s, "asset_code": "DIAMONDS", "amount": 1, "reference_id": "sh_batch"}]')$$,
                                  to_jsonb((SELECT away FROM p)))) ->> 'sqlstate', 'WL008',
          'a batch that would open an away player''s wallet is refused whole');
SELECT lives_ok(format($$SELECT wallet_topup(%L, 'GOLD_COINS', 5, 'sh_existing')$$, (SELECT away FROM p)),
                'a wallet already there (opened before the database became a shard) still takes postings');
SELECT is((SELECT count(*)::integer FROM wallets WHERE user_id = (SELECT away FROM p) AND asset_code = 'DIAMONDS'), 0,
          'and no wallet of the away player was opened');
SELECT ok(EXISTS (SELECT 1 FROM wallet_shard_verify() v WHERE v.invariant = 'player_not_home'
                                                      AND v.subject = 's0:' || (SELECT away FROM p) || '/GOLD_COINS'),
          'verify names the wallet opened before (player_not_home)');

SELECT * FROM finish();
ROLLBACK;
