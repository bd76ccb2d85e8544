-- wallet_verify: no violations on a healthy ledger; each invariant reported when the data is broken
-- on purpose (with the guarding triggers or constraints switched off, always undone again).
BEGIN;
SELECT plan(15);

-- Run p_sql (the damage), collect wallet_verify() as 'invariant|subject|detail' lines, then undo the
-- damage by rolling back to before p_sql (an exception caught in this block), so every case starts
-- from the healthy ledger and the damage never reaches the surrounding test transaction.
CREATE FUNCTION pg_temp.violations_after(p_sql text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    v_found text[];
BEGIN
    BEGIN
        EXECUTE p_sql;
        v_found := ARRAY(SELECT concat_ws('|', v.invariant, v.subject, v.detail) FROM wallet_verify() v ORDER BY 1);
        RAISE EXCEPTION 'undo' USING ERRCODE = 'WLTST';
    EXCEPTION WHEN SQLSTATE 'WLTST' THEN
        RETURN v_found;
    END;
END;
$$;

SELECT is_empty('SELECT * FROM wallet_verify()', 'the seeded ledger is healthy');

DO $$
BEGIN
    PERFORM wallet_topup('user_alice', 'GOLD_COINS', 700, 'v_topup', 'card');
    PERFORM wallet_bonus('user_dora', 'LOYALTY_POINTS', 40, 'v_bonus', 'WELCOME');
    PERFORM wallet_spend('user_bob', 'GOLD_COINS', 50000, 'v_spend_all', 'castle');
    PERFORM wallet_spend('user_dora', 'LOYALTY_POINTS', 15, 'v_spend', 'badge');
    PERFORM wallet_topup('user_alice', 'GOLD_COINS', 700, 'v_topup', 'card');  -- a replay
END;
$$;
SELECT is_empty('SELECT * FROM wallet_verify()', 'healthy after top-ups, bonuses, spends and a replay');
-- run the postings' deferred checks now: a table with pending trigger events cannot be ALTERed below
SET CONSTRAINTS ALL IMMEDIATE;
SET CONSTRAINTS ALL DEFERRED;

-- ---------------------------------------------------------------- each invariant

SELECT is(
    pg_temp.violations_after($$
        SET session_replication_role = replica;  -- no triggers: the per-INSERT zero-sum check is off
        INSERT INTO ledger_entries (id, transaction_id, wallet_id, asset_code, amount, balance_after)
        OVERRIDING SYSTEM VALUE
        VALUES (900001, pg_temp.tx('init_bob_gold_001'), pg_temp.system_wallet('GOLD_COINS', 'TREASURY'),
                'GOLD_COINS', -7, NULL);
    $$),
    ARRAY['asset_unbalanced|GOLD_COINS|all entries sum to -7',
          format('transaction_legs|%s|INITIAL_BALANCE of 50000 GOLD_COINS for user_bob (reference init_bob_gold_001): 1 player leg(s) as expected, 1 system leg(s) as expected, 3 entries',
                 pg_temp.tx('init_bob_gold_001')),
          format('transaction_unbalanced|%s|entries sum to -7 GOLD_COINS', pg_temp.tx('init_bob_gold_001'))],
    'a stray third leg: transaction_unbalanced, asset_unbalanced and transaction_legs');

SELECT is(
    pg_temp.violations_after($$
        INSERT INTO transactions (id, reference_id, type, user_id, asset_code, amount, description)
        VALUES ('00000000-0000-0000-0000-0000000000b1', 'v_no_entries', 'TOPUP', 'user_bob', 'GOLD_COINS', 10, 'manual');
    $$),
    ARRAY['transaction_legs|00000000-0000-0000-0000-0000000000b1|TOPUP of 10 GOLD_COINS for user_bob (reference v_no_entries): 0 player leg(s) as expected, 0 system leg(s) as expected, 0 entries'],
    'a transaction without entries: transaction_legs');

SELECT is(
    pg_temp.violations_after(format($$
        -- balanced, chain-consistent and stored: every trigger accepts it, but the spend credits the treasury
        INSERT INTO transactions (id, reference_id, type, user_id, asset_code, amount, item_id, description)
        VALUES ('00000000-0000-0000-0000-0000000000c1', 'v_wrong_leg', 'SPEND', 'user_alice', 'GOLD_COINS', 10, 'x', 'manual');
        UPDATE wallets SET balance = balance - 10 WHERE id = %1$s;
        INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after, entry_hash)
        VALUES ('00000000-0000-0000-0000-0000000000c1', %1$s, 'GOLD_COINS', -10, 100690,
                pg_temp.chain('00000000-0000-0000-0000-0000000000c1', %1$s, -10, 100690)),
               ('00000000-0000-0000-0000-0000000000c1', %2$s, 'GOLD_COINS', 10, NULL, NULL);
        SELECT pg_temp.advance_head(%1$s);
        SET CONSTRAINTS ALL IMMEDIATE;
    $$, pg_temp.wallet_of('user_alice', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'TREASURY'))),
    ARRAY['transaction_legs|00000000-0000-0000-0000-0000000000c1|SPEND of 10 GOLD_COINS for user_alice (reference v_wrong_leg): 1 player leg(s) as expected, 0 system leg(s) as expected, 2 entries'],
    'a spend whose system leg goes to the treasury instead of revenue: transaction_legs');
