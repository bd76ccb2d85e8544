-- wallet_hold: reserve credits (no ledger entry) until capture, void or expires_at; what the player may use
-- (available = balance - active holds) drops meanwhile; the key is unique across holds and postings.
BEGIN;
SELECT plan(75);

SELECT has_function('wallet_hold', ARRAY['text', 'text', 'bigint', 'text', 'integer', 'text', 'jsonb', 'text'],
    'wallet_hold exists');

-- ---------------------------------------------------------------- a hold

CREATE TEMP TABLE first_hold AS
SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 300, 'hd_1', 120, 'sword', '{"slot": 2}');
SELECT results_eq(
    $$SELECT reference_id, user_id, asset_code, amount, status, available, replayed FROM first_hold$$,
    $$VALUES ('hd_1', 'user_bob', 'GOLD_COINS', 300::bigint, 'HELD', 49700::bigint, false)$$,
    'a hold returns the hold, status HELD, what is still available and replayed = false');
SELECT results_eq(
    $$SELECT user_id::text, asset_code, amount::bigint, item_id::text, metadata, status, wallet_id, actor,
             expires_at - created_at, captured_amount::bigint, capture_transaction_id, closed_at, closed_by
        FROM holds WHERE reference_id = 'hd_1'$$,
    $$VALUES ('user_bob', 'GOLD_COINS', 300::bigint, 'sword', '{"slot": 2}'::jsonb, 'HELD'::hold_status,
              pg_temp.wallet_of('user_bob', 'GOLD_COINS'), session_user::text COLLATE "default", interval '120 seconds',
              NULL::bigint, NULL::uuid, NULL::timestamptz, NULL::text)$$,
    'the holds row: the request, the wallet, the caller, expires_in seconds after it was made, not closed');
SELECT is((SELECT expires_at FROM first_hold), (SELECT expires_at FROM holds WHERE reference_id = 'hd_1'),
    'the returned expires_at is the stored one');
SELECT ok((SELECT created_at > now() AND created_at < clock_timestamp() FROM holds WHERE reference_id = 'hd_1'),
    'created_at is the clock under the wallet''s lock');
SELECT is((SELECT count(*)::int FROM transactions WHERE reference_id = 'hd_1'), 0, 'a hold is no transaction ...');
SELECT is((SELECT count(*)::int FROM ledger_entries), 8, '... and writes no ledger entry');
SELECT results_eq($$SELECT balance, held, available FROM wallet_balances('user_bob', 'GOLD_COINS')$$,
    $$VALUES (50000::bigint, 300::bigint, 49700::bigint)$$, 'the balance stays; held and available show the hold');
SELECT is((SELECT holds_until FROM wallets WHERE id = pg_temp.wallet_of('user_bob', 'GOLD_COINS')),
    (SELECT expires_at FROM holds WHERE reference_id = 'hd_1'), 'the wallet''s holds_until is the hold''s expiry');

SELECT lives_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 600, 'hd_2')$$, 'a second hold, default expiry');
SELECT is((SELECT expires_at - created_at FROM holds WHERE reference_id = 'hd_2'), interval '600 seconds',
    'the default expiry is 600 seconds');
SELECT is((SELECT holds_until FROM wallets WHERE id = pg_temp.wallet_of('user_bob', 'GOLD_COINS')),
    (SELECT expires_at FROM holds WHERE reference_id = 'hd_2'), 'holds_until moves to the later expiry');
SELECT results_eq($$SELECT balance, held, available FROM wallet_balances('user_bob', 'GOLD_COINS')$$,
    $$VALUES (50000::bigint, 900::bigint, 49100::bigint)$$, 'both holds count');
SELECT is_empty('SELECT * FROM wallet_verify()', 'wallet_verify: healthy with active holds');

-- ---------------------------------------------------------------- available funds (WL001)

SELECT throws_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 49101, 'hd_big')$$, 'WL001',
    'insufficient funds: player user_bob has 49100 GOLD_COINS available (900 held) and cannot hold 49101',
    'a hold above what is available: WL001');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 49101, 'hd_big')$$)->>'detail',
    '{"user_id" : "user_bob", "asset_code" : "GOLD_COINS", "required" : 49101, "available" : 49100, "held" : 900}',
    'its detail: required, available, held');
