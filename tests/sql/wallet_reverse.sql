-- wallet_reverse: undo a posting in full or in part with a REVERSAL transaction going the opposite way
-- (refunds from REVENUE, chargebacks to TREASURY, clawbacks to BONUS_POOL); the reversals of one original
-- never exceed it, a reversal is never reversed, a purchase only whole; idempotent per reference id.
BEGIN;
SELECT plan(92);

SELECT has_function('wallet_reverse', ARRAY['text', 'text', 'text', 'bigint', 'jsonb', 'text'], 'wallet_reverse exists');

-- ---------------------------------------------------------------- a refund of a spend, in two parts

SELECT lives_ok($$SELECT wallet_spend('user_alice', 'GOLD_COINS', 2500, 'rv_spend', 'dragon_skin')$$, 'alice spends 2500');
CREATE TEMP TABLE first_refund AS
SELECT * FROM wallet_reverse('rv_refund_1', 'rv_spend', 'never delivered', 1000, '{"ticket": 7}');
SELECT results_eq(
    $$SELECT user_id, transaction_type, original_reference_id, asset_code, amount, balance, replayed FROM first_refund$$,
    $$VALUES ('user_alice', 'REVERSAL'::transaction_type, 'rv_spend', 'GOLD_COINS', 1000::bigint, 98500::bigint, false)$$,
    'a partial refund: one row with the original''s reference id, the amount and the new balance');
SELECT is((SELECT transaction_id FROM first_refund), pg_temp.tx('rv_refund_1'), 'it returns the stored transaction''s id');
SELECT ok((SELECT created_at > now() AND created_at < clock_timestamp() FROM first_refund),
    'created_at is the clock under the wallet''s lock');
SELECT results_eq(
    $$SELECT type, user_id::text, asset_code, amount::bigint, legs, original_id, reason::text, metadata, description
        FROM transactions WHERE reference_id = 'rv_refund_1'$$,
    $$VALUES ('REVERSAL'::transaction_type, 'user_alice', 'GOLD_COINS', 1000::bigint, NULL::jsonb, pg_temp.tx('rv_spend'),
              'never delivered', '{"ticket": 7}'::jsonb, 'Reversal of SPEND rv_spend: never delivered')$$,
    'the transaction names its original and reason; one asset and amount, no legs');
SELECT results_eq(
    $$SELECT w.kind, e.amount, e.balance_after::bigint FROM ledger_entries e JOIN wallets w ON w.id = e.wallet_id
       WHERE e.transaction_id = pg_temp.tx('rv_refund_1') ORDER BY w.kind$$,
    $$VALUES ('PLAYER'::wallet_kind, 1000::bigint, 98500::bigint), ('REVENUE'::wallet_kind, -1000::bigint, NULL::bigint)$$,
    'a refund: REVENUE gives back to the player');
SELECT results_eq(
    $$SELECT type, amount, balance_after, reference_id, original_reference_id FROM wallet_history('user_alice', 'GOLD_COINS', 2)$$,
    $$VALUES ('REVERSAL'::transaction_type, 1000::bigint, 98500::bigint, 'rv_refund_1', 'rv_spend'),
             ('SPEND'::transaction_type, 2500::bigint, 97500::bigint, 'rv_spend', NULL)$$,
    'the history''s REVERSAL row carries the original''s reference id (the spend''s row none)');
SELECT results_eq(
    $$SELECT DISTINCT type, asset_code, amount, legs, original_reference_id, reason FROM wallet_transaction('rv_refund_1')$$,
    $$VALUES ('REVERSAL'::transaction_type, 'GOLD_COINS', 1000::bigint, '[{"asset_code": "GOLD_COINS", "amount": 1000}]'::jsonb,
              'rv_spend', 'never delivered')$$,
    'wallet_transaction: the original''s reference id, the reason, one leg');
