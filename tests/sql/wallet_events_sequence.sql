-- wallet_events_sequence: committed transactions wait in event_inbox (every transaction enters it, by trigger)
-- until the sequencer numbers them into events: ids max + 1, + 2, ... in inbox order, without gaps; the guards
-- of both tables. (Two sessions at once, the advisory lock, NOTIFY and commits out of order are in
-- tests/integrity/test_events_order.py: one pgTAP session cannot show them.)
BEGIN;
SELECT plan(34);

SELECT has_function('wallet_events_sequence', ARRAY['integer'], 'wallet_events_sequence exists');
SELECT has_table('event_inbox', 'the event inbox exists');
SELECT has_table('events', 'the events table exists');

-- ---------------------------------------------------------------- every transaction enters the inbox

SELECT is(ARRAY(SELECT t.reference_id::text FROM event_inbox i JOIN transactions t ON t.id = i.transaction_id ORDER BY i.seq),
          ARRAY(SELECT t.reference_id::text FROM transactions t ORDER BY t.created_at),
          'the seeded transactions wait in the inbox, in the order they were posted');
SELECT is((SELECT count(*)::integer FROM events), 0, 'and none is numbered yet');

SELECT lives_ok($$SELECT wallet_topup('user_bob', 'GOLD_COINS', 10, 'seq_topup', 'card'),
                         wallet_bonus('user_bob', 'GOLD_COINS', 10, 'seq_bonus', 'WELCOME'),
                         wallet_spend('user_bob', 'GOLD_COINS', 5, 'seq_spend', 'hat')$$, 'a top-up, a bonus, a spend');
SELECT lives_ok($$SELECT * FROM wallet_purchase('user_alice', 'seq_buy', 'bundle',
                      '[{"asset_code": "GOLD_COINS", "amount": 10}, {"asset_code": "DIAMONDS", "amount": 5}]')$$,
    'a purchase');
SELECT lives_ok($$SELECT * FROM wallet_reverse('seq_refund', 'seq_buy', 'refund')$$, 'its reversal');
SELECT lives_ok($$SELECT wallet_hold('user_bob', 'GOLD_COINS', 7, 'seq_hold'), wallet_hold('user_bob', 'GOLD_COINS', 3, 'seq_hold_2'),
                         wallet_void('seq_hold_2')$$, 'two holds, one voided');
SELECT lives_ok($$SELECT wallet_capture('seq_hold')$$, 'the other captured');
SELECT lives_ok($$SELECT wallet_topup('user_bob', 'GOLD_COINS', 10, 'seq_topup', 'card')$$, 'a replay');
SELECT throws_ok($$SELECT wallet_spend('user_bob', 'GOLD_COINS', 999999999, 'seq_too_much', 'castle')$$, 'WL001', NULL,
    'a refused spend');
SELECT is(ARRAY(SELECT t.reference_id::text FROM event_inbox i JOIN transactions t ON t.id = i.transaction_id
                 WHERE t.reference_id::text LIKE 'seq%' ORDER BY i.seq),
          ARRAY['seq_topup', 'seq_bonus', 'seq_spend', 'seq_buy', 'seq_refund', 'seq_hold'],
          'each posting entered the inbox once, in posting order (a capture too); no hold, void, replay or refused posting');
SELECT is((SELECT count(*) FROM transactions t WHERE NOT EXISTS (SELECT 1 FROM event_inbox i WHERE i.transaction_id = t.id)),
          0::bigint, 'every transaction is in the inbox');

-- a DBA's manual posting enters the inbox too: the trigger, not the posting functions, puts it there
INSERT INTO transactions (id, reference_id, type, user_id, asset_code, amount, description)
VALUES ('00000000-0000-0000-0000-00000000ee01', 'seq_manual', 'TOPUP', 'user_bob', 'GOLD_COINS', 1, 'manual');
SELECT pg_temp.post_entries('00000000-0000-0000-0000-00000000ee01', pg_temp.wallet_of('user_bob', 'GOLD_COINS'), 1,
                            pg_temp.system_wallet('GOLD_COINS', 'TREASURY'));
SELECT ok(EXISTS (SELECT 1 FROM event_inbox WHERE transaction_id = '00000000-0000-0000-0000-00000000ee01'),
    'a transaction inserted by hand is in the inbox');

-- ---------------------------------------------------------------- numbering

SELECT throws_ok($$SELECT wallet_events_sequence(0)$$, 'WL006', 'invalid argument max: must be an integer from 1 to 10000',
    'p_max 0: WL006');
SELECT throws_ok($$SELECT wallet_events_sequence(10001)$$, 'WL006', NULL, 'p_max above 10000: WL006');
SELECT throws_ok($$SELECT wallet_events_sequence(NULL)$$, 'WL006', NULL, 'p_max NULL: WL006');

CREATE TEMP TABLE waiting AS SELECT seq, transaction_id FROM event_inbox;
SELECT is(wallet_events_sequence(3), 3, 'p_max 3: three moved');
SELECT is(ARRAY(SELECT e.transaction_id FROM events e ORDER BY e.id),
          ARRAY(SELECT w.transaction_id FROM waiting w ORDER BY w.seq LIMIT 3),
          'the three oldest inbox rows ...');
SELECT is(ARRAY(SELECT e.id FROM events e ORDER BY e.id), ARRAY[1, 2, 3]::bigint[], '... numbered 1, 2, 3');
SELECT is((SELECT count(*) FROM event_inbox i WHERE i.transaction_id IN (SELECT transaction_id FROM events)), 0::bigint,
    'and gone from the inbox');
SELECT is(wallet_events_sequence(), (SELECT count(*)::integer FROM waiting) - 3, 'the rest, by default at most 1000');
SELECT is(ARRAY(SELECT e.transaction_id FROM events e ORDER BY e.id), ARRAY(SELECT w.transaction_id FROM waiting w ORDER BY w.seq),
          'every transaction numbered in inbox order ...');
SELECT is(ARRAY(SELECT e.id FROM events e ORDER BY e.id),
          ARRAY(SELECT generate_series(1, (SELECT count(*) FROM waiting))), '... 1 to n without a gap');
SELECT is_empty($$SELECT 1 FROM events e JOIN transactions t ON t.id = e.transaction_id WHERE e.user_id <> t.user_id::text$$,
    'each event names its transaction''s player');
SELECT is(wallet_events_sequence(), 0, 'nothing waits: 0');

-- ---------------------------------------------------------------- guards

SELECT throws_ok($$UPDATE events SET user_id = 'user_alice' WHERE id = 1$$, 'WL008', NULL, 'events cannot be updated');
SELECT throws_ok($$DELETE FROM events WHERE id = (SELECT max(id) FROM events)$$, 'WL008', NULL, 'nor deleted');
SELECT throws_ok($$TRUNCATE events CASCADE$$, 'WL008', NULL, 'nor truncated');
SELECT lives_ok($$SELECT wallet_topup('user_bob', 'GOLD_COINS', 1, 'seq_last', 'card')$$, 'one more posting waits');
SELECT throws_ok($$UPDATE event_inbox SET transaction_id = transaction_id$$, 'WL008', NULL, 'an inbox row cannot be updated');
SELECT throws_ok($$DELETE FROM event_inbox$$, 'WL008',
    format('event inbox rows are deleted only once numbered: transaction %s has no event', pg_temp.tx('seq_last')),
    'nor deleted before it is numbered (its event would be lost)');
SELECT throws_ok($$TRUNCATE event_inbox$$, 'WL008', NULL, 'nor truncated');

SELECT * FROM finish();
ROLLBACK;
