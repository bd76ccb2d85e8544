-- wallet_verify_anchor: heads kept outside the database still hold after more postings, and stop holding
-- when history is rewritten, even consistently (every later hash recomputed).
BEGIN;
SELECT plan(6);

SELECT has_function('wallet_verify_anchor', ARRAY['jsonb'], 'wallet_verify_anchor exists');
CREATE TEMP TABLE anchor AS
SELECT jsonb_agg(jsonb_build_object('wallet_id', wallet_id, 'entry_id', entry_id, 'entry_hash', entry_hash)) AS heads
  FROM wallet_chain_heads();
SELECT is_empty('SELECT * FROM wallet_verify_anchor((SELECT heads FROM anchor))', 'the heads of now hold');
SELECT lives_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 5, 'an_1', 'card');
                  SELECT wallet_spend('user_alice', 'GOLD_COINS', 3, 'an_2', 'hat')$$, 'more postings');
SELECT is_empty('SELECT * FROM wallet_verify_anchor((SELECT heads FROM anchor))', 'later postings keep the anchor valid');

-- a superuser rewrites alice's opening balance and recomputes her whole chain: wallet_verify() cannot tell,
-- the anchor can
SET LOCAL session_replication_role = replica;
UPDATE transactions SET amount = 200000 WHERE reference_id = 'init_alice_gold_001';
UPDATE ledger_entries SET amount = CASE WHEN amount > 0 THEN 200000 ELSE -200000 END
 WHERE transaction_id = pg_temp.tx('init_alice_gold_001');
UPDATE ledger_entries SET balance_after = balance_after + 100000
 WHERE wallet_id = pg_temp.wallet_of('user_alice', 'GOLD_COINS');
UPDATE wallets SET balance = balance + 100000 WHERE id = pg_temp.wallet_of('user_alice', 'GOLD_COINS');
DO $$
DECLARE
    r record;
    v_hash bytea;
BEGIN
    FOR r IN SELECT e.id, e.amount, e.balance_after, t FROM ledger_entries e JOIN transactions t ON t.id = e.transaction_id
              WHERE e.wallet_id = pg_temp.wallet_of('user_alice', 'GOLD_COINS') ORDER BY e.id LOOP
        v_hash := _wallet_entry_hash(v_hash, r.t, pg_temp.wallet_of('user_alice', 'GOLD_COINS'), r.amount, r.balance_after);
        UPDATE ledger_entries SET entry_hash = v_hash WHERE id = r.id;
    END LOOP;
END;
$$;
SELECT is_empty($$SELECT * FROM wallet_verify() WHERE invariant = 'entry_hash_mismatch'$$,
    'a rewrite that recomputed every later hash passes the hash check of wallet_verify');
SELECT is(ARRAY(SELECT subject FROM wallet_verify_anchor((SELECT heads FROM anchor))),
          ARRAY[pg_temp.wallet_of('user_alice', 'GOLD_COINS')::text], 'the anchor names alice''s gold wallet');

SELECT * FROM finish();
ROLLBACK;
