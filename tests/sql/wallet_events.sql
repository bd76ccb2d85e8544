-- wallet_events: the events after an id, everyone's or one player's, oldest first, each with its transaction and
-- the player's legs (signed as the player sees them, with the balance after); it numbers what waits first; an id
-- past the newest event is refused (WL006), an unknown player simply has none.
BEGIN;
SELECT plan(27);

SELECT has_function('wallet_events', ARRAY['bigint', 'text', 'integer'], 'wallet_events exists');

-- ---------------------------------------------------------------- the seeded ledger

SELECT results_eq(
    $$SELECT event_id, reference_id, type::text, user_id, legs, created_at FROM wallet_events(0)$$,
    $$SELECT row_number() OVER (ORDER BY t.created_at), t.reference_id::text, t.type::text, t.user_id::text,
             jsonb_build_array(jsonb_build_object('asset_code', t.asset_code, 'amount', t.amount, 'balance_after', t.amount)),
             t.created_at
        FROM transactions t ORDER BY t.created_at$$,
    'from 0: every seeded transaction, numbered by the reader itself, with its one leg and the balance after');
SELECT results_eq('SELECT * FROM wallet_events()', 'SELECT * FROM wallet_events(0)', 'p_after defaults to 0');
SELECT is((SELECT count(*) FROM event_inbox), 0::bigint, 'the reader numbered what was waiting');
SELECT is(ARRAY(SELECT transaction_id FROM wallet_events(0) ORDER BY event_id),
          ARRAY(SELECT transaction_id FROM events ORDER BY id), 'its transaction ids are the events''');

-- ---------------------------------------------------------------- every kind of posting

DO $$
BEGIN
    PERFORM wallet_topup('user_bob', 'GOLD_COINS', 700, 'ev_topup', 'card');
    PERFORM wallet_spend('user_bob', 'GOLD_COINS', 200, 'ev_spend', 'hat');
    PERFORM wallet_purchase('user_alice', 'ev_buy', 'bundle',
                            '[{"asset_code": "GOLD_COINS", "amount": 10}, {"asset_code": "DIAMONDS", "amount": 5}]');
    PERFORM wallet_reverse('ev_refund', 'ev_buy', 'refund');
    PERFORM wallet_hold('user_bob', 'GOLD_COINS', 30, 'ev_hold');
    PERFORM wallet_capture('ev_hold', 20);
    PERFORM wallet_bonus('user_dora', 'LOYALTY_POINTS', 40, 'ev_bonus', 'WELCOME');
END;
$$;
SELECT results_eq(
    $$SELECT event_id, reference_id, type::text, user_id, legs FROM wallet_events(4)$$,
    $$VALUES (5::bigint, 'ev_topup', 'TOPUP', 'user_bob', '[{"asset_code": "GOLD_COINS", "amount": 700, "balance_after": 50700}]'::jsonb),
             (6, 'ev_spend', 'SPEND', 'user_bob', '[{"asset_code": "GOLD_COINS", "amount": -200, "balance_after": 50500}]'),
             (7, 'ev_buy', 'PURCHASE', 'user_alice',
              '[{"asset_code": "DIAMONDS", "amount": -5, "balance_after": 495}, {"asset_code": "GOLD_COINS", "amount": -10, "balance_after": 99990}]'),
             (8, 'ev_refund', 'REVERSAL', 'user_alice',
              '[{"asset_code": "DIAMONDS", "amount": 5, "balance_after": 500}, {"asset_code": "GOLD_COINS", "amount": 10, "balance_after": 100000}]'),
             (9, 'ev_hold', 'CAPTURE', 'user_bob', '[{"asset_code": "GOLD_COINS", "amount": -20, "balance_after": 50480}]'),
             (10, 'ev_bonus', 'BONUS', 'user_dora', '[{"asset_code": "LOYALTY_POINTS", "amount": 40, "balance_after": 40}]')$$,
    'after event 4: each posting once, in order, legs in asset order signed as the player sees them (a hold is no event, its capture is)');
