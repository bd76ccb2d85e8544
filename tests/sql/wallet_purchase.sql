-- wallet_purchase: player -> REVENUE in 1 to 3 assets at once, all legs or none, needing what active holds
-- leave available, idempotent per reference id (same player, item and price in any order).
BEGIN;
SELECT plan(80);

SELECT has_function('wallet_purchase', ARRAY['text', 'text', 'text', 'jsonb', 'jsonb', 'text'], 'wallet_purchase exists');

-- ---------------------------------------------------------------- a two-asset purchase

CREATE TEMP TABLE first_purchase AS
SELECT * FROM wallet_purchase('user_alice', 'buy_001', 'dragon_bundle',
    '[{"asset_code": "GOLD_COINS", "amount": 100}, {"asset_code": "DIAMONDS", "amount": 5}]', '{"promo": "spring"}');

SELECT results_eq(
    $$SELECT user_id, transaction_type, item_id, asset_code, amount, balance, replayed FROM first_purchase$$,
    $$VALUES ('user_alice', 'PURCHASE'::transaction_type, 'dragon_bundle', 'DIAMONDS', 5::bigint, 495::bigint, false),
             ('user_alice', 'PURCHASE'::transaction_type, 'dragon_bundle', 'GOLD_COINS', 100::bigint, 99900::bigint, false)$$,
    'one row per leg, in asset order: the amount and the player''s balance right after, replayed = false');
SELECT results_eq($$SELECT DISTINCT transaction_id, created_at FROM first_purchase$$,
    $$SELECT id, created_at FROM transactions WHERE reference_id = 'buy_001'$$,
    'every leg carries the one transaction''s id and time');
SELECT ok((SELECT bool_and(created_at > now() AND created_at < clock_timestamp()) FROM first_purchase),
    'created_at is the clock under the wallets'' locks, not the start of the transaction');
SELECT results_eq(
    $$SELECT type, user_id::text, asset_code, amount::bigint, legs, item_id::text, metadata, description, actor,
             original_id, reason::text
        FROM transactions WHERE reference_id = 'buy_001'$$,
    $$VALUES ('PURCHASE'::transaction_type, 'user_alice', NULL::text, NULL::bigint,
              '[{"asset_code": "DIAMONDS", "amount": 5}, {"asset_code": "GOLD_COINS", "amount": 100}]'::jsonb,
              'dragon_bundle', '{"promo": "spring"}'::jsonb, 'Purchase: dragon_bundle', session_user::text COLLATE "default",
              NULL::uuid, NULL::text)$$,
    'the transaction: type PURCHASE, no single asset or amount, the legs sorted by asset, item, metadata, actor');
SELECT results_eq(
    $$SELECT e.asset_code, w.kind, w.user_id::text, e.amount, e.balance_after::bigint
        FROM ledger_entries e JOIN wallets w ON w.id = e.wallet_id
       WHERE e.transaction_id = pg_temp.tx('buy_001') ORDER BY e.asset_code, w.kind$$,
    $$VALUES ('DIAMONDS', 'PLAYER'::wallet_kind, 'user_alice', -5::bigint, 495::bigint),
             ('DIAMONDS', 'REVENUE'::wallet_kind, NULL, 5::bigint, NULL::bigint),
             ('GOLD_COINS', 'PLAYER'::wallet_kind, 'user_alice', -100::bigint, 99900::bigint),
             ('GOLD_COINS', 'REVENUE'::wallet_kind, NULL, 100::bigint, NULL::bigint)$$,
    'double entry per leg: the player debited (with balance_after), that asset''s REVENUE credited');
SELECT results_eq($$SELECT DISTINCT created_at FROM ledger_entries WHERE transaction_id = pg_temp.tx('buy_001')$$,
    $$SELECT created_at FROM transactions WHERE reference_id = 'buy_001'$$,
    'every entry has the transaction''s time');
