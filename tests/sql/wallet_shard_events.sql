-- wallet_shard_events: this shard's events after the position the proxy has reached on it (p_after: shard name ->
-- last event id), oldest first, each tagged with the shard's name, the event being wallet_events' row as JSON.
BEGIN;
SELECT plan(14);

SELECT has_function('wallet_shard_events', ARRAY['jsonb', 'integer'], 'wallet_shard_events exists');

SELECT throws_ok($$SELECT * FROM wallet_shard_events('{}', 10)$$, 'WL006',
    'invalid argument shard: this database is no shard (wallet-service shards init)', 'a database that is no shard: WL006');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_shard_events('{}', 10)$$) ->> 'column', 'shard', 'naming the field shard');

INSERT INTO shard_identity (name, partition_count, partitions) VALUES ('s1', 2, '{1}');

SELECT results_eq($$SELECT shard, event_id, event FROM wallet_shard_events('{}', 100)$$,
                  $$SELECT 's1', e.event_id, to_jsonb(e) FROM wallet_events(0) e$$,
                  'no position for this shard: every event from the first, tagged s1, the wallet_events row as JSON');
SELECT is(ARRAY(SELECT event_id FROM wallet_shard_events('{}', 100)), ARRAY[1, 2, 3, 4]::bigint[],
          'the four seed postings, numbered in order (what waited was numbered first)');

SELECT lives_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 5, 'ev_1', 'card'),
                         wallet_spend('user_bob', 'GOLD_COINS', 7, 'ev_2', 'hat')$$, 'two more postings');
SELECT results_eq($$SELECT shard, event_id, event FROM wallet_shard_events('{"s1": 4, "s0": 1, "s2": 5}', 100)$$,
                  $$SELECT 's1', e.event_id, to_jsonb(e) FROM wallet_events(4) e$$,
                  'after this shard''s own position only (4; other shards'' positions ignored): the two new events');
SELECT is((SELECT array_agg(event ->> 'reference_id' ORDER BY event_id) FROM wallet_shard_events('{"s1": 4}', 100)),
          ARRAY['ev_1', 'ev_2'], 'which are the two postings, oldest first');
SELECT is(ARRAY(SELECT event_id FROM wallet_shard_events('{"s0": 5}', 100)), ARRAY[1, 2, 3, 4, 5, 6]::bigint[],
          'a position for another shard only: this shard''s events from the first');
SELECT is(ARRAY(SELECT event_id FROM wallet_shard_events(NULL, 100)), ARRAY[1, 2, 3, 4, 5, 6]::bigint[],
          'no positions at all: from the first');
SELECT is(ARRAY(SELECT event_id FROM wallet_shard_events('{"s1": 2}', 2)), ARRAY[3, 4]::bigint[],
          'p_limit 2 after 2: events 3 and 4');
SELECT throws_ok($$SELECT * FROM wallet_shard_events('{"s1": 7}', 10)$$, 'WL006',
    'invalid argument last_event_id: is past the newest event (6): it is no event id of this ledger',
    'a position past this shard''s newest event: WL006 as wallet_events (a shard restored from an older backup)');
SELECT throws_ok($$SELECT * FROM wallet_shard_events('{"s1": 0}', 0)$$, 'WL006',
    format('invalid argument limit: must be an integer from 1 to %s', _wallet_max_page()), 'p_limit 0: WL006 as wallet_events');

SET LOCAL ROLE wallet_app;
CREATE TEMP TABLE app_events AS SELECT * FROM wallet_shard_events('{"s1": 5}', 10);
RESET ROLE;
SELECT results_eq($$SELECT shard, event_id, event ->> 'reference_id' FROM app_events$$,
                  $$VALUES ('s1', 6::bigint, 'ev_2')$$, 'wallet_app may read them');

SELECT * FROM finish();
ROLLBACK;
