-- wallet_verify: no violations on a healthy ledger; each invariant reported when the data is broken
-- on purpose (with the guarding triggers or constraints switched off, always undone again).
BEGIN;
SELECT plan(42);

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
                 pg_temp.wallet_of('user_charlie', 'GOLD_COINS')),
          -- (with the triggers off, the transaction did not enter the event inbox either)
          'event_missing|00000000-0000-0000-0000-0000000000d1|TOPUP v_chain of user_charlie: neither numbered as an event nor in the event inbox'],
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
           ORDER BY 1)
    -- (with the foreign keys off, its event inbox row stayed behind)
    || ARRAY(SELECT format('event_mismatch|inbox %s|inbox row of transaction %s, which does not exist', i.seq, i.transaction_id)
               FROM event_inbox i WHERE i.transaction_id = pg_temp.tx('init_alice_gold_001')),
    'a transaction deleted from the middle of a wallet''s history is caught by the next entry''s hash');

SELECT is(
    pg_temp.violations_after(format($$
        UPDATE wallets SET chain_head = sha256('forged'::bytea) WHERE id = %1$s;
    $$, pg_temp.wallet_of('user_bob', 'GOLD_COINS'))),
    ARRAY[format('chain_head_mismatch|%s|wallet of user_bob in GOLD_COINS: chain_head is not the hash of its newest entry',
                 pg_temp.wallet_of('user_bob', 'GOLD_COINS'))],
    'a wallet whose chain head is not its newest entry''s hash: chain_head_mismatch');

-- ---------------------------------------------------------------- economy operations

DO $$
BEGIN
    PERFORM wallet_spend('user_alice', 'GOLD_COINS', 100, 'v_eco_spend', 'hat');
    PERFORM wallet_reverse('v_eco_refund', 'v_eco_spend', 'partial refund', 60);
    PERFORM wallet_purchase('user_alice', 'v_eco_buy', 'bundle',
                            '[{"asset_code": "GOLD_COINS", "amount": 10}, {"asset_code": "DIAMONDS", "amount": 5}]');
    PERFORM wallet_reverse('v_eco_buy_refund', 'v_eco_buy', 'refund');
    PERFORM wallet_purchase('user_alice', 'v_eco_buy_2', 'bundle',
                            '[{"asset_code": "GOLD_COINS", "amount": 10}, {"asset_code": "DIAMONDS", "amount": 5}]');
    PERFORM wallet_reverse('v_eco_chargeback', 'v_topup', 'chargeback', 200);
    PERFORM wallet_reverse('v_eco_clawback', 'v_bonus', 'abuse', 20);
    PERFORM wallet_hold('user_alice', 'GOLD_COINS', 50, 'v_eco_hold');
    PERFORM wallet_capture('v_eco_hold', 30);
    PERFORM wallet_spend('user_alice', 'GOLD_COINS', 30, 'v_eco_spend_30', 'x');
    PERFORM wallet_hold('user_charlie', 'GOLD_COINS', 100, 'v_eco_active', 600);
    PERFORM wallet_hold('user_charlie', 'GOLD_COINS', 100, 'v_eco_voided', 600);
    PERFORM wallet_void('v_eco_voided');
    PERFORM wallet_hold('user_charlie', 'GOLD_COINS', 24800, 'v_eco_short', 1);
END;
$$;
SELECT is_empty('SELECT * FROM wallet_verify()',
    'healthy after purchases, refunds, a chargeback, a clawback, a capture, active, voided and short holds');
SELECT pg_sleep(1.1);
SELECT is_empty('SELECT * FROM wallet_verify()', 'and once a hold expired unmarked (its wallet''s holds_until is past)');
SET CONSTRAINTS ALL IMMEDIATE;
SET CONSTRAINTS ALL DEFERRED;

