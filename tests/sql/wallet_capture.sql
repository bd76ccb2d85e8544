-- wallet_capture: a hold becomes a CAPTURE posting (player -> REVENUE) under the hold's reference id, in whole
-- or in part (the rest is released); only an active hold, before expires_at; the same capture again replays.
BEGIN;
SELECT plan(64);

SELECT has_function('wallet_capture', ARRAY['text', 'bigint', 'text'], 'wallet_capture exists');

-- ---------------------------------------------------------------- a whole capture

SELECT lives_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 300, 'cp_1', 120, 'sword', '{"slot": 2}')$$,
    'bob holds 300 for a sword');
SELECT throws_ok($$SELECT * FROM wallet_transaction('cp_1')$$, 'WL005', NULL,
    'before its capture, a hold''s reference id is no transaction');
CREATE TEMP TABLE first_capture AS SELECT * FROM wallet_capture('cp_1');
SELECT results_eq(
    $$SELECT user_id, asset_code, amount, balance, transaction_type, hold_reference_id, replayed FROM first_capture$$,
    $$VALUES ('user_bob', 'GOLD_COINS', 300::bigint, 49700::bigint, 'CAPTURE'::transaction_type, 'cp_1', false)$$,
    'a capture without an amount takes the whole hold: the posting, the new balance, replayed = false');
SELECT results_eq(
    $$SELECT id, created_at, reference_id::text, type, user_id::text, asset_code, amount::bigint, item_id::text, metadata,
             description, actor, legs, original_id
        FROM transactions WHERE reference_id = 'cp_1'$$,
    $$SELECT transaction_id, created_at, 'cp_1', 'CAPTURE'::transaction_type, 'user_bob', 'GOLD_COINS', 300::bigint,
             'sword', '{"slot": 2}'::jsonb, 'Capture of hold: sword', session_user::text COLLATE "default", NULL::jsonb,
             NULL::uuid
        FROM first_capture$$,
    'the CAPTURE transaction carries the hold''s reference id, item and metadata');
SELECT ok((SELECT created_at > now() AND created_at < clock_timestamp() FROM first_capture),
    'created_at is the clock under the wallet''s lock');
SELECT results_eq(
    $$SELECT w.kind, e.amount, e.balance_after::bigint FROM ledger_entries e JOIN wallets w ON w.id = e.wallet_id
       WHERE e.transaction_id = pg_temp.tx('cp_1') ORDER BY w.kind$$,
    $$VALUES ('PLAYER'::wallet_kind, -300::bigint, 49700::bigint), ('REVENUE'::wallet_kind, 300::bigint, NULL::bigint)$$,
    'double entry: the player debited, REVENUE credited');
SELECT results_eq(
    $$SELECT status, captured_amount::bigint, capture_transaction_id, closed_at, closed_by FROM holds WHERE reference_id = 'cp_1'$$,
    $$SELECT 'CAPTURED'::hold_status, 300::bigint, transaction_id, created_at, session_user::text COLLATE "default"
        FROM first_capture$$,
    'the hold: CAPTURED, the amount and posting, closed then by the caller');
SELECT results_eq($$SELECT balance, held, available FROM wallet_balances('user_bob', 'GOLD_COINS')$$,
    $$VALUES (49700::bigint, 0::bigint, 49700::bigint)$$, 'the balance drops, nothing is held any more');
SELECT results_eq(
    $$SELECT type, amount, balance_after, reference_id, description FROM wallet_history('user_bob', 'GOLD_COINS', 1)$$,
    $$VALUES ('CAPTURE'::transaction_type, 300::bigint, 49700::bigint, 'cp_1', 'Capture of hold: sword')$$,
    'the history shows the capture');
SELECT results_eq(
    $$SELECT DISTINCT type, asset_code, amount, legs, item_id FROM wallet_transaction('cp_1')$$,
    $$VALUES ('CAPTURE'::transaction_type, 'GOLD_COINS', 300::bigint,
              '[{"asset_code": "GOLD_COINS", "amount": 300}]'::jsonb, 'sword')$$,
    'wallet_transaction finds the capture under the hold''s reference id');
