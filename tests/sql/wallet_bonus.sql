-- wallet_bonus: BONUS_POOL -> player, opens the wallet on a first credit, idempotent per reference id.
BEGIN;
SELECT plan(33);

SELECT has_function('wallet_bonus', ARRAY['text', 'text', 'bigint', 'text', 'text', 'jsonb', 'text'], 'wallet_bonus exists');

-- ---------------------------------------------------------------- a bonus

CREATE TEMP TABLE first_bonus AS
SELECT * FROM wallet_bonus('user_bob', 'GOLD_COINS', 100, 'bonus_001', 'DAILY_LOGIN', '{"day": 7}');

SELECT results_eq(
    $$SELECT user_id, asset_code, amount, balance, transaction_type, replayed FROM first_bonus$$,
    $$VALUES ('user_bob', 'GOLD_COINS', 100::bigint, 50100::bigint, 'BONUS'::transaction_type, false)$$,
    'a bonus returns the player, asset, amount, new balance, type BONUS and replayed = false');
SELECT is((SELECT balance::bigint FROM wallets WHERE user_id = 'user_bob' AND asset_code = 'GOLD_COINS'), 50100::bigint,
    'the stored balance is raised by the amount');
SELECT results_eq(
    $$SELECT bonus_type::text, payment_method::text, item_id::text, metadata, description FROM transactions WHERE reference_id = 'bonus_001'$$,
    $$VALUES ('DAILY_LOGIN', NULL::text, NULL::text, '{"day": 7}'::jsonb, 'Bonus: DAILY_LOGIN')$$,
    'the transaction row records the bonus type, metadata and a description');
SELECT results_eq(
    $$SELECT w.kind, w.asset_code, e.amount, e.balance_after::bigint FROM ledger_entries e JOIN wallets w ON w.id = e.wallet_id
       WHERE e.transaction_id = (SELECT transaction_id FROM first_bonus) ORDER BY e.id$$,
    $$VALUES ('PLAYER'::wallet_kind, 'GOLD_COINS', 100::bigint, 50100::bigint),
             ('BONUS_POOL'::wallet_kind, 'GOLD_COINS', -100::bigint, NULL::bigint)$$,
    'two legs: the player credited, the GOLD_COINS bonus pool (not the treasury) debited');
SELECT is((SELECT balance FROM wallet_system_balances WHERE asset_code = 'GOLD_COINS' AND kind = 'BONUS_POOL'),
    -100::bigint, 'the bonus pool''s derived balance goes negative by the bonus');

-- ---------------------------------------------------------------- replay and conflict

CREATE TEMP TABLE replay AS
SELECT * FROM wallet_bonus('user_bob', 'GOLD_COINS', 100, 'bonus_001', 'DAILY_LOGIN', '{"day": 7}');
SELECT results_eq('SELECT transaction_id, amount, balance, replayed FROM replay',
    'SELECT transaction_id, amount, balance, true FROM first_bonus',
    'same key, same request: the same transaction and balance, flagged replayed');
SELECT is((SELECT count(*) FROM ledger_entries)::int, 10, 'a replay writes nothing');

SELECT throws_ok($$SELECT wallet_bonus('user_bob', 'GOLD_COINS', 100, 'bonus_001', 'REFERRAL')$$, 'WL004',
    format('reference id bonus_001 already belongs to transaction %s (BONUS of 100 GOLD_COINS for user_bob), not to this BONUS of 100 GOLD_COINS for user_bob',
           (SELECT transaction_id FROM first_bonus)),
    'same key, different bonus_type: WL004');
SELECT throws_ok($$SELECT wallet_bonus('user_bob', 'GOLD_COINS', 99, 'bonus_001', 'DAILY_LOGIN')$$, 'WL004', NULL,
    'same key, different amount: WL004');
SELECT throws_ok($$SELECT wallet_bonus('user_charlie', 'GOLD_COINS', 100, 'bonus_001', 'DAILY_LOGIN')$$, 'WL004', NULL,
    'same key, different player: WL004');
SELECT throws_ok($$SELECT wallet_bonus('user_bob', 'DIAMONDS', 100, 'bonus_001', 'DAILY_LOGIN')$$, 'WL004', NULL,
    'same key, different asset: WL004');
SELECT throws_ok($$SELECT wallet_topup('user_bob', 'GOLD_COINS', 100, 'bonus_001')$$, 'WL004',
    format('reference id bonus_001 already belongs to transaction %s (BONUS of 100 GOLD_COINS for user_bob), not to this TOPUP of 100 GOLD_COINS for user_bob',
           (SELECT transaction_id FROM first_bonus)),
    'same key, different operation type (top-up): WL004');
SELECT throws_ok($$SELECT wallet_spend('user_bob', 'GOLD_COINS', 100, 'bonus_001', 'DAILY_LOGIN')$$, 'WL004', NULL,
    'same key, different operation type (spend): WL004');