SELECT results_eq($$SELECT asset_code, balance, held, available FROM wallet_balances('user_alice')$$,
    $$VALUES ('GOLD_COINS', 99900::bigint, 0::bigint, 99900::bigint), ('DIAMONDS', 495::bigint, 0::bigint, 495::bigint)$$,
    'the player''s balances drop in both assets');
SELECT results_eq(
    $$SELECT asset_code, balance FROM wallet_system_balances WHERE kind = 'REVENUE' ORDER BY asset_code$$,
    $$VALUES ('DIAMONDS', 5::bigint), ('GOLD_COINS', 100::bigint), ('LOYALTY_POINTS', 0::bigint)$$,
    'REVENUE received both legs');
SELECT results_eq(
    $$SELECT type, amount, balance_after, reference_id, description, original_reference_id
        FROM wallet_history('user_alice', 'DIAMONDS', 1)$$,
    $$VALUES ('PURCHASE'::transaction_type, 5::bigint, 495::bigint, 'buy_001', 'Purchase: dragon_bundle', NULL::text)$$,
    'the DIAMONDS history shows the purchase with that asset''s leg');
SELECT results_eq(
    $$SELECT type, amount, balance_after FROM wallet_history('user_alice', 'GOLD_COINS', 1)$$,
    $$VALUES ('PURCHASE'::transaction_type, 100::bigint, 99900::bigint)$$,
    'the GOLD_COINS history shows the same purchase with its own leg');
SELECT results_eq(
    $$SELECT DISTINCT type, user_id, asset_code, amount, legs, item_id, original_reference_id, reason
        FROM wallet_transaction('buy_001')$$,
    $$VALUES ('PURCHASE'::transaction_type, 'user_alice', NULL::text, NULL::bigint,
              '[{"asset_code": "DIAMONDS", "amount": 5}, {"asset_code": "GOLD_COINS", "amount": 100}]'::jsonb,
              'dragon_bundle', NULL::text, NULL::text)$$,
    'wallet_transaction: no single asset or amount, the legs, the item');
SELECT results_eq(
    $$SELECT entry_asset_code, wallet_name, entry_type, entry_amount FROM wallet_transaction('buy_001')
       ORDER BY entry_asset_code, entry_type$$,
    $$VALUES ('DIAMONDS', 'Diamonds Revenue', 'CREDIT', 5::bigint), ('DIAMONDS', 'Alice', 'DEBIT', 5::bigint),
             ('GOLD_COINS', 'Gold Coins Revenue', 'CREDIT', 100::bigint), ('GOLD_COINS', 'Alice', 'DEBIT', 100::bigint)$$,
    'wallet_transaction: four entries, each with its asset');
SELECT is_empty('SELECT * FROM wallet_verify()', 'wallet_verify: healthy after a two-asset purchase');

-- ---------------------------------------------------------------- one asset, three assets

SELECT results_eq(
    $$SELECT asset_code, amount, balance FROM wallet_purchase('user_bob', 'buy_bob_1', 'cape',
                                                               '[{"asset_code": "GOLD_COINS", "amount": 1000}]')$$,
    $$VALUES ('GOLD_COINS', 1000::bigint, 49000::bigint)$$, 'a one-asset purchase: one row');
SELECT is((SELECT legs FROM transactions WHERE reference_id = 'buy_bob_1'),
    '[{"asset_code": "GOLD_COINS", "amount": 1000}]'::jsonb, 'its legs hold its one leg');
SELECT lives_ok($$SELECT wallet_bonus('user_alice', 'LOYALTY_POINTS', 50, 'buy_lp_bonus', 'WELCOME')$$,
    'alice earns loyalty points');
SELECT results_eq(
    $$SELECT asset_code, amount, balance FROM wallet_purchase('user_alice', 'buy_three', 'throne',
          '[{"asset_code": "LOYALTY_POINTS", "amount": 50}, {"asset_code": "GOLD_COINS", "amount": 900},
            {"asset_code": "DIAMONDS", "amount": 95}]')$$,
    $$VALUES ('DIAMONDS', 95::bigint, 400::bigint), ('GOLD_COINS', 900::bigint, 99000::bigint),
             ('LOYALTY_POINTS', 50::bigint, 0::bigint)$$,
    'a three-asset purchase, down to exactly 0 in one asset');
