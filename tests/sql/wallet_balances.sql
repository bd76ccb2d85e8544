-- wallet_balances: a player's balances, all assets held or exactly one asset, with what active holds reserve;
-- or the balances as they stood at an instant.
BEGIN;
SELECT plan(33);

SELECT has_function('wallet_balances', ARRAY['text', 'text', 'timestamptz'], 'wallet_balances exists');

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
    $$VALUES ('GOLD_COINS', 49000::bigint, (SELECT created_at FROM transactions WHERE reference_id = 'bal_spend_1')),
             ('DIAMONDS', 7::bigint, (SELECT created_at FROM transactions WHERE reference_id = 'bal_topup_1'))$$,
    'the new wallet is listed after the older one, both with their new balance and the time of their last posting');

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

-- ---------------------------------------------------------------- held and available

SELECT results_eq($$SELECT asset_code, balance, held, available FROM wallet_balances('user_bob')$$,
    $$VALUES ('GOLD_COINS', 49000::bigint, 0::bigint, 49000::bigint), ('DIAMONDS', 7::bigint, 0::bigint, 7::bigint)$$,
    'no hold: held 0, available = balance');
SELECT lives_ok($$SELECT wallet_hold('user_bob', 'GOLD_COINS', 1500, 'bal_hold_1', 600),
                         wallet_hold('user_bob', 'GOLD_COINS', 500, 'bal_hold_2', 1),
                         wallet_hold('user_bob', 'DIAMONDS', 7, 'bal_hold_3', 600),
                         wallet_hold('user_bob', 'GOLD_COINS', 100, 'bal_hold_4', 600)$$,
    'bob places four holds');
SELECT lives_ok($$SELECT wallet_void('bal_hold_4')$$, 'and voids one');
SELECT results_eq($$SELECT asset_code, balance, held, available FROM wallet_balances('user_bob')$$,
    $$VALUES ('GOLD_COINS', 49000::bigint, 2000::bigint, 47000::bigint), ('DIAMONDS', 7::bigint, 7::bigint, 0::bigint)$$,
    'held sums the active holds of each asset (not the voided one); available = balance - held');
SELECT results_eq($$SELECT asset_code, balance, held, available FROM wallet_balances('user_alice', 'LOYALTY_POINTS')$$,
    $$VALUES ('LOYALTY_POINTS', 0::bigint, 0::bigint, 0::bigint)$$, 'an asset never held: all 0');
SELECT pg_sleep(1.1);
SELECT results_eq($$SELECT asset_code, held, available FROM wallet_balances('user_bob', 'GOLD_COINS')$$,
    $$VALUES ('GOLD_COINS', 1500::bigint, 47500::bigint)$$, 'a hold past expires_at counts no more');

-- ---------------------------------------------------------------- at an instant

CREATE TEMP TABLE instants (name text PRIMARY KEY, at timestamptz);
INSERT INTO instants VALUES ('before', clock_timestamp());
SELECT lives_ok($$SELECT wallet_topup('user_bob', 'GOLD_COINS', 11, 'bal_at_1', 'card')$$, 'bob buys 11 gold');
INSERT INTO instants VALUES ('between', clock_timestamp());
SELECT lives_ok($$SELECT wallet_topup('user_bob', 'LOYALTY_POINTS', 3, 'bal_at_2', 'card'),
                         wallet_spend('user_bob', 'GOLD_COINS', 1, 'bal_at_3', 'pin')$$,
    'then opens a loyalty wallet and spends 1 gold');
INSERT INTO instants VALUES ('after', clock_timestamp());

SELECT results_eq(
    $$SELECT asset_code, asset_name, balance, held, available, last_updated
        FROM wallet_balances('user_bob', p_at => (SELECT at FROM instants WHERE name = 'before'))$$,
    $$VALUES ('GOLD_COINS', 'Gold Coins', 49000::bigint, NULL::bigint, NULL::bigint,
              (SELECT created_at FROM transactions WHERE reference_id = 'bal_spend_1')),
             ('DIAMONDS', 'Diamonds', 7::bigint, NULL::bigint, NULL::bigint,
              (SELECT created_at FROM transactions WHERE reference_id = 'bal_topup_1'))$$,
    'at an instant: each balance as it stood, held and available NULL, last_updated the time of that entry');
SELECT results_eq(
    $$SELECT asset_code, balance FROM wallet_balances('user_bob', p_at => (SELECT at FROM instants WHERE name = 'between'))$$,
    $$VALUES ('GOLD_COINS', 49011::bigint), ('DIAMONDS', 7::bigint)$$,
    'between two postings: the first counted, the wallet opened later not listed');
SELECT results_eq(
    $$SELECT asset_code, balance FROM wallet_balances('user_bob', p_at => (SELECT at FROM instants WHERE name = 'after'))$$,
    $$VALUES ('GOLD_COINS', 49010::bigint), ('DIAMONDS', 7::bigint), ('LOYALTY_POINTS', 3::bigint)$$,
    'after them: every posting counted, the new wallet listed');
SELECT results_eq(
    $$SELECT asset_code, balance, last_updated FROM wallet_balances('user_bob', 'LOYALTY_POINTS',
                                                                    (SELECT at FROM instants WHERE name = 'between'))$$,
    $$VALUES ('LOYALTY_POINTS', 0::bigint, NULL::timestamptz)$$,
    'a wallet opened after the instant, asked for by name: one row, balance 0, last_updated NULL');
SELECT results_eq(
    $$SELECT asset_code, balance FROM wallet_balances('user_bob', 'GOLD_COINS',
                                                      (SELECT created_at FROM transactions WHERE reference_id = 'bal_at_1'))$$,
    $$VALUES ('GOLD_COINS', 49011::bigint)$$, 'an entry made exactly at the instant counts');
SELECT is_empty($$SELECT * FROM wallet_balances('user_bob', p_at => '2000-01-01')$$,
    'before the player''s first entry: no rows');
SELECT results_eq($$SELECT balance, last_updated FROM wallet_balances('user_bob', 'GOLD_COINS', '2000-01-01')$$,
    $$VALUES (0::bigint, NULL::timestamptz)$$, '... or one row of 0 for a named asset');
SELECT throws_ok($$SELECT * FROM wallet_balances('user_nobody', p_at => now())$$, 'WL002',
    'player user_nobody has no wallet', 'at an instant, a player with no wallet at all is still WL002');
SELECT throws_ok($$SELECT * FROM wallet_balances('user_bob', 'PEARLS', now())$$, 'WL003',
    'asset PEARLS not found', 'and an unknown asset WL003');

SELECT * FROM finish();
ROLLBACK;