SELECT throws_ok($$SELECT wallet_spend('user_bob', 'GOLD_COINS', 49101, 'hd_spend_big', 'castle')$$, 'WL001',
    'insufficient funds: player user_bob has 49100 GOLD_COINS available (900 held) and cannot spend 49101',
    'a spend above what is available: WL001, though the balance would cover it');
SELECT is(pg_temp.error_of($$SELECT wallet_spend('user_bob', 'GOLD_COINS', 49101, 'hd_spend_big', 'castle')$$)->>'detail',
    '{"user_id" : "user_bob", "asset_code" : "GOLD_COINS", "required" : 49101, "available" : 49100, "held" : 900}',
    'the spend''s WL001 detail says what is held');
SELECT is((SELECT count(*)::int FROM holds WHERE reference_id = 'hd_big'), 0, 'a refused hold is not stored');
SELECT results_eq($$SELECT status, available FROM wallet_hold('user_bob', 'GOLD_COINS', 49000, 'hd_most')$$,
    $$VALUES ('HELD', 100::bigint)$$, 'a hold may take almost all that is available');
SELECT results_eq($$SELECT amount, balance FROM wallet_spend('user_bob', 'GOLD_COINS', 100, 'hd_spend_rest', 'pin')$$,
    $$VALUES (100::bigint, 49900::bigint)$$, 'a spend takes exactly the rest');
SELECT results_eq($$SELECT balance, held, available FROM wallet_balances('user_bob', 'GOLD_COINS')$$,
    $$VALUES (49900::bigint, 49900::bigint, 0::bigint)$$, 'now everything is held');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 1, 'hd_one')$$, 'WL001', NULL,
    'not even 1 more can be held');
SELECT lives_ok($$SELECT wallet_topup('user_bob', 'GOLD_COINS', 10, 'hd_topup', 'card')$$, 'a top-up needs nothing available');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_bob', 'DIAMONDS', 1, 'hd_diamonds')$$, 'WL001',
    'insufficient funds: player user_bob has 0 DIAMONDS and cannot hold 1', 'an asset the player never held: WL001');
SELECT is((SELECT count(*)::int FROM wallets WHERE user_id = 'user_bob' AND asset_code = 'DIAMONDS'), 0,
    'a refused hold opens no wallet');

-- ---------------------------------------------------------------- replay

CREATE TEMP TABLE replay AS SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 300, 'hd_1', 3600, 'sword', '{"other": 1}');
SELECT results_eq($$SELECT reference_id, amount, status, expires_at, available, replayed FROM replay$$,
    $$SELECT reference_id, amount, status, expires_at, 10::bigint, true FROM first_hold$$,
    'the same hold again (another expires_in, other metadata): the hold as it is, its expiry unchanged, what is available now, replayed');
SELECT is((SELECT count(*)::int FROM holds WHERE reference_id = 'hd_1'), 1, 'a replay adds no hold');

-- ---------------------------------------------------------------- idempotency conflicts (WL004), both ways

SELECT throws_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 301, 'hd_1', 120, 'sword')$$, 'WL004',
    'reference id hd_1 already belongs to a hold of 300 GOLD_COINS for user_bob, not to this hold of 301 GOLD_COINS for user_bob',
    'same key, another amount: WL004');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 301, 'hd_1', 120, 'sword')$$)->>'detail',
    '{"reference_id" : "hd_1", "hold_reference_id" : "hd_1"}', 'the WL004 detail names the hold');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', 300, 'hd_1', 120, 'sword')$$, 'WL004', NULL,
    'same key, another player: WL004');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_alice', 'DIAMONDS', 300, 'hd_1', 120, 'sword')$$, 'WL004', NULL,
    'same key, another asset: WL004');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 300, 'hd_1', 120, 'shield')$$, 'WL004', NULL,
    'same key, another item: WL004');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 300, 'hd_1', 120)$$, 'WL004', NULL,
    'same key, no item: WL004');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 10, 'init_bob_gold_001')$$, 'WL004',
    format('reference id init_bob_gold_001 already belongs to transaction %s, not to a new hold', pg_temp.tx('init_bob_gold_001')),
    'a hold with a posting''s key: WL004');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 10, 'init_bob_gold_001')$$)->>'detail',
    format('{"reference_id" : "init_bob_gold_001", "transaction_id" : "%s"}', pg_temp.tx('init_bob_gold_001')),
    'its detail names the transaction');