SELECT results_eq(
    $$SELECT entry_type, entry_amount FROM wallet_transaction('rv_refund_1') ORDER BY entry_type$$,
    $$VALUES ('CREDIT', 1000::bigint), ('DEBIT', 1000::bigint)$$, 'wallet_transaction: its two entries');
SELECT is_empty('SELECT * FROM wallet_verify()', 'wallet_verify: healthy after a partial refund');

SELECT results_eq($$SELECT amount, balance FROM wallet_reverse('rv_refund_2', 'rv_spend', 'never delivered', 1500)$$,
    $$VALUES (1500::bigint, 100000::bigint)$$, 'the rest of the spend is refunded');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_refund_3', 'rv_spend', 'again', 1)$$, 'WL009',
    'cannot reverse 1 GOLD_COINS of transaction rv_spend: 2500 of its 2500 are reversed already',
    'one more credit than the spend moved: WL009');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_reverse('rv_refund_3', 'rv_spend', 'again', 1)$$)->>'detail',
    '{"original_reference_id" : "rv_spend", "asset_code" : "GOLD_COINS", "original_amount" : 2500, "reversed" : 2500, "requested" : 1}',
    'the WL009 detail: what the original moved, what is reversed, what was asked');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_refund_3', 'rv_spend', 'again')$$, 'WL009', NULL,
    'a whole reversal after partial ones: WL009');
SELECT is((SELECT count(*)::int FROM transactions WHERE reference_id = 'rv_refund_3'), 0, 'a refused reversal writes nothing');

-- ---------------------------------------------------------------- replay and conflicts

CREATE TEMP TABLE replay AS SELECT * FROM wallet_reverse('rv_refund_1', 'rv_spend', 'never delivered', 1000, '{"other": 1}');
SELECT results_eq('SELECT transaction_id, original_reference_id, amount, balance, created_at, replayed FROM replay',
    'SELECT transaction_id, original_reference_id, amount, balance, created_at, true FROM first_refund',
    'the same reversal again (other metadata): the original row and balance, replayed, even once the spend is fully reversed');
SELECT is((SELECT balance FROM wallet_balances('user_alice', 'GOLD_COINS')), 100000::bigint, 'a replay credits nothing');
SELECT lives_ok($$SELECT wallet_spend('user_alice', 'GOLD_COINS', 40, 'rv_spend_40', 'hat')$$, 'alice spends 40');
SELECT lives_ok($$SELECT wallet_reverse('rv_whole_40', 'rv_spend_40', 'oops', 40)$$, 'it is reversed with amount 40');
SELECT is((SELECT replayed FROM wallet_reverse('rv_whole_40', 'rv_spend_40', 'oops')), true,
    'the same reversal without an amount (the whole, 40) is a replay');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_refund_1', 'rv_spend', 'another reason', 1000)$$, 'WL004',
    format('reference id rv_refund_1 already belongs to transaction %s (REVERSAL of 1000 for user_alice), not to this reversal of rv_spend',
           pg_temp.tx('rv_refund_1')),
    'same key, another reason: WL004');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_refund_1', 'rv_spend', 'never delivered', 999)$$, 'WL004', NULL,
    'same key, another amount: WL004');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_refund_1', 'rv_spend', 'never delivered')$$, 'WL004', NULL,
    'same key, no amount (the whole 2500, not 1000): WL004');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_refund_1', 'rv_spend_40', 'never delivered', 10)$$, 'WL004', NULL,
    'same key, another original: WL004');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_reverse('rv_refund_1', 'rv_spend_40', 'never delivered', 10)$$)->>'detail',
    format('{"reference_id" : "rv_refund_1", "transaction_id" : "%s"}', pg_temp.tx('rv_refund_1')),
    'the WL004 detail names the transaction');
