-- wallet_spend: player -> REVENUE, never below zero, idempotent per reference id.
BEGIN;
SELECT plan(43);

SELECT has_function('wallet_spend', ARRAY['text', 'text', 'bigint', 'text', 'text', 'jsonb', 'text'], 'wallet_spend exists');

-- ---------------------------------------------------------------- a spend

CREATE TEMP TABLE first_spend AS
SELECT * FROM wallet_spend('user_alice', 'GOLD_COINS', 2500, 'spend_001', 'dragon_skin', '{"level": 3}');

SELECT results_eq(
    $$SELECT user_id, asset_code, amount, balance, transaction_type, replayed FROM first_spend$$,
    $$VALUES ('user_alice', 'GOLD_COINS', 2500::bigint, 97500::bigint, 'SPEND'::transaction_type, false)$$,
    'a spend returns the player, asset, amount, new balance, type SPEND and replayed = false');
SELECT is((SELECT balance::bigint FROM wallets WHERE user_id = 'user_alice' AND asset_code = 'GOLD_COINS'), 97500::bigint,
    'the stored balance is lowered by the amount');
SELECT results_eq(
    $$SELECT item_id::text, metadata, description FROM transactions WHERE reference_id = 'spend_001'$$,
    $$VALUES ('dragon_skin', '{"level": 3}'::jsonb, 'Purchase: dragon_skin')$$,
    'the transaction row records the item, metadata and a description');
SELECT results_eq(
    $$SELECT w.kind, w.asset_code, e.amount, e.balance_after::bigint FROM ledger_entries e JOIN wallets w ON w.id = e.wallet_id
       WHERE e.transaction_id = (SELECT transaction_id FROM first_spend) ORDER BY e.id$$,
    $$VALUES ('PLAYER'::wallet_kind, 'GOLD_COINS', -2500::bigint, 97500::bigint),
             ('REVENUE'::wallet_kind, 'GOLD_COINS', 2500::bigint, NULL::bigint)$$,
    'two legs: the player debited with balance_after, the GOLD_COINS revenue credited');
SELECT is((SELECT balance FROM wallet_system_balances WHERE asset_code = 'GOLD_COINS' AND kind = 'REVENUE'),
    2500::bigint, 'revenue''s derived balance holds what was spent');
SELECT is((SELECT balance FROM wallet_spend('user_alice', 'DIAMONDS', 500, 'spend_all_diamonds', 'crown')), 0::bigint,
    'spending the whole balance leaves exactly 0');

-- ---------------------------------------------------------------- earn 100, spend 30

SELECT lives_ok($$SELECT wallet_topup('user_frank', 'GOLD_COINS', 100, 'earn_frank', 'card')$$, 'a new player earns 100');
SELECT results_eq($$SELECT amount, balance FROM wallet_spend('user_frank', 'GOLD_COINS', 30, 'spend_frank', 'sword')$$,
    $$VALUES (30::bigint, 70::bigint)$$, 'spends 30 and is told the balance is 70');
SELECT is((SELECT balance::bigint FROM wallets WHERE user_id = 'user_frank'), 70::bigint, 'the stored balance is 70');
SELECT is((SELECT sum(amount) FROM ledger_entries WHERE wallet_id = (SELECT id FROM wallets WHERE user_id = 'user_frank')),
    70::numeric, 'the ledger entries of the wallet sum to 70');

-- ---------------------------------------------------------------- insufficient funds (WL001)

SELECT throws_ok($$SELECT wallet_spend('user_frank', 'GOLD_COINS', 71, 'spend_frank_2', 'shield')$$, 'WL001',
    'insufficient funds: player user_frank has 70 GOLD_COINS and cannot spend 71',
    'one more than the balance is WL001, naming player, asset and amounts');
SELECT is(pg_temp.error_of($$SELECT wallet_spend('user_frank', 'GOLD_COINS', 71, 'spend_frank_2', 'shield')$$) ->> 'detail',
    '{"user_id" : "user_frank", "asset_code" : "GOLD_COINS", "required" : 71, "available" : 70, "held" : 0}',
    'the WL001 detail carries required, available and held as JSON numbers');
