-- wallet_void: release a hold without posting; voiding it again replays; an expired hold answers EXPIRED;
-- a captured hold cannot be voided.
BEGIN;
SELECT plan(31);

SELECT has_function('wallet_void', ARRAY['text', 'text'], 'wallet_void exists');

-- ---------------------------------------------------------------- a void

SELECT lives_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 300, 'vd_1')$$, 'bob holds 300');
SELECT lives_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 200, 'vd_other')$$, 'and another 200');
SELECT results_eq($$SELECT * FROM wallet_void('vd_1')$$, $$VALUES ('vd_1', 'VOIDED', 49800::bigint, false)$$,
    'a void answers VOIDED and what is available now (the other hold still counts), replayed = false');
SELECT results_eq(
    $$SELECT status, closed_by, captured_amount::bigint, capture_transaction_id FROM holds WHERE reference_id = 'vd_1'$$,
    $$VALUES ('VOIDED'::hold_status, session_user::text COLLATE "default", NULL::bigint, NULL::uuid)$$,
    'the hold: VOIDED by the caller, nothing captured');
SELECT ok((SELECT closed_at > now() AND closed_at < clock_timestamp() FROM holds WHERE reference_id = 'vd_1'),
    'closed_at is the clock of the void');
SELECT results_eq($$SELECT balance, held, available FROM wallet_balances('user_bob', 'GOLD_COINS')$$,
    $$VALUES (50000::bigint, 200::bigint, 49800::bigint)$$, 'its credits are available again; the balance never moved');
SELECT is((SELECT count(*)::int FROM transactions WHERE reference_id = 'vd_1'), 0, 'a void posts nothing');
SELECT is((SELECT count(*)::int FROM ledger_entries), 8, 'and writes no entry');
CREATE TEMP TABLE voided AS SELECT * FROM holds WHERE reference_id = 'vd_1';
SELECT results_eq($$SELECT * FROM wallet_void('vd_1', 'someone-else')$$, $$VALUES ('vd_1', 'VOIDED', 49800::bigint, true)$$,
    'voiding it again replays');
SELECT results_eq($$SELECT closed_at, closed_by FROM holds WHERE reference_id = 'vd_1'$$,
    $$SELECT closed_at, closed_by FROM voided$$, 'the replay changes nothing of the hold');
SELECT throws_ok($$SELECT * FROM wallet_capture('vd_1')$$, 'WL012', NULL, 'a voided hold cannot be captured');
SELECT is_empty('SELECT * FROM wallet_verify()', 'wallet_verify: healthy after a void');

-- ---------------------------------------------------------------- a captured hold (WL012)

SELECT lives_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 50, 'vd_2')$$, 'a hold of 50 ...');
SELECT lives_ok($$SELECT * FROM wallet_capture('vd_2', 40)$$, '... 40 of it captured');
SELECT throws_ok($$SELECT * FROM wallet_void('vd_2')$$, 'WL012', 'hold vd_2 is CAPTURED and cannot be voided',
    'a captured hold cannot be voided: WL012');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_void('vd_2')$$)->>'detail',
    '{"reference_id" : "vd_2", "status" : "CAPTURED", "captured_amount" : 40}', 'its detail');

-- ---------------------------------------------------------------- an expired hold answers EXPIRED

SELECT lives_ok($$SELECT * FROM wallet_hold('user_charlie', 'GOLD_COINS', 100, 'vd_short', 1)$$, 'a hold for 1 second');
SELECT lives_ok($$SELECT * FROM wallet_hold('user_charlie', 'GOLD_COINS', 100, 'vd_short_2', 1)$$, 'another');
SELECT pg_sleep(1.1);
SELECT results_eq($$SELECT * FROM wallet_void('vd_short')$$, $$VALUES ('vd_short', 'EXPIRED', 25000::bigint, false)$$,
    'voiding a hold past expires_at: status EXPIRED, not an error, all available');
SELECT results_eq($$SELECT status, closed_at = expires_at, closed_by FROM holds WHERE reference_id = 'vd_short'$$,
    $$VALUES ('EXPIRED'::hold_status, true, NULL::text)$$, 'the hold is marked EXPIRED as of its expiry, by nobody');
SELECT results_eq($$SELECT * FROM wallet_void('vd_short')$$, $$VALUES ('vd_short', 'EXPIRED', 25000::bigint, false)$$,
    'again: still EXPIRED');
SELECT is(wallet_expire_holds(), 1, 'the maintenance marks the other one');
SELECT results_eq($$SELECT status, replayed FROM wallet_void('vd_short_2')$$, $$VALUES ('EXPIRED', false)$$,
    'a hold marked EXPIRED answers EXPIRED');

-- ---------------------------------------------------------------- no such hold (WL011), invalid arguments (WL006)

SELECT throws_ok($$SELECT * FROM wallet_void('vd_nothing')$$, 'WL011', 'hold with reference id vd_nothing not found',
    'an unknown reference id: WL011');
SELECT throws_ok($$SELECT * FROM wallet_void('init_bob_gold_001')$$, 'WL011', NULL,
    'a posting''s reference id is no hold: WL011');
SELECT throws_ok($$SELECT * FROM wallet_void(NULL)$$, 'WL006', 'invalid argument reference_id: is required',
    'a null reference_id');
SELECT throws_ok(format($$SELECT * FROM wallet_void('vd_other', %L)$$, repeat('a', 129)), 'WL006',
    'invalid argument actor: must be a non-empty string of at most 128 characters', 'a 129-character actor');
SELECT lives_ok($$SELECT * FROM wallet_void('vd_other', 'support-desk')$$, 'a void for an API key ...');
SELECT is((SELECT closed_by FROM holds WHERE reference_id = 'vd_other'), 'support-desk',
    '... records it as the hold''s closed_by');

SELECT is_empty('SELECT * FROM wallet_verify()', 'wallet_verify: healthy after every void and refusal');

SELECT * FROM finish();
ROLLBACK;