SELECT throws_ok($$SELECT * FROM wallet_reverse('init_bob_gold_001', 'rv_spend_40', 'oops')$$, 'WL004', NULL,
    'the key of another operation (an initial balance): WL004');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_spend_40', 'rv_spend_40', 'oops')$$, 'WL004', NULL,
    'the original''s own key: WL004');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 1000, 'rv_refund_1')$$, 'WL004', NULL,
    'a top-up with a reversal''s key: WL004');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', 1000, 'rv_refund_1')$$, 'WL004', NULL,
    'a hold with a reversal''s key: WL004');
SELECT lives_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 10, 'rv_hold_key')$$, 'bob places a hold');
SELECT lives_ok($$SELECT wallet_spend('user_bob', 'GOLD_COINS', 5, 'rv_bob_spend', 'pin')$$, 'bob spends 5');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_hold_key', 'rv_bob_spend', 'oops')$$, 'WL004',
    'reference id rv_hold_key already belongs to a hold of 10 GOLD_COINS for user_bob',
    'a reversal with a hold''s key: WL004');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_reverse('rv_hold_key', 'rv_bob_spend', 'oops')$$)->>'detail',
    '{"reference_id" : "rv_hold_key", "hold_reference_id" : "rv_hold_key"}', 'its detail names the hold');

-- ---------------------------------------------------------------- not reversible (WL010), not found (WL005)

SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_x', 'rv_refund_1', 'undo the refund')$$, 'WL010',
    'transaction rv_refund_1 is a reversal, and a reversal cannot be reversed', 'a reversal of a reversal: WL010');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_reverse('rv_x', 'rv_refund_1', 'undo the refund')$$)->>'detail',
    '{"original_reference_id" : "rv_refund_1", "reason" : "reversal"}', 'its detail says reason reversal');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_x', 'rv_hold_key', 'oops')$$, 'WL010',
    'hold rv_hold_key is not a posting and cannot be reversed: void it instead',
    'a hold not captured: WL010');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_reverse('rv_x', 'rv_hold_key', 'oops')$$)->>'detail',
    '{"original_reference_id" : "rv_hold_key", "reason" : "hold"}', 'its detail says reason hold');
SELECT lives_ok($$SELECT * FROM wallet_void('rv_hold_key')$$, 'the hold is voided');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_x', 'rv_hold_key', 'oops')$$, 'WL010', NULL,
    'a voided hold: still WL010');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_x', 'rv_nothing', 'oops')$$, 'WL005',
    'transaction with reference id rv_nothing not found', 'an unknown original: WL005');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_reverse('rv_x', 'rv_nothing', 'oops')$$)->>'detail',
    '{"reference_id" : "rv_nothing"}', 'its detail names the reference id');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_x', 'rv_spend_40', 'oops', 41)$$, 'WL009',
    'cannot reverse 41 GOLD_COINS of transaction rv_spend_40, which moved only 40', 'more than the original moved: WL009');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_reverse('rv_x', 'rv_spend', 'oops', 2501)$$)->>'detail',
    '{"original_reference_id" : "rv_spend", "asset_code" : "GOLD_COINS", "original_amount" : 2500, "reversed" : 2500, "requested" : 2501}',
    'its detail counts what is reversed already');

-- ---------------------------------------------------------------- chargebacks and clawbacks

SELECT lives_ok($$SELECT wallet_topup('user_charlie', 'GOLD_COINS', 100, 'rv_topup', 'card')$$, 'charlie buys 100');
CREATE TEMP TABLE chargeback AS SELECT * FROM wallet_reverse('rv_chargeback', 'rv_topup', 'card chargeback', 30);
SELECT results_eq($$SELECT transaction_type, original_reference_id, asset_code, amount, balance FROM chargeback$$,
    $$VALUES ('REVERSAL'::transaction_type, 'rv_topup', 'GOLD_COINS', 30::bigint, 25070::bigint)$$,
    'a partial chargeback of a top-up debits the player');