SELECT is(
    pg_temp.violations_after(format($$
        INSERT INTO transactions (id, reference_id, type, user_id, asset_code, amount, original_id, reason, description)
        VALUES ('00000000-0000-0000-0000-00000000e001', 'v_over', 'REVERSAL', 'user_alice', 'GOLD_COINS', 50,
                pg_temp.tx('v_eco_spend'), 'again', 'manual');
        SELECT pg_temp.post_entries('00000000-0000-0000-0000-00000000e001', %1$s, 50, %2$s);
        SET CONSTRAINTS ALL IMMEDIATE;
    $$, pg_temp.wallet_of('user_alice', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'REVENUE'))),
    ARRAY[format('reversal_exceeds_original|%1$s|SPEND %1$s (reference v_eco_spend) moved 100 GOLD_COINS; its reversals took back 110',
                 pg_temp.tx('v_eco_spend'))],
    'reversals taking back more than their original moved: reversal_exceeds_original');
SET CONSTRAINTS ALL DEFERRED;

SELECT is(
    pg_temp.violations_after(format($$
        INSERT INTO transactions (id, reference_id, type, user_id, asset_code, amount, original_id, reason, description)
        VALUES ('00000000-0000-0000-0000-00000000e002', 'v_rev_rev', 'REVERSAL', 'user_alice', 'GOLD_COINS', 10,
                pg_temp.tx('v_eco_refund'), 'undo the refund', 'manual');
        SELECT pg_temp.post_entries('00000000-0000-0000-0000-00000000e002', %1$s, -10, %2$s);
        SET CONSTRAINTS ALL IMMEDIATE;
    $$, pg_temp.wallet_of('user_alice', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'REVENUE'))),
    ARRAY[format('reversal_invalid|00000000-0000-0000-0000-00000000e002|reversal v_rev_rev of v_eco_refund (REVERSAL for user_alice): reverses a reversal'),
          'transaction_legs|00000000-0000-0000-0000-00000000e002|REVERSAL of 10 GOLD_COINS for user_alice (reference v_rev_rev): 0 player leg(s) as expected, 0 system leg(s) as expected, 2 entries'],
    'a reversal of a reversal: reversal_invalid (and its legs follow no direction: transaction_legs)');
SET CONSTRAINTS ALL DEFERRED;

SELECT is(
    pg_temp.violations_after(format($$
        INSERT INTO transactions (id, reference_id, type, user_id, asset_code, amount, original_id, reason, description)
        VALUES ('00000000-0000-0000-0000-00000000e003', 'v_rev_capture', 'REVERSAL', 'user_alice', 'GOLD_COINS', 10,
                pg_temp.tx('v_eco_hold'), 'refund', 'manual');
        SELECT pg_temp.post_entries('00000000-0000-0000-0000-00000000e003', %1$s, 10, %2$s);
        SET CONSTRAINTS ALL IMMEDIATE;
    $$, pg_temp.wallet_of('user_alice', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'REVENUE'))),
    ARRAY['reversal_invalid|00000000-0000-0000-0000-00000000e003|reversal v_rev_capture of v_eco_hold (CAPTURE for user_alice): reverses the capture of a hold'],
    'a reversal of a hold''s capture: reversal_invalid');
SET CONSTRAINTS ALL DEFERRED;

SELECT is(
    pg_temp.violations_after(format($$
        INSERT INTO transactions (id, reference_id, type, user_id, legs, original_id, reason, description)
        VALUES ('00000000-0000-0000-0000-00000000e004', 'v_rev_part', 'REVERSAL', 'user_alice',
                '[{"asset_code": "GOLD_COINS", "amount": 10}]', pg_temp.tx('v_eco_buy_2'), 'refund', 'manual');
        SELECT pg_temp.post_entries('00000000-0000-0000-0000-00000000e004', %1$s, 10, %2$s);
        SET CONSTRAINTS ALL IMMEDIATE;
    $$, pg_temp.wallet_of('user_alice', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'REVENUE'))),
    ARRAY['reversal_invalid|00000000-0000-0000-0000-00000000e004|reversal v_rev_part of v_eco_buy_2 (PURCHASE for user_alice): reverses part of a purchase'],
    'a reversal of one leg of a purchase: reversal_invalid');
SET CONSTRAINTS ALL DEFERRED;