-- ---------------------------------------------------------------- opens a wallet; earn 100, spend 30

SELECT results_eq(
    $$SELECT user_id, asset_code, balance FROM wallet_bonus('user_erin', 'LOYALTY_POINTS', 100, 'bonus_erin_1', 'WELCOME')$$,
    $$VALUES ('user_erin', 'LOYALTY_POINTS', 100::bigint)$$, 'a bonus for a new player opens the wallet');
SELECT results_eq($$SELECT kind, name, balance::bigint FROM wallets WHERE user_id = 'user_erin'$$,
    $$VALUES ('PLAYER'::wallet_kind, 'user_erin', 100::bigint)$$, 'exactly one wallet, named after the user id');
SELECT is((SELECT balance FROM wallet_spend('user_erin', 'LOYALTY_POINTS', 30, 'spend_erin_1', 'hat')), 70::bigint,
    'earn 100, spend 30: the balance is 70');
SELECT is((SELECT balance FROM wallet_balances('user_erin', 'LOYALTY_POINTS')), 70::bigint,
    'and wallet_balances says 70');
SELECT is(ARRAY(SELECT balance_after FROM wallet_history('user_erin', 'LOYALTY_POINTS')), ARRAY[70, 100]::bigint[],
    'and the history shows 100 then 70');

-- ---------------------------------------------------------------- named arguments

SELECT is((SELECT balance FROM wallet_bonus(p_bonus_type => 'STREAK', p_reference_id => 'bonus_named',
                                            p_amount => 3, p_asset_code => 'DIAMONDS', p_user_id => 'user_alice')),
    503::bigint, 'callable with named arguments in any order');

-- ---------------------------------------------------------------- errors

SELECT throws_ok($$SELECT wallet_bonus('user_bob', 'STARS', 1, 'bonus_bad', 'X')$$, 'WL003',
    'asset STARS not found', 'an unknown asset is WL003');
SELECT lives_ok($$SELECT wallet_bonus('user_bob', 'GOLD_COINS', 9007199254740991 - 50100, 'bonus_to_limit', 'X')$$,
    'a bonus up to exactly the limit');
SELECT throws_ok($$SELECT wallet_bonus('user_bob', 'GOLD_COINS', 1, 'bonus_over_limit', 'X')$$, 'WL007',
    'balance limit exceeded: player user_bob has 9007199254740991 GOLD_COINS and cannot receive 1',
    'one more is WL007');
SELECT throws_ok($$SELECT wallet_bonus('user_bob', 'GOLD_COINS', 1, 'bonus_bad', NULL)$$, 'WL006',
    'invalid argument bonus_type: is required', 'bonus_type is required');
SELECT throws_ok($$SELECT wallet_bonus('user_bob', 'GOLD_COINS', 1, 'bonus_bad', '')$$, 'WL006',
    'invalid argument bonus_type: must be a non-empty string of at most 128 characters', 'an empty bonus_type');
SELECT throws_ok(format($$SELECT wallet_bonus('user_bob', 'GOLD_COINS', 1, 'bonus_bad', %L)$$, repeat('b', 129)), 'WL006',
    'invalid argument bonus_type: must be a non-empty string of at most 128 characters', 'a 129-character bonus_type');
SELECT throws_ok($$SELECT wallet_bonus('', 'GOLD_COINS', 1, 'bonus_bad', 'X')$$, 'WL006',
    'invalid argument user_id: must be a non-empty string of at most 128 characters', 'an empty user_id');
SELECT throws_ok($$SELECT wallet_bonus('user_bob', 'GOLD_COINS', 0, 'bonus_bad', 'X')$$, 'WL006',
    'invalid argument amount: must be an integer from 1 to 9007199254740991, not 0', 'amount 0');
SELECT throws_ok($$SELECT wallet_bonus('user_bob', 'GOLD_COINS', -1, 'bonus_bad', 'X')$$, 'WL006',
    'invalid argument amount: must be an integer from 1 to 9007199254740991, not -1', 'amount -1');
SELECT throws_ok($$SELECT wallet_bonus('user_bob', 'GOLD_COINS', 1, NULL, 'X')$$, 'WL006',
    'invalid argument reference_id: is required', 'a null reference_id');
SELECT throws_ok($$SELECT wallet_bonus('user_bob', 'GOLD_COINS', 1, 'bonus_bad', 'X', '42')$$, 'WL006',
    'invalid argument metadata: must be a JSON object', 'metadata that is a number');
SELECT is((SELECT count(*) FROM transactions WHERE reference_id IN ('bonus_bad', 'bonus_over_limit'))::int, 0,
    'refused bonuses write nothing');

SELECT is_empty('SELECT * FROM wallet_verify()', 'the ledger is healthy after every bonus');

SELECT * FROM finish();
ROLLBACK;