SELECT throws_ok($$SELECT wallet_spend('user_alice', 'DIAMONDS', 1, 'spend_diamond_more', 'crown')$$, 'WL001',
    'insufficient funds: player user_alice has 0 DIAMONDS and cannot spend 1', 'spending from an emptied wallet is WL001');
SELECT throws_ok($$SELECT wallet_spend('user_bob', 'DIAMONDS', 1, 'spend_bob_diamonds', 'gem')$$, 'WL001',
    'insufficient funds: player user_bob has 0 DIAMONDS and cannot spend 1',
    'a player who never held the asset has 0 available: WL001');
SELECT is(pg_temp.error_of($$SELECT wallet_spend('user_bob', 'DIAMONDS', 1, 'spend_bob_diamonds', 'gem')$$) ->> 'detail',
    '{"user_id" : "user_bob", "asset_code" : "DIAMONDS", "required" : 1, "available" : 0, "held" : 0}',
    'its WL001 detail says available 0');
SELECT is((SELECT count(*) FROM wallets WHERE user_id = 'user_bob' AND asset_code = 'DIAMONDS')::int, 0,
    'a refused spend opens no wallet');
SELECT is((SELECT count(*) FROM transactions WHERE reference_id IN ('spend_frank_2', 'spend_bob_diamonds'))::int, 0,
    'a refused spend writes nothing and leaves its key free');
SELECT is((SELECT balance FROM wallet_spend('user_frank', 'GOLD_COINS', 70, 'spend_frank_2', 'shield')), 0::bigint,
    'the key of a refused spend can be used for a spend that fits');

-- ---------------------------------------------------------------- wallet not found (WL002)

SELECT throws_ok($$SELECT wallet_spend('user_nobody', 'GOLD_COINS', 1, 'spend_nobody', 'hat')$$, 'WL002',
    'player user_nobody has no wallet', 'a spend by a player with no wallet at all is WL002');
SELECT is(pg_temp.error_of($$SELECT wallet_spend('user_nobody', 'GOLD_COINS', 1, 'spend_nobody', 'hat')$$) ->> 'detail',
    '{"user_id" : "user_nobody"}', 'the WL002 detail names the player');
SELECT is((SELECT count(*) FROM wallets WHERE user_id = 'user_nobody')::int, 0, 'a spend never opens a wallet');

-- ---------------------------------------------------------------- replay and conflict

CREATE TEMP TABLE replay AS
SELECT * FROM wallet_spend('user_alice', 'GOLD_COINS', 2500, 'spend_001', 'dragon_skin', '{"level": 3}');
SELECT results_eq('SELECT transaction_id, amount, balance, created_at, replayed FROM replay',
    'SELECT transaction_id, amount, balance, created_at, true FROM first_spend',
    'same key, same request: the original transaction and balance, flagged replayed');
SELECT is((SELECT balance::bigint FROM wallets WHERE user_id = 'user_alice' AND asset_code = 'GOLD_COINS'), 97500::bigint,
    'a replayed spend does not debit again');
SELECT is((SELECT count(*) FROM transactions WHERE type = 'SPEND')::int, 4, 'a replay writes no transaction');
-- the replay of a spend that emptied the wallet is still a replay, not an insufficient-funds error
SELECT is((SELECT replayed FROM wallet_spend('user_alice', 'DIAMONDS', 500, 'spend_all_diamonds', 'crown')), true,
    'replaying a spend the balance could no longer cover is still a replay');

SELECT throws_ok($$SELECT wallet_spend('user_alice', 'GOLD_COINS', 2500, 'spend_001', 'dragon_wings')$$, 'WL004',
    format('reference id spend_001 already belongs to transaction %s (SPEND of 2500 GOLD_COINS for user_alice), not to this SPEND of 2500 GOLD_COINS for user_alice',
           (SELECT transaction_id FROM first_spend)),
    'same key, different item_id: WL004');
