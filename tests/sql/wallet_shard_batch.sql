-- wallet_shard_batch: this shard's part of a batch split by player: wallet_post_batch over the operations given,
-- each result row carrying the operation's ordinal in the whole batch; per-operation errors stay rows of the
-- result, an error of the whole call comes back as data (as wallet_shard_call's).
BEGIN;
SELECT plan(16);

-- the row wallet_shard_batch returns for an error (pg_temp.error_of's JSON): result NULL and the error's fields
CREATE FUNCTION pg_temp.as_data(p_error jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('result', NULL, 'sqlstate', p_error ->> 'sqlstate', 'message', p_error ->> 'message',
                              'detail', nullif(p_error ->> 'detail', ''), 'field', nullif(p_error ->> 'column', ''))
$$;

SELECT has_function('wallet_shard_batch', ARRAY['text[]', 'jsonb[]', 'integer[]', 'text'], 'wallet_shard_batch exists');

CREATE TEMP TABLE ops AS SELECT ARRAY[
    '{"operation": "bonus", "user_id": "user_dora", "asset_code": "GOLD_COINS", "amount": 40, "reference_id": "sb_bonus", "bonus_type": "WELCOME"}',
    '{"operation": "spend", "user_id": "user_bob", "asset_code": "GOLD_COINS", "amount": 5000000, "reference_id": "sb_spend", "item_id": "castle"}',
    '{"operation": "topup", "user_id": "user_dora", "asset_code": "GOLD_COINS", "amount": 2, "reference_id": "sb_topup"}'
]::jsonb[] AS o;
CREATE TEMP TABLE first_call AS
SELECT * FROM wallet_shard_batch('{user_dora,user_bob,user_dora}', (SELECT o FROM ops), '{7,3,12}', 'sb_actor');

SELECT is((SELECT jsonb_build_array(sqlstate, message, detail, field) FROM first_call), '[null, null, null, null]'::jsonb,
          'the call itself succeeds: one row, no error fields');
SELECT is((SELECT ARRAY(SELECT (x ->> 'ordinal')::int FROM jsonb_array_elements(result) x) FROM first_call), ARRAY[7, 3, 12],
          'one result per operation, in batch order, each carrying its ordinal in the whole batch (7, 3, 12)');
CREATE TEMP TABLE again AS SELECT * FROM wallet_post_batch(to_jsonb((SELECT o FROM ops)), 'sb_actor');
SELECT is((SELECT result -> 0 FROM first_call),
          (SELECT to_jsonb(a) || '{"ordinal": 7, "replayed": false}' FROM again a WHERE a.ordinal = 1),
          'a posted operation: wallet_post_batch''s row, ordinal replaced (the same batch again replays it)');
SELECT is((SELECT result -> 1 FROM first_call),
          (SELECT to_jsonb(a) || '{"ordinal": 3}' FROM again a WHERE a.ordinal = 2),
          'a refused operation: its error as a row of the result, ordinal replaced ...');
SELECT is((SELECT jsonb_build_array(result -> 1 ->> 'sqlstate', result -> 1 ->> 'message') FROM first_call),
          '["WL001", "insufficient funds: player user_bob has 50000 GOLD_COINS and cannot spend 5000000"]'::jsonb,
          '... WL001 insufficient funds');
SELECT is((SELECT result -> 2 ->> 'ordinal' FROM first_call), '12', 'the third operation: ordinal 12');
SELECT results_eq($$SELECT reference_id::text, user_id::text, amount::bigint, actor FROM transactions
                     WHERE reference_id IN ('sb_bonus', 'sb_spend', 'sb_topup') ORDER BY 1$$,
                  $$VALUES ('sb_bonus', 'user_dora', 40::bigint, 'sb_actor'), ('sb_topup', 'user_dora', 2::bigint, 'sb_actor')$$,
                  'the two accepted operations are posted, with the actor; the refused one is not');
SELECT is((SELECT ARRAY(SELECT x ->> 'replayed' FROM jsonb_array_elements(result) x)
             FROM wallet_shard_batch('{user_dora,user_dora}', (SELECT o[1:1] || o[3:3] FROM ops), '{1,2}', 'sb_actor')),
          ARRAY['true', 'true'], 'the operations again: replayed');
SELECT is((SELECT jsonb_build_array(result, sqlstate, message, field)
             FROM wallet_shard_batch('{user_dora}', (SELECT o[1:1] || o[3:3] FROM ops), '{1,2}', 'sb_actor')),
          '[null, "WL006", "invalid argument operations: must come with one player and one ordinal each", "operations"]'::jsonb,
          'arrays of different lengths: WL006 as data, nothing posted');

-- errors of the whole call: as data
SELECT is((SELECT to_jsonb(b) FROM wallet_shard_batch('{}', '{}', '{}') b),
          pg_temp.as_data(pg_temp.error_of($$SELECT * FROM wallet_post_batch('[]')$$)),
          'no operation: wallet_post_batch''s error of the whole call, as data ...');
SELECT is((SELECT jsonb_build_array(result, sqlstate, message, field) FROM wallet_shard_batch('{}', '{}', '{}')),
          jsonb_build_array(NULL, 'WL006', format('invalid argument operations: must hold 1 to %s operations, not 0', _wallet_max_batch()),
                            'operations'),
          '... WL006 naming the field operations');
CREATE TEMP TABLE new_op AS SELECT ARRAY['{"operation": "topup", "user_id": "user_dora", "asset_code": "GOLD_COINS",
                                                "amount": 9, "reference_id": "sb_bad_actor"}'::jsonb] AS o;
SELECT is((SELECT to_jsonb(b) FROM wallet_shard_batch('{user_dora}', (SELECT o FROM new_op), '{1}', E'bad\x01actor') b),
          pg_temp.as_data(pg_temp.error_of(format('SELECT * FROM wallet_post_batch(%L, %L)',
                                                  to_jsonb((SELECT o FROM new_op)), E'bad\x01actor'))),
          'an invalid actor: the whole call''s error, as data');
SELECT is((SELECT count(*) FROM transactions WHERE reference_id = 'sb_bad_actor')::int, 0, 'and nothing posted');

SET LOCAL ROLE wallet_app;
CREATE TEMP TABLE app_call AS
SELECT * FROM wallet_shard_batch('{user_eve}', ARRAY['{"operation": "topup", "user_id": "user_eve", "asset_code": "DIAMONDS",
                                                      "amount": 3, "reference_id": "sb_app"}'::jsonb], '{5}');
SELECT lives_ok('SET CONSTRAINTS ALL IMMEDIATE', 'wallet_app posts a batch through it, and its deferred checks pass');
SET CONSTRAINTS ALL DEFERRED;
RESET ROLE;
SELECT is((SELECT jsonb_build_array(result -> 0 ->> 'ordinal', result -> 0 ->> 'balance', sqlstate) FROM app_call),
          '["5", "3", null]'::jsonb, 'wallet_app''s batch: posted, ordinal 5');

SELECT * FROM finish();
ROLLBACK;
