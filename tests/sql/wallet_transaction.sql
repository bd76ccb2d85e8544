-- wallet_transaction: one transaction by reference id, one row per ledger entry.
BEGIN;
SELECT plan(17);

SELECT has_function('wallet_transaction', ARRAY['text'], 'wallet_transaction exists');

SELECT results_eq(
    $$SELECT reference_id, status, type, user_id, asset_code, amount, metadata, description
        FROM wallet_transaction('init_alice_gold_001')$$,
    $$VALUES ('init_alice_gold_001', 'COMPLETED', 'INITIAL_BALANCE'::transaction_type, 'user_alice', 'GOLD_COINS',
              100000::bigint, NULL::jsonb, 'Initial balance'),
             ('init_alice_gold_001', 'COMPLETED', 'INITIAL_BALANCE'::transaction_type, 'user_alice', 'GOLD_COINS',
              100000::bigint, NULL::jsonb, 'Initial balance')$$,
    'one row per entry; the transaction''s columns repeat, status COMPLETED');
SELECT results_eq(
    $$SELECT wallet_name, entry_type, entry_amount FROM wallet_transaction('init_alice_gold_001')$$,
    $$VALUES ('Alice', 'CREDIT', 100000::bigint), ('Gold Coins Treasury', 'DEBIT', 100000::bigint)$$,
    'the opening balance credits Alice and debits the treasury, amounts positive');
SELECT results_eq(
    $$SELECT transaction_id, entry_id, wallet_id FROM wallet_transaction('init_alice_gold_001')$$,
    $$SELECT e.transaction_id, e.id, e.wallet_id FROM ledger_entries e
        JOIN transactions t ON t.id = e.transaction_id WHERE t.reference_id = 'init_alice_gold_001' ORDER BY e.id$$,
    'ids of the transaction, its entries and their wallets');

CREATE TEMP TABLE spend AS
SELECT * FROM wallet_spend('user_bob', 'GOLD_COINS', 250, 'tx_spend_1', 'armor', '{"slot": "chest", "level": 2}');
SELECT results_eq(
    $$SELECT transaction_id, type, user_id, amount, created_at, metadata, description FROM wallet_transaction('tx_spend_1') LIMIT 1$$,
    $$SELECT transaction_id, 'SPEND'::transaction_type, 'user_bob', 250::bigint, created_at,
             '{"slot": "chest", "level": 2}'::jsonb, 'Purchase: armor' FROM spend$$,
    'a spend: its id, type, player, amount, time, metadata and description');
SELECT results_eq(
    $$SELECT wallet_name, entry_type, entry_amount FROM wallet_transaction('tx_spend_1')$$,
    $$VALUES ('Bob', 'DEBIT', 250::bigint), ('Gold Coins Revenue', 'CREDIT', 250::bigint)$$,
    'a spend debits the player and credits revenue');

SELECT lives_ok($$SELECT wallet_bonus('user_charlie', 'DIAMONDS', 9, 'tx_bonus_1', 'QUEST')$$, 'a bonus');
SELECT results_eq(
    $$SELECT asset_code, wallet_name, entry_type, entry_amount FROM wallet_transaction(p_reference_id => 'tx_bonus_1')$$,
    $$VALUES ('DIAMONDS', 'Charlie', 'CREDIT', 9::bigint), ('DIAMONDS', 'Diamonds Bonus Pool', 'DEBIT', 9::bigint)$$,
    'a bonus credits the player and debits the bonus pool (named argument call)');

SELECT throws_ok($$SELECT * FROM wallet_transaction('no_such_ref')$$, 'WL005',
    'transaction with reference id no_such_ref not found', 'an unknown reference id is WL005');
SELECT throws_ok($$SELECT * FROM wallet_transaction('INIT_ALICE_GOLD_001')$$, 'WL005',
    'transaction with reference id INIT_ALICE_GOLD_001 not found', 'reference ids are case-sensitive');
SELECT throws_ok($$SELECT * FROM wallet_transaction(NULL)$$, 'WL006',
    'invalid argument reference_id: is required', 'a null reference id');
SELECT throws_ok($$SELECT * FROM wallet_transaction('')$$, 'WL006',
    'invalid argument reference_id: must be a non-empty string of at most 128 characters', 'an empty reference id');
SELECT throws_ok(format('SELECT * FROM wallet_transaction(%L)', repeat('r', 129)), 'WL006',
    'invalid argument reference_id: must be a non-empty string of at most 128 characters', 'a 129-character reference id');
SELECT throws_ok(format('SELECT * FROM wallet_transaction(%L)', repeat('r', 128)), 'WL005', NULL,
    'a 128-character reference id is valid (and unknown)');

-- the actor: the API key's name when the service passes it, else the calling role; db_role always the caller
SELECT lives_ok($$SELECT wallet_topup('user_bob', 'GOLD_COINS', 1, 'tx_actor_key', 'card', p_actor => 'game-backend');
                  SELECT wallet_topup('user_bob', 'GOLD_COINS', 1, 'tx_actor_psql', 'card')$$, 'two top-ups');
SELECT results_eq($$SELECT DISTINCT actor, db_role FROM wallet_transaction('tx_actor_key')$$,
    $$VALUES ('game-backend', session_user::text COLLATE "default")$$, 'through the service: the key''s name, and the role that called');
SELECT results_eq($$SELECT DISTINCT actor, db_role FROM wallet_transaction('tx_actor_psql')$$,
    $$VALUES (session_user::text COLLATE "default", session_user::text COLLATE "default")$$,
    'from psql: the calling role (not the functions'' owner)');

SELECT * FROM finish();
ROLLBACK;
