-- wallet_seed: the demo players' opening balances, double-entry from the treasury, idempotent.
-- The template database is already seeded, so every call here is a second run.
BEGIN;
SELECT plan(13);

SELECT has_function('wallet_seed', 'wallet_seed exists');

SELECT results_eq(
    $$SELECT w.user_id::text, w.asset_code, e.amount, e.balance_after::bigint, t.type FROM wallets w
        JOIN ledger_entries e ON e.wallet_id = w.id JOIN transactions t ON t.id = e.transaction_id
       WHERE w.kind = 'PLAYER' ORDER BY e.id$$,
    $$VALUES ('user_alice', 'GOLD_COINS', 100000::bigint, 100000::bigint, 'INITIAL_BALANCE'::transaction_type),
             ('user_alice', 'DIAMONDS', 500::bigint, 500::bigint, 'INITIAL_BALANCE'::transaction_type),
             ('user_bob', 'GOLD_COINS', 50000::bigint, 50000::bigint, 'INITIAL_BALANCE'::transaction_type),
             ('user_charlie', 'GOLD_COINS', 25000::bigint, 25000::bigint, 'INITIAL_BALANCE'::transaction_type)$$,
    'alice 100000 gold + 500 diamonds, bob 50000, charlie 25000, each one INITIAL_BALANCE entry');
SELECT results_eq(
    $$SELECT DISTINCT user_id::text, name FROM wallets WHERE kind = 'PLAYER' ORDER BY 1$$,
    $$VALUES ('user_alice', 'Alice'), ('user_bob', 'Bob'), ('user_charlie', 'Charlie')$$,
    'the players'' display names');
SELECT results_eq(
    $$SELECT reference_id::text, amount::bigint FROM transactions ORDER BY reference_id$$,
    $$VALUES ('init_alice_diamonds_001', 500::bigint), ('init_alice_gold_001', 100000::bigint),
             ('init_bob_gold_001', 50000::bigint), ('init_charlie_gold_001', 25000::bigint)$$,
    'the fixed reference ids of the contract');
SELECT results_eq(
    $$SELECT asset_code, kind, balance FROM wallet_system_balances WHERE balance <> 0 ORDER BY asset_code, kind$$,
    $$VALUES ('DIAMONDS', 'TREASURY'::wallet_kind, -500::bigint), ('GOLD_COINS', 'TREASURY'::wallet_kind, -175000::bigint)$$,
    'both legs are recorded: the treasury issued every opening balance');

-- a second run replays every posting and writes nothing
CREATE TEMP TABLE again AS SELECT * FROM wallet_seed();
SELECT results_eq(
    $$SELECT user_id, asset_code, amount, balance, transaction_type, replayed FROM again$$,
    $$VALUES ('user_alice', 'GOLD_COINS', 100000::bigint, 100000::bigint, 'INITIAL_BALANCE'::transaction_type, true),
             ('user_alice', 'DIAMONDS', 500::bigint, 500::bigint, 'INITIAL_BALANCE'::transaction_type, true),
             ('user_bob', 'GOLD_COINS', 50000::bigint, 50000::bigint, 'INITIAL_BALANCE'::transaction_type, true),
             ('user_charlie', 'GOLD_COINS', 25000::bigint, 25000::bigint, 'INITIAL_BALANCE'::transaction_type, true)$$,
    'a second run returns the four postings, all replayed');
SELECT set_eq('SELECT transaction_id FROM again', 'SELECT id FROM transactions',
    'with the original transaction ids');
SELECT is((SELECT count(*) FROM transactions)::int, 4, 'no new transaction');
SELECT is((SELECT count(*) FROM ledger_entries)::int, 8, 'no new entry');

-- after the players have moved on, a re-seed neither resets nor re-credits them
SELECT lives_ok($$SELECT wallet_spend('user_bob', 'GOLD_COINS', 50000, 'seed_spend_bob', 'castle')$$, 'bob spends everything');
SELECT is((SELECT balance FROM wallet_seed() WHERE user_id = 'user_bob'), 50000::bigint,
    'the replay reports the opening balance ...');
SELECT is((SELECT balance::bigint FROM wallets WHERE user_id = 'user_bob'), 0::bigint, '... and bob still has 0');

-- a seed reference id that holds something else is a conflict, not a silent skip (the seed row is
-- altered with the append-only triggers off, inside this rolled-back transaction)
SET session_replication_role = replica;
UPDATE transactions SET amount = 49999 WHERE reference_id = 'init_bob_gold_001';
SET session_replication_role = origin;
SELECT throws_ok('SELECT * FROM wallet_seed()', 'WL004',
    format('reference id init_bob_gold_001 already belongs to transaction %s (INITIAL_BALANCE of 49999 GOLD_COINS for user_bob), not to this INITIAL_BALANCE of 50000 GOLD_COINS for user_bob',
           (SELECT id FROM transactions WHERE reference_id = 'init_bob_gold_001')),
    'wallet_seed raises WL004 when a seed reference id was used for something else');

SELECT * FROM finish();
ROLLBACK;