SET CONSTRAINTS ALL DEFERRED;

SELECT is(
    pg_temp.violations_after($$
        SET session_replication_role = replica;  -- the deferred stored-balance check is off
        UPDATE wallets SET balance = 25001 WHERE user_id = 'user_charlie';
    $$),
    ARRAY[format('stored_balance_mismatch|%s|wallet of user_charlie in GOLD_COINS stores 25001, its entries sum to 25000',
                 pg_temp.wallet_of('user_charlie', 'GOLD_COINS'))],
    'a stored balance changed without an entry: stored_balance_mismatch');

SELECT is(
    pg_temp.violations_after(format($$
        SET session_replication_role = replica;  -- the balance_after chain check is off
        INSERT INTO transactions (id, reference_id, type, user_id, asset_code, amount, description)
        VALUES ('00000000-0000-0000-0000-0000000000d1', 'v_chain', 'TOPUP', 'user_charlie', 'GOLD_COINS', 10, 'manual');
        INSERT INTO ledger_entries (id, transaction_id, wallet_id, asset_code, amount, balance_after, entry_hash)
        OVERRIDING SYSTEM VALUE
        VALUES (900020, '00000000-0000-0000-0000-0000000000d1', %1$s, 'GOLD_COINS', 10, 25011,
                pg_temp.chain('00000000-0000-0000-0000-0000000000d1', %1$s, 10, 25011)),
               (900021, '00000000-0000-0000-0000-0000000000d1', %2$s, 'GOLD_COINS', -10, NULL, NULL);
        SELECT pg_temp.advance_head(%1$s);
        UPDATE wallets SET balance = 25010 WHERE id = %1$s;
    $$, pg_temp.wallet_of('user_charlie', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'TREASURY'))),
    ARRAY[format('balance_chain_broken|900020|entry of wallet %s records balance_after 25011, the running sum is 25010',
                 pg_temp.wallet_of('user_charlie', 'GOLD_COINS'))],
    'an entry whose balance_after is not the running sum: balance_chain_broken');

SELECT is(
    pg_temp.violations_after(format($$
        -- the domain CHECK that keeps balances non-negative is dropped (triggers stay on: the data is consistent)
        ALTER DOMAIN wallet_balance DROP CONSTRAINT wallet_balance_range;
        INSERT INTO transactions (id, reference_id, type, user_id, asset_code, amount, item_id, description)
        VALUES ('00000000-0000-0000-0000-0000000000e1', 'v_negative', 'SPEND', 'user_charlie', 'GOLD_COINS', 25001, 'x', 'manual');
        UPDATE wallets SET balance = -1 WHERE id = %1$s;
        INSERT INTO ledger_entries (id, transaction_id, wallet_id, asset_code, amount, balance_after, entry_hash)
        OVERRIDING SYSTEM VALUE
        VALUES (900030, '00000000-0000-0000-0000-0000000000e1', %1$s, 'GOLD_COINS', -25001, -1,
                pg_temp.chain('00000000-0000-0000-0000-0000000000e1', %1$s, -25001, -1)),
               (900031, '00000000-0000-0000-0000-0000000000e1', %2$s, 'GOLD_COINS', 25001, NULL, NULL);
        SELECT pg_temp.advance_head(%1$s);
        SET CONSTRAINTS ALL IMMEDIATE;
    $$, pg_temp.wallet_of('user_charlie', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'REVENUE'))),
    ARRAY[format('negative_balance|%s|wallet of user_charlie in GOLD_COINS has balance -1',
                 pg_temp.wallet_of('user_charlie', 'GOLD_COINS')),
          'negative_balance|900030|entry records balance_after -1'],
    'a balance below zero: negative_balance, for the wallet and for the entry');
SET CONSTRAINTS ALL DEFERRED;

SELECT is(
    pg_temp.violations_after(format($$
        -- the domain CHECK that caps balances at 2^53-1 is dropped
        ALTER DOMAIN wallet_balance DROP CONSTRAINT wallet_balance_range;
        INSERT INTO transactions (id, reference_id, type, user_id, asset_code, amount, payment_method, description)
        VALUES ('00000000-0000-0000-0000-0000000000f1', 'v_limit', 'TOPUP', 'user_alice', 'GOLD_COINS',
                9007199254740991, 'card', 'manual');
        UPDATE wallets SET balance = 9007199254841691 WHERE id = %1$s;
        INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after, entry_hash)
        VALUES ('00000000-0000-0000-0000-0000000000f1', %1$s, 'GOLD_COINS', 9007199254740991, 9007199254841691,
                pg_temp.chain('00000000-0000-0000-0000-0000000000f1', %1$s, 9007199254740991, 9007199254841691)),
               ('00000000-0000-0000-0000-0000000000f1', %2$s, 'GOLD_COINS', -9007199254740991, NULL, NULL);
        SELECT pg_temp.advance_head(%1$s);
        SET CONSTRAINTS ALL IMMEDIATE;
    $$, pg_temp.wallet_of('user_alice', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'TREASURY'))),
    ARRAY[format('balance_limit|%s|wallet of user_alice in GOLD_COINS has balance 9007199254841691',
                 pg_temp.wallet_of('user_alice', 'GOLD_COINS'))],
    'a balance above 2^53-1: balance_limit');