SELECT is((SELECT count(*)::int FROM ledger_entries WHERE transaction_id = pg_temp.tx('buy_three')), 6,
    'six entries: two per leg');
SELECT is_empty('SELECT * FROM wallet_verify()', 'wallet_verify: healthy after one- and three-asset purchases');

-- ---------------------------------------------------------------- replay

CREATE TEMP TABLE replay AS
SELECT * FROM wallet_purchase('user_alice', 'buy_001', 'dragon_bundle',
    '[{"asset_code": "DIAMONDS", "amount": 5}, {"asset_code": "GOLD_COINS", "amount": 100}]', '{"other": "metadata"}');
SELECT results_eq('SELECT transaction_id, asset_code, amount, balance, created_at, replayed FROM replay',
    'SELECT transaction_id, asset_code, amount, balance, created_at, true FROM first_purchase',
    'the same purchase, legs in the other order, other metadata: the original rows and balances, replayed');
SELECT results_eq($$SELECT asset_code, balance FROM wallet_balances('user_alice', 'DIAMONDS')$$,
    $$VALUES ('DIAMONDS', 400::bigint)$$, 'a replay debits nothing');
SELECT is((SELECT count(*)::int FROM transactions WHERE type = 'PURCHASE'), 3, 'a replay writes no transaction');
SELECT is((SELECT bool_and(replayed) FROM wallet_purchase('user_alice', 'buy_three', 'throne',
          '[{"asset_code": "DIAMONDS", "amount": 95}, {"asset_code": "GOLD_COINS", "amount": 900},
            {"asset_code": "LOYALTY_POINTS", "amount": 50}]')), true,
    'replaying a purchase the balance could no longer cover is still a replay');
SELECT is((SELECT bool_and(replayed) FROM wallet_purchase('user_alice', 'buy_001', 'dragon_bundle',
          '[{"asset_code": "DIAMONDS", "amount": 5.0}, {"amount": 100, "asset_code": "GOLD_COINS"}]')), true,
    'amounts written 5.0 and keys in another order are the same price');

-- ---------------------------------------------------------------- idempotency conflicts (WL004)

SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_001', 'other_bundle',
                     '[{"asset_code": "GOLD_COINS", "amount": 100}, {"asset_code": "DIAMONDS", "amount": 5}]')$$,
    'WL004',
    format('reference id buy_001 already belongs to transaction %s (PURCHASE for user_alice), not to this purchase of other_bundle for user_alice',
           pg_temp.tx('buy_001')),
    'same key, another item: WL004 naming the transaction');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_purchase('user_alice', 'buy_001', 'other_bundle',
                     '[{"asset_code": "GOLD_COINS", "amount": 100}, {"asset_code": "DIAMONDS", "amount": 5}]')$$)->>'detail',
    format('{"reference_id" : "buy_001", "transaction_id" : "%s"}', pg_temp.tx('buy_001')),
    'the WL004 detail names the reference and transaction ids');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_001', 'dragon_bundle',
                     '[{"asset_code": "GOLD_COINS", "amount": 101}, {"asset_code": "DIAMONDS", "amount": 5}]')$$,
    'WL004', NULL, 'same key, one leg''s amount differs: WL004');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_001', 'dragon_bundle',
                     '[{"asset_code": "GOLD_COINS", "amount": 100}]')$$,
    'WL004', NULL, 'same key, a leg left out: WL004');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_bob', 'buy_001', 'dragon_bundle',
                     '[{"asset_code": "GOLD_COINS", "amount": 100}, {"asset_code": "DIAMONDS", "amount": 5}]')$$,
    'WL004', NULL, 'same key, another player: WL004');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_nobody', 'buy_001', 'dragon_bundle',
                     '[{"asset_code": "GOLD_COINS", "amount": 100}]')$$,
    'WL004', NULL, 'a key conflict is reported before the player is looked up');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_bob', 'init_bob_gold_001', 'cape',
                     '[{"asset_code": "GOLD_COINS", "amount": 50000}]')$$,
    'WL004', NULL, 'the key of another operation type (an initial balance): WL004');
