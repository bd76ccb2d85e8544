-- wallet_shard_owner: whose a reference id is in the key directory: the player it was first claimed for, or NULL.
BEGIN;
SELECT plan(8);

SELECT has_function('wallet_shard_owner', ARRAY['text'], 'wallet_shard_owner exists');
SELECT is(wallet_shard_owner('ow_1'), NULL, 'a key nobody claimed: NULL');
SELECT is(wallet_shard_owner('init_alice_gold_001'), NULL,
          'a key posted here but never claimed in the directory: NULL (the directory alone answers)');

SELECT lives_ok($$SELECT * FROM wallet_shard_claim('{ow_1,ow_2}', '{user_dora,user_eve}')$$, 'two keys claimed');
SELECT is(wallet_shard_owner('ow_1'), 'user_dora', 'a claimed key: its owner');
SELECT lives_ok($$SELECT * FROM wallet_shard_claim('{ow_1}', '{user_gina}')$$, 'claimed again for another player');
SELECT is(ARRAY[wallet_shard_owner('ow_1'), wallet_shard_owner('ow_2'), wallet_shard_owner('OW_1'), wallet_shard_owner(NULL)],
          ARRAY['user_dora', 'user_eve', NULL, NULL], 'still its first owner; each key its own; case-sensitive; NULL: NULL');

SET LOCAL ROLE wallet_app;
CREATE TEMP TABLE app_owner AS SELECT wallet_shard_owner('ow_2') AS owner;
RESET ROLE;
SELECT is((SELECT owner FROM app_owner), 'user_eve', 'wallet_app may ask (it may not read the directory itself)');

SELECT * FROM finish();
ROLLBACK;