SET CONSTRAINTS ALL DEFERRED;

-- ---------------------------------------------------------------- tamper evidence (the hash chain)

SELECT is(
    pg_temp.violations_after(format($$
        -- a superuser with the triggers off rewrites alice's opening balance from 100000 to 200000 and keeps
        -- everything else consistent: both legs, every later balance_after, the stored balance
        SET session_replication_role = replica;
        UPDATE transactions SET amount = 200000 WHERE reference_id = 'init_alice_gold_001';
        UPDATE ledger_entries SET amount = sign(amount) * 200000,
                                  balance_after = CASE WHEN balance_after IS NOT NULL THEN 200000 END
         WHERE transaction_id = pg_temp.tx('init_alice_gold_001');
        UPDATE ledger_entries SET balance_after = balance_after + 100000
         WHERE wallet_id = %1$s AND transaction_id <> pg_temp.tx('init_alice_gold_001');
        UPDATE wallets SET balance = balance + 100000 WHERE id = %1$s;
    $$, pg_temp.wallet_of('user_alice', 'GOLD_COINS'))),
    ARRAY(SELECT format('entry_hash_mismatch|%s|entry of wallet %s (user_alice, GOLD_COINS) in transaction %s (reference %s) does not match its hash chain',
                        e.id, e.wallet_id, e.transaction_id, t.reference_id)
            FROM ledger_entries e JOIN transactions t ON t.id = e.transaction_id
           WHERE e.wallet_id = pg_temp.wallet_of('user_alice', 'GOLD_COINS') ORDER BY 1),
    'a consistent rewrite of a seeded transaction is caught by the hash chain alone, on every entry it touched');

SELECT is(
    pg_temp.violations_after(format($$
        -- a superuser deletes alice's opening balance (the transaction and both legs, so the books still
        -- balance) and re-bases her later entries and stored balance on it
        SET session_replication_role = replica;
        DELETE FROM ledger_entries WHERE transaction_id = pg_temp.tx('init_alice_gold_001');
        DELETE FROM transactions WHERE reference_id = 'init_alice_gold_001';
        UPDATE ledger_entries SET balance_after = balance_after - 100000 WHERE wallet_id = %1$s;
        UPDATE wallets SET balance = balance - 100000 WHERE id = %1$s;
    $$, pg_temp.wallet_of('user_alice', 'GOLD_COINS'))),
    ARRAY(SELECT format('entry_hash_mismatch|%s|entry of wallet %s (user_alice, GOLD_COINS) in transaction %s (reference %s) does not match its hash chain',
                        e.id, e.wallet_id, e.transaction_id, t.reference_id)
            FROM ledger_entries e JOIN transactions t ON t.id = e.transaction_id
           WHERE e.wallet_id = pg_temp.wallet_of('user_alice', 'GOLD_COINS') AND t.reference_id <> 'init_alice_gold_001'
           ORDER BY 1),
    'a transaction deleted from the middle of a wallet''s history is caught by the next entry''s hash');

SELECT is(
    pg_temp.violations_after(format($$
        UPDATE wallets SET chain_head = sha256('forged'::bytea) WHERE id = %1$s;
    $$, pg_temp.wallet_of('user_bob', 'GOLD_COINS'))),
    ARRAY[format('chain_head_mismatch|%s|wallet of user_bob in GOLD_COINS: chain_head is not the hash of its newest entry',
                 pg_temp.wallet_of('user_bob', 'GOLD_COINS'))],
    'a wallet whose chain head is not its newest entry''s hash: chain_head_mismatch');

-- the hash renders timestamps in UTC: postings and checks in other time zones agree
SET LOCAL TimeZone = 'Pacific/Kiritimati';
SELECT lives_ok($$SELECT wallet_topup('user_charlie', 'GOLD_COINS', 3, 'v_tz_1', 'card')$$, 'a posting at UTC+14');
SET LOCAL TimeZone = 'America/Adak';
SELECT is_empty('SELECT * FROM wallet_verify()', 'verified at UTC-10: no hash depends on the session''s time zone');
RESET TimeZone;

SELECT is_empty('SELECT * FROM wallet_verify()', 'every break was undone: the ledger is healthy again');

SELECT * FROM finish();
ROLLBACK;