SELECT throws_ok($$SELECT wallet_spend('user_alice', 'GOLD_COINS', 2499, 'spend_001', 'dragon_skin')$$, 'WL004', NULL,
    'same key, different amount: WL004');
SELECT throws_ok($$SELECT wallet_spend('user_bob', 'GOLD_COINS', 2500, 'spend_001', 'dragon_skin')$$, 'WL004', NULL,
    'same key, different player: WL004');
SELECT throws_ok($$SELECT wallet_spend('user_alice', 'DIAMONDS', 2500, 'spend_001', 'dragon_skin')$$, 'WL004', NULL,
    'same key, different asset: WL004');
SELECT throws_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 2500, 'spend_001')$$, 'WL004', NULL,
    'same key, different operation type (top-up): WL004');
SELECT throws_ok($$SELECT wallet_spend('user_nobody', 'GOLD_COINS', 2500, 'spend_001', 'dragon_skin')$$, 'WL004', NULL,
    'a key conflict is reported before the player is looked up');

-- ---------------------------------------------------------------- named arguments

SELECT is((SELECT balance FROM wallet_spend(p_user_id => 'user_charlie', p_asset_code => 'GOLD_COINS', p_amount => 1000,
                                            p_reference_id => 'spend_named', p_item_id => 'potion')),
    24000::bigint, 'callable with named arguments');

-- ---------------------------------------------------------------- other errors

SELECT throws_ok($$SELECT wallet_spend('user_alice', 'COPPER', 1, 'spend_bad', 'x')$$, 'WL003',
    'asset COPPER not found', 'an unknown asset is WL003');
SELECT throws_ok($$SELECT wallet_spend('user_alice', 'GOLD_COINS', 1, 'spend_bad', NULL)$$, 'WL006',
    'invalid argument item_id: is required', 'item_id is required');
SELECT throws_ok($$SELECT wallet_spend('user_alice', 'GOLD_COINS', 1, 'spend_bad', '')$$, 'WL006',
    'invalid argument item_id: must be a non-empty string of at most 128 characters', 'an empty item_id');
SELECT throws_ok(format($$SELECT wallet_spend('user_alice', 'GOLD_COINS', 1, 'spend_bad', %L)$$, repeat('i', 129)), 'WL006',
    'invalid argument item_id: must be a non-empty string of at most 128 characters', 'a 129-character item_id');
SELECT throws_ok($$SELECT wallet_spend('user_alice', 'GOLD_COINS', 0, 'spend_bad', 'x')$$, 'WL006',
    'invalid argument amount: must be an integer from 1 to 9007199254740991, not 0', 'amount 0');
SELECT throws_ok($$SELECT wallet_spend('user_alice', 'GOLD_COINS', -30, 'spend_bad', 'x')$$, 'WL006',
    'invalid argument amount: must be an integer from 1 to 9007199254740991, not -30', 'a negative amount cannot credit');
SELECT throws_ok($$SELECT wallet_spend('user_alice', 'GOLD_COINS', 9007199254740992, 'spend_bad', 'x')$$, 'WL006',
    'invalid argument amount: must be an integer from 1 to 9007199254740991, not 9007199254740992', 'amount 2^53');
SELECT throws_ok($$SELECT wallet_spend(NULL, 'GOLD_COINS', 1, 'spend_bad', 'x')$$, 'WL006',
    'invalid argument user_id: is required', 'a null user_id');
SELECT throws_ok($$SELECT wallet_spend('user_alice', 'GOLD_COINS', 1, 'spend_bad', 'x', 'null')$$, 'WL006',
    'invalid argument metadata: must be a JSON object', 'JSON null as metadata');

SELECT is_empty('SELECT * FROM wallet_verify()', 'the ledger is healthy after every spend');

SELECT * FROM finish();
ROLLBACK;