SELECT is(
    pg_temp.violations_after(format($$
        INSERT INTO transactions (id, reference_id, type, user_id, asset_code, amount, original_id, reason, description)
        VALUES ('00000000-0000-0000-0000-00000000e005', 'v_rev_other', 'REVERSAL', 'user_bob', 'GOLD_COINS', 10,
                pg_temp.tx('v_eco_spend'), 'refund', 'manual');
        SELECT pg_temp.post_entries('00000000-0000-0000-0000-00000000e005', %1$s, 10, %2$s);
        SET CONSTRAINTS ALL IMMEDIATE;
    $$, pg_temp.wallet_of('user_bob', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'REVENUE'))),
    ARRAY['reversal_invalid|00000000-0000-0000-0000-00000000e005|reversal v_rev_other of v_eco_spend (SPEND for user_alice): is for player user_bob'],
    'a reversal paying another player: reversal_invalid');
SET CONSTRAINTS ALL DEFERRED;

SELECT is(
    pg_temp.violations_after(format($$
        INSERT INTO transactions (id, reference_id, type, user_id, asset_code, amount, original_id, reason, description)
        VALUES ('00000000-0000-0000-0000-00000000e006', 'v_wrong_way', 'REVERSAL', 'user_alice', 'GOLD_COINS', 10,
                pg_temp.tx('v_eco_spend'), 'refund', 'manual');
        SELECT pg_temp.post_entries('00000000-0000-0000-0000-00000000e006', %1$s, -10, %2$s);
        SET CONSTRAINTS ALL IMMEDIATE;
    $$, pg_temp.wallet_of('user_alice', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'REVENUE'))),
    ARRAY['transaction_legs|00000000-0000-0000-0000-00000000e006|REVERSAL of 10 GOLD_COINS for user_alice (reference v_wrong_way): 0 player leg(s) as expected, 0 system leg(s) as expected, 2 entries'],
    'a refund that debits the player (the same way as its spend): transaction_legs');
SET CONSTRAINTS ALL DEFERRED;

SELECT is(
    pg_temp.violations_after(format($$
        INSERT INTO transactions (id, reference_id, type, user_id, legs, item_id, description)
        VALUES ('00000000-0000-0000-0000-00000000e007', 'v_one_leg', 'PURCHASE', 'user_alice',
                '[{"asset_code": "DIAMONDS", "amount": 5}, {"asset_code": "GOLD_COINS", "amount": 10}]', 'x', 'manual');
        SELECT pg_temp.post_entries('00000000-0000-0000-0000-00000000e007', %1$s, -10, %2$s);
        SET CONSTRAINTS ALL IMMEDIATE;
    $$, pg_temp.wallet_of('user_alice', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'REVENUE'))),
    ARRAY['transaction_legs|00000000-0000-0000-0000-00000000e007|PURCHASE of 5 DIAMONDS + 10 GOLD_COINS for user_alice (reference v_one_leg): 1 player leg(s) as expected, 1 system leg(s) as expected, 2 entries'],
    'a purchase that debits only one of its two legs: transaction_legs');
SET CONSTRAINTS ALL DEFERRED;

SELECT is(
    pg_temp.violations_after($$
        SET session_replication_role = replica;  -- a hold's amount never changes (trigger holds_guarded)
        UPDATE holds SET amount = 25001 WHERE reference_id = 'v_eco_active';
    $$),
    ARRAY[format('available_negative|%s|wallet of user_charlie in GOLD_COINS has balance 25000 but active holds of 25001',
                 pg_temp.wallet_of('user_charlie', 'GOLD_COINS'))],
    'active holds larger than the balance: available_negative');

SELECT is(
    pg_temp.violations_after(format($$
        UPDATE wallets SET holds_until = (SELECT expires_at - interval '1 second' FROM holds WHERE reference_id = 'v_eco_active')
         WHERE id = %s;
    $$, pg_temp.wallet_of('user_charlie', 'GOLD_COINS'))),
    ARRAY[(SELECT format('holds_until_stale|%s|hold v_eco_active of user_charlie is active until %s but its wallet says no hold lasts past %s',
                         id, expires_at, expires_at - interval '1 second')
             FROM holds WHERE reference_id = 'v_eco_active')],
    'an active hold outlasting its wallet''s holds_until: holds_until_stale');