SELECT results_eq(
    $$SELECT w.kind, e.amount, e.balance_after::bigint FROM ledger_entries e JOIN wallets w ON w.id = e.wallet_id
       WHERE e.transaction_id = pg_temp.tx('rv_chargeback') ORDER BY w.kind$$,
    $$VALUES ('PLAYER'::wallet_kind, -30::bigint, 25070::bigint), ('TREASURY'::wallet_kind, 30::bigint, NULL::bigint)$$,
    'a chargeback: the credits go back to TREASURY');
SELECT lives_ok($$SELECT wallet_spend('user_charlie', 'GOLD_COINS', 25030, 'rv_charlie_spend', 'castle')$$,
    'charlie spends all but 40');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_chargeback_2', 'rv_topup', 'card chargeback', 70)$$, 'WL001',
    'insufficient funds: player user_charlie has 40 GOLD_COINS and cannot give back 70',
    'a chargeback of credits already spent: WL001');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_reverse('rv_chargeback_2', 'rv_topup', 'card chargeback', 70)$$)->>'detail',
    '{"user_id" : "user_charlie", "asset_code" : "GOLD_COINS", "required" : 70, "available" : 40, "held" : 0}',
    'its WL001 detail');
SELECT lives_ok($$SELECT * FROM wallet_hold('user_charlie', 'GOLD_COINS', 15, 'rv_charlie_hold')$$, 'charlie holds 15');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_chargeback_2', 'rv_topup', 'card chargeback', 26)$$, 'WL001',
    'insufficient funds: player user_charlie has 25 GOLD_COINS available (15 held) and cannot give back 26',
    'a chargeback needs what active holds leave available');
SELECT results_eq($$SELECT amount, balance FROM wallet_reverse('rv_chargeback_2', 'rv_topup', 'card chargeback', 25)$$,
    $$VALUES (25::bigint, 15::bigint)$$, 'exactly the available amount can be charged back');
SELECT results_eq(
    $$SELECT amount, balance FROM wallet_reverse('rv_init', 'init_alice_diamonds_001', 'opening balance error', 100)$$,
    $$VALUES (100::bigint, 400::bigint)$$, 'an initial balance is reversed like a top-up ...');
SELECT is((SELECT w.kind FROM ledger_entries e JOIN wallets w ON w.id = e.wallet_id
            WHERE e.transaction_id = pg_temp.tx('rv_init') AND e.amount > 0), 'TREASURY'::wallet_kind,
    '... into TREASURY');
SELECT lives_ok($$SELECT wallet_bonus('user_bob', 'LOYALTY_POINTS', 80, 'rv_bonus', 'WELCOME')$$, 'bob gets a bonus of 80');
SELECT results_eq($$SELECT asset_code, amount, balance FROM wallet_reverse('rv_clawback', 'rv_bonus', 'abuse')$$,
    $$VALUES ('LOYALTY_POINTS', 80::bigint, 0::bigint)$$, 'a whole clawback of a bonus ...');
SELECT results_eq(
    $$SELECT w.kind, e.amount FROM ledger_entries e JOIN wallets w ON w.id = e.wallet_id
       WHERE e.transaction_id = pg_temp.tx('rv_clawback') ORDER BY w.kind$$,
    $$VALUES ('PLAYER'::wallet_kind, -80::bigint), ('BONUS_POOL'::wallet_kind, 80::bigint)$$,
    '... goes back to BONUS_POOL');
SELECT is_empty('SELECT * FROM wallet_verify()', 'wallet_verify: healthy after chargebacks and a clawback');

-- ---------------------------------------------------------------- a hold's capture is not reversible

SELECT lives_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 300, 'rv_hold')$$, 'bob holds 300');
SELECT lives_ok($$SELECT * FROM wallet_capture('rv_hold', 200)$$, 'and 200 of it are captured');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_capture_refund', 'rv_hold', 'refund')$$, 'WL010',
    'transaction rv_hold is the capture of hold rv_hold, and a hold''s capture cannot be reversed',
    'the capture (under the hold''s reference id) cannot be reversed: WL010');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_reverse('rv_capture_refund', 'rv_hold', 'refund', 10)$$)->>'detail',
    '{"original_reference_id" : "rv_hold", "reason" : "hold"}', 'its detail says reason hold, with an amount too');
