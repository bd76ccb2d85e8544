-- wallet_balances: a player's balances, all assets held or exactly one asset.
BEGIN;
SELECT plan(16);

SELECT has_function('wallet_balances', ARRAY['text', 'text'], 'wallet_balances exists');

SELECT results_eq(
    $$SELECT asset_code, asset_name, balance FROM wallet_balances('user_alice')$$,
    $$VALUES ('GOLD_COINS', 'Gold Coins', 100000::bigint), ('DIAMONDS', 'Diamonds', 500::bigint)$$,
    'every asset the player holds, in the order the wallets were opened, with names and balances');
SELECT results_eq(
    $$SELECT asset_code, balance FROM wallet_balances('user_bob')$$,
    $$VALUES ('GOLD_COINS', 50000::bigint)$$, 'bob holds only gold coins');
SELECT is((SELECT last_updated FROM wallet_balances('user_alice', 'GOLD_COINS')),
    (SELECT updated_at FROM wallets WHERE user_id = 'user_alice' AND asset_code = 'GOLD_COINS'),
    'last_updated is the wallet''s last change');
SELECT results_eq(
    $$SELECT asset_code, asset_name, balance, last_updated FROM wallet_balances('user_alice', 'LOYALTY_POINTS')$$,
    $$VALUES ('LOYALTY_POINTS', 'Loyalty Points', 0::bigint, NULL::timestamptz)$$,
    'an asset the player never held: exactly one row, balance 0, last_updated NULL');
SELECT results_eq(
    $$SELECT asset_code, balance FROM wallet_balances('user_alice', 'DIAMONDS')$$,
    $$VALUES ('DIAMONDS', 500::bigint)$$, 'with an asset: exactly that one row');

-- balances follow postings
SELECT lives_ok($$SELECT wallet_topup('user_bob', 'DIAMONDS', 7, 'bal_topup_1', 'card')$$, 'bob buys diamonds');
SELECT lives_ok($$SELECT wallet_spend('user_bob', 'GOLD_COINS', 1000, 'bal_spend_1', 'cape')$$, 'bob spends gold');
SELECT results_eq(
    $$SELECT asset_code, balance, last_updated FROM wallet_balances('user_bob')$$,
    $$VALUES ('GOLD_COINS', 49000::bigint, now()), ('DIAMONDS', 7::bigint, now())$$,
    'the new wallet is listed after the older one, both with their new balance and time');

SELECT results_eq(
    $$SELECT balance FROM wallet_balances(p_asset_code => 'DIAMONDS', p_user_id => 'user_bob')$$,
    $$VALUES (7::bigint)$$, 'callable with named arguments');

SELECT throws_ok($$SELECT * FROM wallet_balances('user_nobody')$$, 'WL002',
    'player user_nobody has no wallet', 'a player with no wallet at all is WL002');
SELECT throws_ok($$SELECT * FROM wallet_balances('user_nobody', 'GOLD_COINS')$$, 'WL002',
    'player user_nobody has no wallet', 'also when an asset is given');
SELECT throws_ok($$SELECT * FROM wallet_balances('user_alice', 'PEARLS')$$, 'WL003',
    'asset PEARLS not found', 'an unknown asset is WL003');
SELECT throws_ok($$SELECT * FROM wallet_balances(NULL)$$, 'WL006',
    'invalid argument user_id: is required', 'a null user_id');
SELECT throws_ok($$SELECT * FROM wallet_balances('')$$, 'WL006',
    'invalid argument user_id: must be a non-empty string of at most 128 characters', 'an empty user_id');
SELECT throws_ok(format('SELECT * FROM wallet_balances(%L)', repeat('x', 129)), 'WL006',
    'invalid argument user_id: must be a non-empty string of at most 128 characters', 'a 129-character user_id');

SELECT * FROM finish();
ROLLBACK;