SELECT throws_ok($$SELECT wallet_topup('user_bob', 'GOLD_COINS', 300, 'hd_1', 'card')$$, 'WL004',
    'reference id hd_1 already belongs to a hold of 300 GOLD_COINS for user_bob', 'a top-up with a hold''s key: WL004');
SELECT is(pg_temp.error_of($$SELECT wallet_topup('user_bob', 'GOLD_COINS', 300, 'hd_1', 'card')$$)->>'detail',
    '{"reference_id" : "hd_1", "hold_reference_id" : "hd_1"}', 'its detail names the hold');
SELECT throws_ok($$SELECT wallet_bonus('user_bob', 'GOLD_COINS', 300, 'hd_1', 'WELCOME')$$, 'WL004', NULL,
    'a bonus with a hold''s key: WL004');
SELECT throws_ok($$SELECT wallet_spend('user_bob', 'GOLD_COINS', 300, 'hd_1', 'sword')$$, 'WL004', NULL,
    'a spend with a hold''s key (even the same amount and item): WL004');
SELECT throws_ok($$SELECT wallet_topup('user_new', 'GOLD_COINS', 300, 'hd_1', 'card')$$, 'WL004', NULL,
    'a top-up with a hold''s key opens no wallet first: WL004 ...');
SELECT is((SELECT count(*)::int FROM wallets WHERE user_id = 'user_new'), 0, '... and no wallet was opened');

-- ---------------------------------------------------------------- expiry: no job, lazy clean-up

SELECT lives_ok($$SELECT * FROM wallet_hold('user_charlie', 'GOLD_COINS', 25000, 'hd_short', 1)$$,
    'charlie holds everything for 1 second');
SELECT throws_ok($$SELECT wallet_spend('user_charlie', 'GOLD_COINS', 1, 'hd_charlie_spend', 'hat')$$, 'WL001', NULL,
    'while it lasts he cannot spend');
SELECT pg_sleep(1.1);
SELECT results_eq($$SELECT balance, held, available FROM wallet_balances('user_charlie', 'GOLD_COINS')$$,
    $$VALUES (25000::bigint, 0::bigint, 25000::bigint)$$, 'past expires_at the hold counts no more, with no job run');
SELECT is((SELECT status FROM holds WHERE reference_id = 'hd_short'), 'HELD'::hold_status, '(its row still says HELD)');
SELECT is_empty('SELECT * FROM wallet_verify()', 'wallet_verify: an expired hold not yet marked is healthy');
SELECT results_eq($$SELECT status, available FROM wallet_hold('user_charlie', 'GOLD_COINS', 25000, 'hd_after', 60)$$,
    $$VALUES ('HELD', 0::bigint)$$, 'a new hold may take all of it');
SELECT results_eq($$SELECT status, closed_at = expires_at, closed_by FROM holds WHERE reference_id = 'hd_short'$$,
    $$VALUES ('EXPIRED'::hold_status, true, NULL::text)$$,
    'the new hold marked the expired one EXPIRED, closed at its expiry (lazy clean-up of that wallet)');
SELECT is((SELECT holds_until FROM wallets WHERE id = pg_temp.wallet_of('user_charlie', 'GOLD_COINS')),
    (SELECT expires_at FROM holds WHERE reference_id = 'hd_after'), 'holds_until is the active hold''s expiry');

-- ---------------------------------------------------------------- limits of expires_in