SELECT throws_ok($$SELECT wallet_spend('user_alice', 'GOLD_COINS', 100, 'buy_001', 'dragon_bundle')$$, 'WL004', NULL,
    'a spend with a purchase''s key: WL004');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', 100, 'buy_001')$$, 'WL004',
    format('reference id buy_001 already belongs to transaction %s, not to a new hold', pg_temp.tx('buy_001')),
    'a hold with a purchase''s key: WL004');
SELECT lives_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 10, 'buy_hold_1')$$, 'bob places a hold');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_bob', 'buy_hold_1', 'cape', '[{"asset_code": "GOLD_COINS", "amount": 10}]')$$,
    'WL004', 'reference id buy_hold_1 already belongs to a hold of 10 GOLD_COINS for user_bob',
    'a purchase with a hold''s key: WL004');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_purchase('user_bob', 'buy_hold_1', 'cape',
                               '[{"asset_code": "GOLD_COINS", "amount": 10}]')$$)->>'detail',
    '{"reference_id" : "buy_hold_1", "hold_reference_id" : "buy_hold_1"}', 'its detail names the hold');
SELECT lives_ok($$SELECT * FROM wallet_capture('buy_hold_1')$$, 'the hold is captured');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_bob', 'buy_hold_1', 'cape', '[{"asset_code": "GOLD_COINS", "amount": 10}]')$$,
    'WL004', NULL, 'a purchase with a captured hold''s key (its CAPTURE''s): WL004');

-- ---------------------------------------------------------------- insufficient funds (WL001): all legs or none

SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_poor', 'crown',
                     '[{"asset_code": "GOLD_COINS", "amount": 10}, {"asset_code": "DIAMONDS", "amount": 401}]')$$,
    'WL001', 'insufficient funds: player user_alice has 400 DIAMONDS and cannot spend 401',
    'one leg above its balance: WL001 naming that asset');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_purchase('user_alice', 'buy_poor', 'crown',
                     '[{"asset_code": "GOLD_COINS", "amount": 10}, {"asset_code": "DIAMONDS", "amount": 401}]')$$)->>'detail',
    '{"user_id" : "user_alice", "asset_code" : "DIAMONDS", "required" : 401, "available" : 400, "held" : 0}',
    'the WL001 detail: asset, required, available, held');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_poor', 'crown',
                     '[{"asset_code": "GOLD_COINS", "amount": 99001}, {"asset_code": "DIAMONDS", "amount": 1}]')$$,
    'WL001', 'insufficient funds: player user_alice has 99000 GOLD_COINS and cannot spend 99001',
    'the last leg (in asset order) short: WL001 ...');
SELECT results_eq($$SELECT asset_code, balance FROM wallet_balances('user_alice')$$,
    $$VALUES ('GOLD_COINS', 99000::bigint), ('DIAMONDS', 400::bigint), ('LOYALTY_POINTS', 0::bigint)$$,
    '... and no leg was debited, the first one neither');
SELECT is((SELECT count(*)::int FROM transactions WHERE reference_id = 'buy_poor'), 0,
    'a refused purchase writes nothing and leaves its key free');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_bob', 'buy_poor', 'gem',
                     '[{"asset_code": "GOLD_COINS", "amount": 1}, {"asset_code": "DIAMONDS", "amount": 1}]')$$,
    'WL001', 'insufficient funds: player user_bob has 0 DIAMONDS and cannot spend 1',
    'an asset the player never held: WL001 with 0 available');
SELECT is((SELECT count(*)::int FROM wallets WHERE user_id = 'user_bob' AND asset_code = 'DIAMONDS'), 0,
    'a refused purchase opens no wallet');