SELECT results_eq($$SELECT transaction_id, created_at FROM wallet_events(9)$$,
                  $$SELECT id, created_at FROM transactions WHERE reference_id = 'ev_bonus'$$,
                  'each event carries its transaction''s id and time');

-- ---------------------------------------------------------------- paging and the per-player filter

SELECT is(ARRAY(SELECT event_id FROM wallet_events(0, NULL, 3)), ARRAY[1, 2, 3]::bigint[], 'p_limit 3: the first three');
SELECT is(ARRAY(SELECT event_id FROM wallet_events(3, NULL, 3)), ARRAY[4, 5, 6]::bigint[], 'after 3: the next three');
SELECT is(ARRAY(SELECT event_id FROM wallet_events(0)), ARRAY(SELECT generate_series(1, 10)::bigint),
    'by default up to 100 (all ten)');
SELECT is(ARRAY(SELECT event_id FROM wallet_events(10)), ARRAY[]::bigint[], 'after the newest: none (caught up)');
SELECT is(ARRAY(SELECT reference_id FROM wallet_events(0, 'user_bob')),
          ARRAY['init_bob_gold_001', 'ev_topup', 'ev_spend', 'ev_hold'], 'user_bob''s events only');
SELECT is(ARRAY(SELECT event_id FROM wallet_events(5, 'user_bob', 1)), ARRAY[6]::bigint[],
    'user_bob''s after event 5, one at a time');
SELECT is(ARRAY(SELECT event_id FROM wallet_events(0, 'user_nobody')), ARRAY[]::bigint[],
    'a player with no transaction has no events (not an error: a reader may wait for their first)');
SELECT lives_ok($$SELECT wallet_topup('user_nobody', 'GOLD_COINS', 1, 'ev_first', 'card')$$, 'their first top-up ...');
SELECT is(ARRAY(SELECT reference_id FROM wallet_events(0, 'user_nobody')), ARRAY['ev_first'], '... is their first event');

-- ---------------------------------------------------------------- refused

SELECT throws_ok($$SELECT * FROM wallet_events(12)$$, 'WL006',
    'invalid argument last_event_id: is past the newest event (11): it is no event id of this ledger',
    'an id past the newest event: WL006 (a reader pointed at another or an older ledger would skip events)');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_events(12)$$)->>'column', 'last_event_id', 'naming last_event_id');
SELECT throws_ok($$SELECT * FROM wallet_events(9223372036854775807, 'user_bob')$$, 'WL006', NULL,
    'also for a player''s events');
SELECT throws_ok($$SELECT * FROM wallet_events(-1)$$, 'WL006', 'invalid argument last_event_id: must be a non-negative integer',
    'a negative id: WL006');
SELECT throws_ok($$SELECT * FROM wallet_events(NULL)$$, 'WL006', NULL, 'a NULL id: WL006');
SELECT throws_ok($$SELECT * FROM wallet_events(0, NULL, 0)$$, 'WL006', 'invalid argument limit: must be an integer from 1 to 100',
    'p_limit 0: WL006');
SELECT throws_ok($$SELECT * FROM wallet_events(0, NULL, 101)$$, 'WL006', NULL, 'p_limit 101: WL006');
SELECT throws_ok($$SELECT * FROM wallet_events(0, '')$$, 'WL006',
    'invalid argument user_id: must be a non-empty string of at most 128 characters', 'an empty user_id: WL006');
SELECT throws_ok($$SELECT * FROM wallet_events(0, repeat('x', 129))$$, 'WL006', NULL, 'a user_id too long: WL006');
SELECT throws_ok($$SELECT * FROM wallet_events(0, E'user\u200b_bob')$$, 'WL006', NULL, 'an invisible character in user_id: WL006');
SELECT is_empty('SELECT * FROM wallet_verify()', 'the ledger is healthy, events included');

SELECT * FROM finish();
ROLLBACK;