SELECT lives_ok($$SELECT * FROM wallet_hold('user_alice', 'DIAMONDS', 1, 'hd_day', 86400)$$, 'expires_in 86400 (a day) ...');
SELECT is((SELECT expires_at - created_at FROM holds WHERE reference_id = 'hd_day'), interval '1 day', '... holds a day');
SELECT lives_ok($$SELECT * FROM wallet_hold('user_alice', 'DIAMONDS', 1, 'hd_second', 1)$$, 'expires_in 1 ...');
SELECT is((SELECT expires_at - created_at FROM holds WHERE reference_id = 'hd_second'), interval '1 second',
    '... holds a second');

-- ---------------------------------------------------------------- player and asset (WL002, WL003)

SELECT throws_ok($$SELECT * FROM wallet_hold('user_nobody', 'GOLD_COINS', 1, 'hd_x')$$, 'WL002',
    'player user_nobody has no wallet', 'a player with no wallet at all: WL002');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_alice', 'PEARLS', 1, 'hd_x')$$, 'WL003',
    'asset PEARLS not found', 'an unknown asset: WL003');

-- ---------------------------------------------------------------- invalid arguments (WL006)

SELECT throws_ok($$SELECT * FROM wallet_hold(NULL, 'GOLD_COINS', 1, 'hd_x')$$, 'WL006',
    'invalid argument user_id: is required', 'a null user_id');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_alice', NULL, 1, 'hd_x')$$, 'WL006',
    'invalid argument asset_code: is required', 'a null asset_code');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', NULL, 'hd_x')$$, 'WL006',
    'invalid argument amount: must be an integer from 1 to 9007199254740991, not null', 'a null amount');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', 0, 'hd_x')$$, 'WL006',
    'invalid argument amount: must be an integer from 1 to 9007199254740991, not 0', 'amount 0');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', 9007199254740992, 'hd_x')$$, 'WL006',
    'invalid argument amount: must be an integer from 1 to 9007199254740991, not 9007199254740992', 'amount 2^53');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', 1, NULL)$$, 'WL006',
    'invalid argument reference_id: is required', 'a null reference_id');
SELECT throws_ok(format($$SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', 1, %L)$$, repeat('k', 129)), 'WL006',
    'invalid argument reference_id: must be a non-empty string of at most 128 characters', 'a 129-character reference_id');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', 1, 'hd_x', 0)$$, 'WL006',
    'invalid argument expires_in: must be a number of seconds from 1 to 86400, not 0', 'expires_in 0');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', 1, 'hd_x', -60)$$, 'WL006',
    'invalid argument expires_in: must be a number of seconds from 1 to 86400, not -60', 'a negative expires_in');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', 1, 'hd_x', 86401)$$, 'WL006',
    'invalid argument expires_in: must be a number of seconds from 1 to 86400, not 86401', 'expires_in past a day');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', 1, 'hd_x', 86401)$$)->>'column',
    'expires_in', 'the error''s field is expires_in');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', 1, 'hd_x', 60, '')$$, 'WL006',
    'invalid argument item_id: must be a non-empty string of at most 128 characters', 'an empty item_id');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', 1, 'hd_x', 60, NULL, '[1]')$$, 'WL006',
    'invalid argument metadata: must be a JSON object', 'metadata that is not an object');
SELECT throws_ok(format($$SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', 1, 'hd_x', 60, NULL, NULL, %L)$$,
                        repeat('a', 129)), 'WL006',
    'invalid argument actor: must be a non-empty string of at most 128 characters', 'a 129-character actor');
SELECT throws_ok($$SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 301, 'hd_1', 0)$$, 'WL006', NULL,
    'an invalid request is WL006 even with a taken key');
SELECT lives_ok($$SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', 5, 'hd_actor', p_actor => 'game-backend')$$,
    'a hold made for an API key ...');
SELECT is((SELECT actor FROM holds WHERE reference_id = 'hd_actor'), 'game-backend', '... records it as the actor');
SELECT is((SELECT count(*)::int FROM holds WHERE reference_id = 'hd_x'), 0, 'no refused hold was stored');

SELECT is_empty('SELECT * FROM wallet_verify()', 'wallet_verify: healthy after every hold and refusal');

SELECT * FROM finish();
ROLLBACK;