SELECT is((SELECT count(*)::int FROM transactions WHERE reference_id = 'rv_capture_refund'), 0, 'nothing is written');

-- ---------------------------------------------------------------- a purchase: whole, every leg

SELECT lives_ok($$SELECT * FROM wallet_purchase('user_alice', 'rv_buy', 'bundle',
                    '[{"asset_code": "GOLD_COINS", "amount": 700}, {"asset_code": "DIAMONDS", "amount": 50}]')$$,
    'alice buys a bundle for 700 gold and 50 diamonds');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_buy_refund', 'rv_buy', 'refund', 50)$$, 'WL010',
    'purchase rv_buy can only be reversed whole (on every leg): leave the amount out', 'a partial purchase reversal: WL010');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_reverse('rv_buy_refund', 'rv_buy', 'refund', 50)$$)->>'detail',
    '{"original_reference_id" : "rv_buy", "reason" : "partial_purchase"}', 'its detail says reason partial_purchase');
CREATE TEMP TABLE purchase_refund AS SELECT * FROM wallet_reverse('rv_buy_refund', 'rv_buy', 'refund');
SELECT results_eq(
    $$SELECT transaction_type, original_reference_id, asset_code, amount, balance, replayed FROM purchase_refund$$,
    $$VALUES ('REVERSAL'::transaction_type, 'rv_buy', 'DIAMONDS', 50::bigint, 400::bigint, false),
             ('REVERSAL'::transaction_type, 'rv_buy', 'GOLD_COINS', 700::bigint, 100000::bigint, false)$$,
    'a purchase is refunded on every leg: one row per leg, in asset order');
SELECT is((SELECT count(DISTINCT transaction_id)::int FROM purchase_refund), 1, 'in one transaction');
SELECT results_eq(
    $$SELECT asset_code, amount::bigint, legs FROM transactions WHERE reference_id = 'rv_buy_refund'$$,
    $$SELECT NULL::text, NULL::bigint, legs FROM transactions WHERE reference_id = 'rv_buy'$$,
    'the reversal carries the purchase''s legs, no single asset or amount');
SELECT results_eq(
    $$SELECT e.asset_code, w.kind, e.amount FROM ledger_entries e JOIN wallets w ON w.id = e.wallet_id
       WHERE e.transaction_id = pg_temp.tx('rv_buy_refund') ORDER BY e.asset_code, w.kind$$,
    $$VALUES ('DIAMONDS', 'PLAYER'::wallet_kind, 50::bigint), ('DIAMONDS', 'REVENUE'::wallet_kind, -50::bigint),
             ('GOLD_COINS', 'PLAYER'::wallet_kind, 700::bigint), ('GOLD_COINS', 'REVENUE'::wallet_kind, -700::bigint)$$,
    'four entries: each asset''s REVENUE gives its leg back');
SELECT results_eq(
    $$SELECT DISTINCT asset_code, amount, legs, original_reference_id FROM wallet_transaction('rv_buy_refund')$$,
    $$VALUES (NULL::text, NULL::bigint,
              '[{"asset_code": "DIAMONDS", "amount": 50}, {"asset_code": "GOLD_COINS", "amount": 700}]'::jsonb, 'rv_buy')$$,
    'wallet_transaction: the legs and the original');
SELECT results_eq(
    $$SELECT type, amount, original_reference_id FROM wallet_history('user_alice', 'DIAMONDS', 1)$$,
    $$VALUES ('REVERSAL'::transaction_type, 50::bigint, 'rv_buy')$$,
    'each asset''s history shows its leg of the reversal with the original');