SELECT is((SELECT count(*)::int FROM wallet_transaction('cp_1')), 2, 'with its two entries');
SELECT results_eq($$SELECT status, captured_amount, capture_transaction_id FROM wallet_hold_status('cp_1')$$,
    $$SELECT 'CAPTURED', 300::bigint, transaction_id FROM first_capture$$, 'wallet_hold_status says CAPTURED');
SELECT is_empty('SELECT * FROM wallet_verify()', 'wallet_verify: healthy after a capture');

-- ---------------------------------------------------------------- replay, and what a captured hold refuses

CREATE TEMP TABLE replay AS SELECT * FROM wallet_capture('cp_1');
SELECT results_eq($$SELECT transaction_id, amount, balance, created_at, replayed FROM replay$$,
    $$SELECT transaction_id, amount, balance, created_at, true FROM first_capture$$,
    'the same capture again: the original posting and balance, replayed');
SELECT is((SELECT replayed FROM wallet_capture('cp_1', 300)), true, 'with the whole amount given: replayed too');
SELECT is((SELECT count(*)::int FROM transactions WHERE type = 'CAPTURE'), 1, 'a replay posts nothing');
SELECT throws_ok($$SELECT * FROM wallet_capture('cp_1', 200)$$, 'WL012',
    'hold cp_1 is CAPTURED and cannot be captured again (it was captured for 300)',
    'a capture of a captured hold with another amount: WL012');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_capture('cp_1', 200)$$)->>'detail',
    '{"reference_id" : "cp_1", "status" : "CAPTURED", "captured_amount" : 300}', 'its detail');
SELECT throws_ok($$SELECT * FROM wallet_void('cp_1')$$, 'WL012', NULL, 'a captured hold cannot be voided');
SELECT throws_ok($$SELECT wallet_topup('user_bob', 'GOLD_COINS', 300, 'cp_1', 'card')$$, 'WL004',
    format('reference id cp_1 already belongs to transaction %s (CAPTURE of 300 GOLD_COINS for user_bob), not to this TOPUP of 300 GOLD_COINS for user_bob',
           pg_temp.tx('cp_1')),
    'a top-up with a captured hold''s key: WL004 naming the capture');
SELECT is((SELECT replayed FROM wallet_hold('user_bob', 'GOLD_COINS', 300, 'cp_1', 120, 'sword')), true,
    'the hold request itself still replays');

-- ---------------------------------------------------------------- a partial capture releases the rest

SELECT lives_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 500, 'cp_2')$$, 'bob holds 500');
SELECT results_eq($$SELECT amount, balance, replayed FROM wallet_capture('cp_2', 200)$$,
    $$VALUES (200::bigint, 49500::bigint, false)$$, 'capturing 200 of it posts 200');
SELECT results_eq($$SELECT balance, held, available FROM wallet_balances('user_bob', 'GOLD_COINS')$$,
    $$VALUES (49500::bigint, 0::bigint, 49500::bigint)$$, 'the other 300 are released');
SELECT results_eq($$SELECT status, amount, captured_amount FROM wallet_hold_status('cp_2')$$,
    $$VALUES ('CAPTURED', 500::bigint, 200::bigint)$$, 'the hold keeps its amount and records what was captured');
SELECT is((SELECT replayed FROM wallet_capture('cp_2', 200)), true, 'the same partial capture again: replayed');
SELECT throws_ok($$SELECT * FROM wallet_capture('cp_2')$$, 'WL012',
    'hold cp_2 is CAPTURED and cannot be captured again (it was captured for 200)',
    'a whole capture after a partial one: WL012 (not a replay)');

-- ---------------------------------------------------------------- one hold among others

SELECT lives_ok($$SELECT * FROM wallet_hold('user_charlie', 'GOLD_COINS', 15000, 'cp_a')$$, 'charlie holds 15000 ...');
SELECT lives_ok($$SELECT * FROM wallet_hold('user_charlie', 'GOLD_COINS', 10000, 'cp_b')$$, '... and 10000: everything');
SELECT results_eq($$SELECT amount, balance FROM wallet_capture('cp_a')$$, $$VALUES (15000::bigint, 10000::bigint)$$,
    'the first hold is captured from the credits it reserved');
