-- wallet_hold_status: one hold as it stands now; a HELD hold past expires_at reads EXPIRED (closed at its
-- expiry) whether or not it was marked so yet.
BEGIN;
SELECT plan(16);

SELECT has_function('wallet_hold_status', ARRAY['text'], 'wallet_hold_status exists');

SELECT lives_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 300, 'hs_1', 120, 'sword', '{"slot": 2}', 'game-backend')$$,
    'bob holds 300 for a sword');
SELECT results_eq(
    $$SELECT reference_id, user_id, asset_code, amount, status, expires_at, captured_amount, item_id, metadata,
             created_at, closed_at, capture_transaction_id, actor
        FROM wallet_hold_status('hs_1')$$,
    $$SELECT reference_id::text, user_id::text, asset_code, amount::bigint, 'HELD', expires_at, NULL::bigint, item_id::text,
             metadata, created_at, NULL::timestamptz, NULL::uuid, 'game-backend'
        FROM holds WHERE reference_id = 'hs_1'$$,
    'an active hold: every column, status HELD, nothing captured or closed');
SELECT lives_ok($$SELECT * FROM wallet_capture('hs_1', 250)$$, 'it is captured for 250');
SELECT results_eq($$SELECT status, amount, captured_amount, capture_transaction_id, closed_at FROM wallet_hold_status('hs_1')$$,
    $$SELECT 'CAPTURED', 300::bigint, 250::bigint, id, created_at FROM transactions WHERE reference_id = 'hs_1'$$,
    'a captured hold: CAPTURED, what was captured, the posting, closed when it was posted');

SELECT lives_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 10, 'hs_2')$$, 'another hold ...');
SELECT lives_ok($$SELECT * FROM wallet_void('hs_2')$$, '... voided');
SELECT results_eq($$SELECT status, captured_amount, closed_at FROM wallet_hold_status('hs_2')$$,
    $$SELECT 'VOIDED', NULL::bigint, closed_at FROM holds WHERE reference_id = 'hs_2'$$, 'a voided hold: VOIDED');

SELECT lives_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 10, 'hs_3', 1)$$, 'a hold for 1 second');
SELECT results_eq($$SELECT status, closed_at FROM wallet_hold_status('hs_3')$$, $$VALUES ('HELD', NULL::timestamptz)$$,
    'at first: HELD');
SELECT pg_sleep(1.1);
SELECT results_eq($$SELECT status, closed_at FROM wallet_hold_status('hs_3')$$,
    $$SELECT 'EXPIRED', expires_at FROM holds WHERE reference_id = 'hs_3' AND status = 'HELD'$$,
    'past expires_at: EXPIRED, closed at its expiry, though its row still says HELD');
SELECT is(wallet_expire_holds(), 1, 'once the maintenance marked it ...');
SELECT results_eq($$SELECT status, closed_at FROM wallet_hold_status('hs_3')$$,
    $$SELECT 'EXPIRED', expires_at FROM holds WHERE reference_id = 'hs_3' AND status = 'EXPIRED'$$,
    '... it reads the same');

SELECT throws_ok($$SELECT * FROM wallet_hold_status('hs_nothing')$$, 'WL011', 'hold with reference id hs_nothing not found',
    'an unknown reference id: WL011');
SELECT throws_ok($$SELECT * FROM wallet_hold_status('init_bob_gold_001')$$, 'WL011', NULL,
    'a posting''s reference id is no hold: WL011');
SELECT throws_ok($$SELECT * FROM wallet_hold_status('')$$, 'WL006',
    'invalid argument reference_id: must be a non-empty string of at most 128 characters', 'an empty reference_id: WL006');

SELECT * FROM finish();
ROLLBACK;