SELECT is((SELECT bool_and(replayed) FROM wallet_reverse('rv_buy_refund', 'rv_buy', 'refund')), true,
    'the same purchase reversal again: replayed');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_buy_refund_2', 'rv_buy', 'refund')$$, 'WL009',
    'cannot reverse 50 DIAMONDS of transaction rv_buy: 50 of its 50 are reversed already',
    'a second whole reversal of a purchase: WL009');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_buy_refund', 'rv_buy', 'other reason')$$, 'WL004',
    format('reference id rv_buy_refund already belongs to transaction %s (REVERSAL of several assets for user_alice), not to this reversal of rv_buy',
           pg_temp.tx('rv_buy_refund')),
    'same key, another reason: WL004');

-- ---------------------------------------------------------------- balance limit (WL007)

SELECT lives_ok($$SELECT wallet_topup('user_rich', 'GOLD_COINS', 100, 'rv_rich_1', 'card')$$, 'a new player buys 100');
SELECT lives_ok($$SELECT wallet_spend('user_rich', 'GOLD_COINS', 100, 'rv_rich_spend', 'yacht')$$, 'and spends them');
SELECT lives_ok($$SELECT wallet_topup('user_rich', 'GOLD_COINS', 9007199254740991, 'rv_rich_2', 'card')$$,
    'then buys up to the balance limit');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_rich_refund', 'rv_rich_spend', 'refund')$$, 'WL007',
    'balance limit exceeded: player user_rich has 9007199254740991 GOLD_COINS and cannot receive 100',
    'a refund past 2^53-1: WL007');

-- ---------------------------------------------------------------- invalid arguments (WL006)

SELECT throws_ok($$SELECT * FROM wallet_reverse(NULL, 'rv_spend_40', 'oops')$$, 'WL006',
    'invalid argument reference_id: is required', 'a null reference_id');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_x', NULL, 'oops')$$, 'WL006',
    'invalid argument original_reference_id: is required', 'a null original_reference_id');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_x', 'rv_spend_40', NULL)$$, 'WL006',
    'invalid argument reason: is required', 'a reason is required');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_x', 'rv_spend_40', '')$$, 'WL006',
    'invalid argument reason: must be a non-empty string of at most 128 characters', 'an empty reason');
SELECT throws_ok(format($$SELECT * FROM wallet_reverse('rv_x', 'rv_spend_40', %L)$$, repeat('r', 129)), 'WL006',
    'invalid argument reason: must be a non-empty string of at most 128 characters', 'a 129-character reason');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_x', 'rv_spend_40', 'oops', 0)$$, 'WL006',
    'invalid argument amount: must be an integer from 1 to 9007199254740991, not 0', 'amount 0');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_x', 'rv_spend_40', 'oops', -5)$$, 'WL006',
    'invalid argument amount: must be an integer from 1 to 9007199254740991, not -5', 'a negative amount');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_x', 'rv_spend_40', 'oops', 9007199254740992)$$, 'WL006',
    'invalid argument amount: must be an integer from 1 to 9007199254740991, not 9007199254740992', 'amount 2^53');
SELECT throws_ok($$SELECT * FROM wallet_reverse('rv_x', 'rv_spend_40', 'oops', NULL, '"x"')$$, 'WL006',
    'invalid argument metadata: must be a JSON object', 'metadata that is not an object');
SELECT lives_ok($$SELECT * FROM wallet_reverse('rv_actor', 'init_bob_gold_001', 'audit', 1, NULL, 'support-desk')$$,
    'a reversal made for an API key ...');
SELECT is((SELECT actor FROM transactions WHERE reference_id = 'rv_actor'), 'support-desk', '... records it as the actor');

SELECT is_empty('SELECT * FROM wallet_verify()', 'wallet_verify: healthy after every reversal and refusal');

SELECT * FROM finish();
ROLLBACK;