-- active holds count against a purchase; expired ones do not
SELECT lives_ok($$SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', 90000, 'buy_big_hold')$$, 'alice holds 90000 gold');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_poor', 'crown', '[{"asset_code": "GOLD_COINS", "amount": 9001}]')$$,
    'WL001', 'insufficient funds: player user_alice has 9000 GOLD_COINS available (90000 held) and cannot spend 9001',
    'a purchase may use only what active holds leave available');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_purchase('user_alice', 'buy_poor', 'crown',
                               '[{"asset_code": "GOLD_COINS", "amount": 9001}]')$$)->>'detail',
    '{"user_id" : "user_alice", "asset_code" : "GOLD_COINS", "required" : 9001, "available" : 9000, "held" : 90000}',
    'its detail says what is held');
SELECT results_eq($$SELECT amount, balance FROM wallet_purchase('user_alice', 'buy_fits', 'crown',
                                                                 '[{"asset_code": "GOLD_COINS", "amount": 9000}]')$$,
    $$VALUES (9000::bigint, 90000::bigint)$$, 'exactly the available amount is fine');
SELECT lives_ok($$SELECT * FROM wallet_hold('user_charlie', 'GOLD_COINS', 25000, 'buy_short_hold', p_expires_in => 1)$$,
    'charlie holds all his gold for one second');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_charlie', 'buy_charlie', 'hat', '[{"asset_code": "GOLD_COINS", "amount": 1}]')$$,
    'WL001', NULL, 'while the hold is active, charlie cannot buy');
SELECT pg_sleep(1.1);
SELECT results_eq($$SELECT amount, balance FROM wallet_purchase('user_charlie', 'buy_charlie', 'hat',
                                                                 '[{"asset_code": "GOLD_COINS", "amount": 25000}]')$$,
    $$VALUES (25000::bigint, 0::bigint)$$, 'once it expired, he buys with everything (no job ran)');

-- ---------------------------------------------------------------- player and asset (WL002, WL003)

SELECT throws_ok($$SELECT * FROM wallet_purchase('user_nobody', 'buy_x', 'hat', '[{"asset_code": "GOLD_COINS", "amount": 1}]')$$,
    'WL002', 'player user_nobody has no wallet', 'a player with no wallet at all: WL002');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_x', 'hat',
                     '[{"asset_code": "GOLD_COINS", "amount": 1}, {"asset_code": "PEARLS", "amount": 1}]')$$,
    'WL003', 'asset PEARLS not found', 'an unknown asset among the legs: WL003');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_nobody', 'buy_x', 'hat', '[{"asset_code": "PEARLS", "amount": 1}]')$$,
    'WL003', 'asset PEARLS not found', 'an unknown asset is reported before an unknown player');

-- ---------------------------------------------------------------- invalid arguments (WL006)

SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_x', 'hat', NULL)$$, 'WL006',
    'invalid argument price: is required', 'no price');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_x', 'hat', '{"asset_code": "GOLD_COINS", "amount": 1}')$$,
    'WL006', 'invalid argument price: must be an array of 1 to 3 {asset_code, amount} objects', 'a price that is not an array');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_x', 'hat', '[]')$$,
    'WL006', 'invalid argument price: must be an array of 1 to 3 {asset_code, amount} objects', 'an empty price');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_x', 'hat',
                     '[{"asset_code": "GOLD_COINS", "amount": 1}, {"asset_code": "DIAMONDS", "amount": 1},
                       {"asset_code": "LOYALTY_POINTS", "amount": 1}, {"asset_code": "PEARLS", "amount": 1}]')$$,
    'WL006', 'invalid argument price: must be an array of 1 to 3 {asset_code, amount} objects', 'four legs');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_x', 'hat', '[5]')$$,
    'WL006', 'invalid argument price[0]: must be an object {asset_code, amount}', 'a leg that is not an object');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_x', 'hat',
                     '[{"asset_code": "GOLD_COINS", "amount": 1}, {"asset_code": "DIAMONDS", "amount": 1, "discount": 1}]')$$,
    'WL006', 'invalid argument price[1]: must be an object {asset_code, amount}', 'a leg with another key');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_x', 'hat', '[{"amount": 1}]')$$,
    'WL006', 'invalid argument price[0].asset_code: is required (a string)', 'a leg without asset_code');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_x', 'hat', '[{"asset_code": 7, "amount": 1}]')$$,
    'WL006', 'invalid argument price[0].asset_code: is required (a string)', 'a leg whose asset_code is a number');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_x', 'hat', '[{"asset_code": "GOLD_COINS"}]')$$,
    'WL006', 'invalid argument price[0].amount: must be an integer from 1 to 9007199254740991', 'a leg without amount');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_x', 'hat', '[{"asset_code": "GOLD_COINS", "amount": 0}]')$$,
    'WL006', 'invalid argument price[0].amount: must be an integer from 1 to 9007199254740991', 'amount 0');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_x', 'hat', '[{"asset_code": "GOLD_COINS", "amount": -5}]')$$,
    'WL006', 'invalid argument price[0].amount: must be an integer from 1 to 9007199254740991', 'a negative amount');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_x', 'hat', '[{"asset_code": "GOLD_COINS", "amount": 1.5}]')$$,
    'WL006', 'invalid argument price[0].amount: must be an integer from 1 to 9007199254740991', 'a fractional amount');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_x', 'hat', '[{"asset_code": "GOLD_COINS", "amount": "5"}]')$$,
    'WL006', 'invalid argument price[0].amount: must be an integer from 1 to 9007199254740991', 'an amount as a string');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_x', 'hat',
                     '[{"asset_code": "GOLD_COINS", "amount": 9007199254740992}]')$$,
    'WL006', 'invalid argument price[0].amount: must be an integer from 1 to 9007199254740991', 'amount 2^53');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_x', 'hat',
                     '[{"asset_code": "GOLD_COINS", "amount": 1}, {"asset_code": "GOLD_COINS", "amount": 2}]')$$,
    'WL006', 'invalid argument price: lists an asset more than once', 'an asset twice');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_purchase('user_alice', 'buy_x', 'hat',
                               '[{"asset_code": "GOLD_COINS", "amount": 1}, {"asset_code": "DIAMONDS", "amount": 0}]')$$)->>'column',
    'price[1].amount', 'the error''s field names the leg');
SELECT throws_ok($$SELECT * FROM wallet_purchase(NULL, 'buy_x', 'hat', '[{"asset_code": "GOLD_COINS", "amount": 1}]')$$,
    'WL006', 'invalid argument user_id: is required', 'a null user_id');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', '', 'hat', '[{"asset_code": "GOLD_COINS", "amount": 1}]')$$,
    'WL006', 'invalid argument reference_id: must be a non-empty string of at most 128 characters', 'an empty reference_id');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_x', NULL, '[{"asset_code": "GOLD_COINS", "amount": 1}]')$$,
    'WL006', 'invalid argument item_id: is required', 'item_id is required');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_x', 'hat', '[{"asset_code": "GOLD_COINS", "amount": 1}]', '[]')$$,
    'WL006', 'invalid argument metadata: must be a JSON object', 'metadata that is not an object');
SELECT throws_ok($$SELECT * FROM wallet_purchase('user_alice', 'buy_001', 'dragon_bundle', '[]')$$,
    'WL006', NULL, 'an invalid request is WL006 even with a taken key');
SELECT lives_ok($$SELECT * FROM wallet_purchase('user_bob', 'buy_actor', 'hat', '[{"asset_code": "GOLD_COINS", "amount": 1}]',
                                                p_actor => 'game-backend')$$, 'a purchase made for an API key ...');
SELECT is((SELECT actor FROM transactions WHERE reference_id = 'buy_actor'), 'game-backend',
    '... records it as the transaction''s actor');

SELECT is_empty('SELECT * FROM wallet_verify()', 'wallet_verify: healthy after every purchase and refusal');

SELECT * FROM finish();
ROLLBACK;