SELECT is(
    pg_temp.violations_after(format($$UPDATE wallets SET holds_until = NULL WHERE id = %s;$$,
                                    pg_temp.wallet_of('user_charlie', 'GOLD_COINS'))),
    ARRAY[(SELECT format('holds_until_stale|%s|hold v_eco_active of user_charlie is active until %s but its wallet says no hold lasts past none',
                         id, expires_at)
             FROM holds WHERE reference_id = 'v_eco_active')],
    'an active hold on a wallet whose holds_until says none: holds_until_stale');

SELECT is(
    pg_temp.violations_after($$
        SET session_replication_role = replica;
        UPDATE holds SET expires_at = created_at + interval '1 microsecond' WHERE reference_id = 'v_eco_hold';
    $$),
    ARRAY[(SELECT format('hold_capture_mismatch|%s|hold v_eco_hold (50 GOLD_COINS for user_alice, expires %s) captured 30: captured after expiry, at %s',
                         h.id, h.created_at + interval '1 microsecond', t.created_at)
             FROM holds h JOIN transactions t ON t.id = h.capture_transaction_id WHERE h.reference_id = 'v_eco_hold')],
    'a capture posted after its hold''s expiry: hold_capture_mismatch');
SELECT is(
    pg_temp.violations_after($$
        SET session_replication_role = replica;
        UPDATE holds SET captured_amount = 31 WHERE reference_id = 'v_eco_hold';
    $$),
    ARRAY[(SELECT format('hold_capture_mismatch|%s|hold v_eco_hold (50 GOLD_COINS for user_alice, expires %s) captured 31: its transaction is CAPTURE of 30 GOLD_COINS for user_alice under v_eco_hold',
                         id, expires_at)
             FROM holds WHERE reference_id = 'v_eco_hold')],
    'a hold recording another amount than its capture posted: hold_capture_mismatch');
SELECT is(
    pg_temp.violations_after($$
        SET session_replication_role = replica;
        UPDATE holds SET capture_transaction_id = pg_temp.tx('v_eco_spend_30') WHERE reference_id = 'v_eco_hold';
    $$),
    ARRAY[(SELECT format('capture_without_hold|%s|CAPTURE v_eco_hold of 30 GOLD_COINS for user_alice has no captured hold',
                         pg_temp.tx('v_eco_hold'))),
          (SELECT format('hold_capture_mismatch|%s|hold v_eco_hold (50 GOLD_COINS for user_alice, expires %s) captured 30: its transaction is SPEND of 30 GOLD_COINS for user_alice under v_eco_spend_30',
                         id, expires_at)
             FROM holds WHERE reference_id = 'v_eco_hold')],
    'a captured hold pointing at another posting (of the same player and amount): hold_capture_mismatch, and its CAPTURE has no hold: capture_without_hold');

SELECT is(
    pg_temp.violations_after(format($$
        INSERT INTO transactions (id, reference_id, type, user_id, asset_code, amount, description)
        VALUES ('00000000-0000-0000-0000-00000000e008', 'v_lone_capture', 'CAPTURE', 'user_alice', 'GOLD_COINS', 5, 'manual');
        SELECT pg_temp.post_entries('00000000-0000-0000-0000-00000000e008', %1$s, -5, %2$s);
        SET CONSTRAINTS ALL IMMEDIATE;
    $$, pg_temp.wallet_of('user_alice', 'GOLD_COINS'), pg_temp.system_wallet('GOLD_COINS', 'REVENUE'))),
    ARRAY['capture_without_hold|00000000-0000-0000-0000-00000000e008|CAPTURE v_lone_capture of 5 GOLD_COINS for user_alice has no captured hold'],
    'a CAPTURE posted without a hold: capture_without_hold');
SET CONSTRAINTS ALL DEFERRED;

-- ---------------------------------------------------------------- events

SELECT ok(wallet_events_sequence() > 0, 'the transactions so far are numbered as events');
SELECT is_empty('SELECT * FROM wallet_verify()', 'healthy with every transaction numbered');
SELECT lives_ok($$SELECT wallet_topup('user_bob', 'GOLD_COINS', 1, 'v_ev_1', 'card'),
                         wallet_topup('user_bob', 'GOLD_COINS', 2, 'v_ev_2', 'card')$$,
    'two postings of one wallet wait in the event inbox');
SELECT is_empty('SELECT * FROM wallet_verify()', 'healthy with transactions waiting in the inbox');
SET CONSTRAINTS ALL IMMEDIATE;
SET CONSTRAINTS ALL DEFERRED;