SELECT results_eq($$SELECT balance, held, available FROM wallet_balances('user_charlie', 'GOLD_COINS')$$,
    $$VALUES (10000::bigint, 10000::bigint, 0::bigint)$$, 'the other hold still reserves the rest');
SELECT results_eq($$SELECT amount, balance FROM wallet_capture('cp_b', 9999)$$, $$VALUES (9999::bigint, 1::bigint)$$,
    'the second is captured too');

-- ---------------------------------------------------------------- amount above the hold (WL014)

SELECT lives_ok($$SELECT * FROM wallet_hold('user_alice', 'DIAMONDS', 100, 'cp_3')$$, 'alice holds 100 diamonds');
SELECT throws_ok($$SELECT * FROM wallet_capture('cp_3', 101)$$, 'WL014',
    'cannot capture 101 DIAMONDS from hold cp_3, which holds 100', 'capturing more than the hold: WL014');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_capture('cp_3', 101)$$)->>'detail',
    '{"reference_id" : "cp_3", "amount" : 101, "held" : 100}', 'its detail: asked and held');
SELECT results_eq($$SELECT status, captured_amount FROM wallet_hold_status('cp_3')$$,
    $$VALUES ('HELD', NULL::bigint)$$, 'the hold is still active');
SELECT is((SELECT count(*)::int FROM transactions WHERE reference_id = 'cp_3'), 0, 'and nothing was posted');

-- ---------------------------------------------------------------- a voided hold (WL012)

SELECT lives_ok($$SELECT * FROM wallet_void('cp_3')$$, 'the hold is voided');
SELECT throws_ok($$SELECT * FROM wallet_capture('cp_3')$$, 'WL012', 'hold cp_3 is VOIDED and cannot be captured',
    'a voided hold cannot be captured: WL012');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_capture('cp_3', 5)$$)->>'detail',
    '{"reference_id" : "cp_3", "status" : "VOIDED", "captured_amount" : null}', 'its detail says VOIDED');

-- ---------------------------------------------------------------- past expires_at (WL013)

SELECT lives_ok($$SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', 100, 'cp_4', 1)$$, 'a hold for 1 second');
SELECT lives_ok($$SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', 100, 'cp_5', 1)$$, 'another one');
SELECT pg_sleep(1.1);
SELECT throws_ok($$SELECT * FROM wallet_capture('cp_4')$$, 'WL013',
    format('hold cp_4 expired at %s and cannot be captured', (SELECT expires_at FROM holds WHERE reference_id = 'cp_4')),
    'a hold past expires_at (still marked HELD) cannot be captured: WL013');
SELECT results_eq(
    $$SELECT x->>'reference_id', (x->>'expires_at')::timestamptz
        FROM (SELECT (pg_temp.error_of($q$SELECT * FROM wallet_capture('cp_4', 50)$q$)->>'detail')::jsonb) d (x)$$,
    $$SELECT 'cp_4', expires_at FROM holds WHERE reference_id = 'cp_4'$$,
    'its detail names the hold and its expiry');
SELECT is(wallet_expire_holds(), 2, 'the maintenance marks both EXPIRED');
SELECT throws_ok($$SELECT * FROM wallet_capture('cp_4')$$, 'WL013', NULL, 'a hold marked EXPIRED: WL013 too');
SELECT is((SELECT count(*)::int FROM transactions WHERE reference_id IN ('cp_4', 'cp_5')), 0, 'nothing was posted');

-- ---------------------------------------------------------------- no such hold (WL011)

SELECT throws_ok($$SELECT * FROM wallet_capture('cp_nothing')$$, 'WL011', 'hold with reference id cp_nothing not found',
    'an unknown reference id: WL011');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_capture('cp_nothing')$$)->>'detail', '{"reference_id" : "cp_nothing"}',
    'its detail names the reference id');
SELECT throws_ok($$SELECT * FROM wallet_capture('init_bob_gold_001')$$, 'WL011', NULL,
    'a posting''s reference id is no hold: WL011');

