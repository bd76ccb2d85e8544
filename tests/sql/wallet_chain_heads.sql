-- wallet_chain_heads: each player wallet's newest entry and its hash.
BEGIN;
SELECT plan(4);

SELECT has_function('wallet_chain_heads', 'wallet_chain_heads exists');
SELECT is((SELECT count(*) FROM wallet_chain_heads())::int, (SELECT count(*) FROM wallets WHERE kind = 'PLAYER')::int,
    'one head per player wallet (none for system wallets)');
SELECT lives_ok($$SELECT wallet_topup('user_bob', 'GOLD_COINS', 5, 'ch_1', 'card')$$, 'a top-up');
SELECT results_eq(
    $$SELECT entry_id, entry_hash FROM wallet_chain_heads() WHERE user_id = 'user_bob' AND asset_code = 'GOLD_COINS'$$,
    $$SELECT e.id, encode(e.entry_hash, 'hex') FROM ledger_entries e
       WHERE e.transaction_id = pg_temp.tx('ch_1') AND e.balance_after IS NOT NULL$$,
    'bob''s head is the top-up''s entry, with its hash in hex');

SELECT * FROM finish();
ROLLBACK;