SELECT is(
    pg_temp.violations_after($$
        SET session_replication_role = replica;  -- an inbox row is deleted only once numbered (trigger)
        DELETE FROM event_inbox WHERE transaction_id = pg_temp.tx('v_ev_1');
    $$),
    ARRAY[format('event_missing|%s|TOPUP v_ev_1 of user_bob: neither numbered as an event nor in the event inbox',
                 pg_temp.tx('v_ev_1'))],
    'a transaction in neither events nor the inbox: event_missing');

SELECT is(
    pg_temp.violations_after($$
        INSERT INTO events (id, transaction_id, user_id)
        VALUES ((SELECT max(id) + 1 FROM events), pg_temp.tx('v_ev_1'), 'user_bob');
    $$),
    ARRAY[format('event_duplicated|%s|TOPUP v_ev_1 of user_bob: numbered as event %s and still in the event inbox',
                 pg_temp.tx('v_ev_1'), (SELECT max(id) + 1 FROM events))],
    'a transaction both numbered and waiting: event_duplicated');

SELECT is(
    pg_temp.violations_after($$
        SET session_replication_role = replica;  -- events never change (trigger)
        UPDATE events SET user_id = 'user_alice' WHERE transaction_id = pg_temp.tx('init_bob_gold_001');
    $$),
    ARRAY[(SELECT format('event_mismatch|%s|event of INITIAL_BALANCE init_bob_gold_001 names player user_alice, its transaction user_bob', id)
             FROM events WHERE transaction_id = pg_temp.tx('init_bob_gold_001'))],
    'an event naming another player than its transaction: event_mismatch');

SELECT is(
    pg_temp.violations_after($$
        SET session_replication_role = replica;
        UPDATE events SET id = id + 10 WHERE id = (SELECT max(id) FROM events);
    $$),
    ARRAY[(SELECT format('event_gap|%s|event %s comes after %s: %s to %s are missing', max(id) + 10, max(id) + 10,
                         max(id) - 1, max(id), max(id) + 9) FROM events)],
    'event ids with a gap: event_gap');

SELECT is(
    pg_temp.violations_after($$
        -- the two waiting postings of bob's wallet numbered against their inbox order (the later one first)
        INSERT INTO events (id, transaction_id, user_id)
        SELECT (SELECT max(id) FROM events) + row_number() OVER (ORDER BY i.seq DESC), i.transaction_id, 'user_bob'
          FROM event_inbox i;
        DELETE FROM event_inbox;
    $$),
    ARRAY[(SELECT format('event_order|%s|event %s (TOPUP v_ev_1) moves wallet %s with entry %s, but the earlier event %s moved it with the later entry %s',
                         max(ev.id) + 2, max(ev.id) + 2, pg_temp.wallet_of('user_bob', 'GOLD_COINS'),
                         (SELECT id FROM ledger_entries WHERE transaction_id = pg_temp.tx('v_ev_1') AND balance_after IS NOT NULL),
                         max(ev.id) + 1,
                         (SELECT id FROM ledger_entries WHERE transaction_id = pg_temp.tx('v_ev_2') AND balance_after IS NOT NULL))
             FROM events ev)],
    'one wallet''s events against its entries'' order: event_order');
SELECT is(wallet_events_sequence(), 2, 'numbered in order, the two waiting postings ...');
SELECT is_empty('SELECT * FROM wallet_verify()', '... leave the ledger healthy');

-- the hash renders timestamps in UTC: postings and checks in other time zones agree
SET LOCAL TimeZone = 'Pacific/Kiritimati';
SELECT lives_ok($$SELECT wallet_topup('user_charlie', 'GOLD_COINS', 3, 'v_tz_1', 'card')$$, 'a posting at UTC+14');
SET LOCAL TimeZone = 'America/Adak';
SELECT is_empty('SELECT * FROM wallet_verify()', 'verified at UTC-10: no hash depends on the session''s time zone');
RESET TimeZone;

SELECT is_empty('SELECT * FROM wallet_verify()', 'every break was undone: the ledger is healthy again');

SELECT * FROM finish();
ROLLBACK;