-- ---------------------------------------------------------------- held credits gone behind the functions' back (WL001)

SELECT lives_ok($$SELECT * FROM wallet_hold('user_alice', 'DIAMONDS', 400, 'cp_6')$$, 'alice holds 400 of her 500 diamonds');
-- a DBA posts a spend of 300 by hand, ignoring the hold (every trigger accepts it: it is consistent)
INSERT INTO transactions (id, reference_id, type, user_id, asset_code, amount, item_id, description, created_at)
VALUES ('00000000-0000-0000-0000-0000000000c6', 'cp_manual', 'SPEND', 'user_alice', 'DIAMONDS', 300, 'x', 'manual',
        clock_timestamp());
UPDATE wallets SET balance = 200 WHERE id = pg_temp.wallet_of('user_alice', 'DIAMONDS');
INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after, created_at, entry_hash)
VALUES ('00000000-0000-0000-0000-0000000000c6', pg_temp.wallet_of('user_alice', 'DIAMONDS'), 'DIAMONDS', -300, 200,
        (SELECT created_at FROM transactions WHERE reference_id = 'cp_manual'),
        pg_temp.chain('00000000-0000-0000-0000-0000000000c6', pg_temp.wallet_of('user_alice', 'DIAMONDS'), -300, 200)),
       ('00000000-0000-0000-0000-0000000000c6', pg_temp.system_wallet('DIAMONDS', 'REVENUE'), 'DIAMONDS', 300, NULL,
        (SELECT created_at FROM transactions WHERE reference_id = 'cp_manual'), NULL);
SELECT pg_temp.advance_head(pg_temp.wallet_of('user_alice', 'DIAMONDS'));
SELECT throws_ok($$SELECT * FROM wallet_capture('cp_6')$$, 'WL001',
    'insufficient funds: player user_alice has 200 DIAMONDS and cannot capture 400',
    'a capture the balance no longer covers: WL001, not a negative balance');
SELECT lives_ok($$SELECT * FROM wallet_capture('cp_6', 200)$$, 'what is left can still be captured');

-- ---------------------------------------------------------------- invalid arguments (WL006), actor

SELECT throws_ok($$SELECT * FROM wallet_capture(NULL)$$, 'WL006', 'invalid argument reference_id: is required',
    'a null reference_id');
SELECT throws_ok($$SELECT * FROM wallet_capture('')$$, 'WL006',
    'invalid argument reference_id: must be a non-empty string of at most 128 characters', 'an empty reference_id');
SELECT throws_ok($$SELECT * FROM wallet_capture('cp_1', 0)$$, 'WL006',
    'invalid argument amount: must be an integer from 1 to 9007199254740991, not 0', 'amount 0');
SELECT throws_ok($$SELECT * FROM wallet_capture('cp_1', -1)$$, 'WL006',
    'invalid argument amount: must be an integer from 1 to 9007199254740991, not -1', 'a negative amount');
SELECT throws_ok($$SELECT * FROM wallet_capture('cp_1', 9007199254740992)$$, 'WL006',
    'invalid argument amount: must be an integer from 1 to 9007199254740991, not 9007199254740992', 'amount 2^53');
SELECT throws_ok(format($$SELECT * FROM wallet_capture('cp_1', NULL, %L)$$, repeat('a', 129)), 'WL006',
    'invalid argument actor: must be a non-empty string of at most 128 characters', 'a 129-character actor');
SELECT lives_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 7, 'cp_7')$$, 'a hold ...');
SELECT lives_ok($$SELECT * FROM wallet_capture('cp_7', p_actor => 'game-backend')$$, '... captured for an API key');
SELECT results_eq(
    $$SELECT h.closed_by, t.actor FROM holds h JOIN transactions t ON t.id = h.capture_transaction_id
       WHERE h.reference_id = 'cp_7'$$,
    $$VALUES ('game-backend', 'game-backend')$$, 'records it as the hold''s closed_by and the posting''s actor');

SELECT is_empty('SELECT * FROM wallet_verify()', 'wallet_verify: healthy after every capture and refusal');

SELECT * FROM finish();
ROLLBACK;
