-- wallet_shard_call: one public wallet_* function run by name for the PL/Proxy database, its arguments cast from
-- text to their declared types; its rows come back as JSON, its error as data (exactly the fields the function
-- raises directly); an unknown, private or wallet_shard_* function or an unknown argument name is raised (WL006);
-- the caller's own rights apply; a key reserved for another player runs the function only if the key is taken.
BEGIN;
SELECT plan(43);

-- the one row of a wallet_shard_call statement as JSON; if the statement raises instead: {"raised": {sqlstate, message}}
CREATE FUNCTION pg_temp.row_of(p_sql text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_row jsonb;
    v_state text;
    v_message text;
BEGIN
    EXECUTE format('SELECT to_jsonb(x) FROM (%s) x', p_sql) INTO STRICT v_row;
    RETURN v_row;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
    RETURN jsonb_build_object('raised', jsonb_build_object('sqlstate', v_state, 'message', v_message));
END;
$$;
-- the row wallet_shard_call returns for an error (pg_temp.error_of's JSON): result NULL and the error's fields
CREATE FUNCTION pg_temp.as_data(p_error jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('result', NULL, 'sqlstate', p_error ->> 'sqlstate', 'message', p_error ->> 'message',
                              'detail', nullif(p_error ->> 'detail', ''), 'field', nullif(p_error ->> 'column', ''))
$$;

SELECT has_function('wallet_shard_call', ARRAY['text', 'text[]', 'text[]', 'text', 'text'], 'wallet_shard_call exists');

-- ---------------------------------------------------------------- rows as JSON

SELECT is(pg_temp.row_of($$SELECT * FROM wallet_shard_call('wallet_events_sequence', '{p_max}', '{3}')$$),
          '{"result": [{"value": 3}], "sqlstate": null, "message": null, "detail": null, "field": null}'::jsonb,
          'a scalar result (wallet_events_sequence, p_max cast to integer): [{"value": n}] and no error');
SELECT is((SELECT count(*) FROM events)::int, 3, 'the call did its work: three events numbered');
SELECT is((SELECT result FROM wallet_shard_call('wallet_migrations', '{}', '{}')),
          (SELECT jsonb_agg(jsonb_build_object('migration_id', m.migration_id)) FROM wallet_migrations() m),
          'a table of one column (wallet_migrations): one object per row keyed by the column''s name');
SELECT ok((SELECT jsonb_array_length(result) >= 8 FROM wallet_shard_call('wallet_migrations', '{}', '{}')),
          'and it holds every migration');

CREATE TEMP TABLE c_topup AS
SELECT * FROM wallet_shard_call('wallet_topup',
                                '{p_user_id,p_asset_code,p_amount,p_reference_id,p_payment_method,p_metadata}',
                                '{user_bob,GOLD_COINS,250,sc_topup,card,"{\"order\": 7}"}');
SELECT is((SELECT jsonb_build_array(jsonb_array_length(result), sqlstate, message, detail, field) FROM c_topup),
          '[1, null, null, null, null]'::jsonb, 'a composite result (wallet_topup): one row, no error');
SELECT is((SELECT result -> 0 FROM c_topup),
          (SELECT to_jsonb(p) || '{"replayed": false}' FROM wallet_topup('user_bob', 'GOLD_COINS', 250, 'sc_topup', 'card',
                                                                      '{"order": 7}') p),
          'the wallet_posting row as an object by column name: the function''s own row (replayed when called again)');
SELECT is((SELECT (t.amount::bigint, t.metadata, t.payment_method)::text FROM transactions t WHERE t.reference_id = 'sc_topup'),
          (250::bigint, '{"order": 7}'::jsonb, 'card'::text)::text,
          'the arguments were cast: p_amount to bigint, p_metadata to jsonb');

SELECT is((SELECT result FROM wallet_shard_call('wallet_balances', '{p_user_id}', '{user_alice}')),
          (SELECT jsonb_agg(to_jsonb(b)) FROM wallet_balances('user_alice') b),
          'a RETURNS TABLE result of two rows (wallet_balances): every row, every column, in order');

-- p_at: alice's balance as of her opening balance, though she has topped up since
SELECT lives_ok($$SELECT wallet_topup('user_alice', 'GOLD_COINS', 7, 'sc_alice_7', 'card')$$, 'alice tops up 7');
CREATE TEMP TABLE opened AS SELECT created_at FROM transactions WHERE reference_id = 'init_alice_gold_001';
SELECT is((SELECT result FROM wallet_shard_call('wallet_balances', '{p_user_id,p_asset_code,p_at}',
                                                ARRAY['user_alice', 'GOLD_COINS', (SELECT created_at::text FROM opened)])),
          (SELECT jsonb_agg(to_jsonb(b)) FROM wallet_balances('user_alice', 'GOLD_COINS', (SELECT created_at FROM opened)) b),
          'p_at cast to timestamptz: the balance at that instant, as wallet_balances gives it ...');
SELECT is((SELECT result -> 0 ->> 'balance' FROM wallet_shard_call('wallet_balances', '{p_user_id,p_asset_code,p_at}',
                                                ARRAY['user_alice', 'GOLD_COINS', (SELECT created_at::text FROM opened)])),
          '100000', '... 100000, not today''s 100007');

CREATE TEMP TABLE reader AS SELECT * FROM wallet_key_create('sc_reader', ARRAY['read']);
SELECT is((SELECT result FROM wallet_shard_call('wallet_authenticate', '{p_key_hash}',
                                                ARRAY[(SELECT sha256(convert_to(secret, 'UTF8'))::text FROM reader)])),
          '[{"name": "sc_reader", "scopes": ["read"]}]'::jsonb,
          'p_key_hash cast to bytea (wallet_authenticate): the key behind the hash');
SELECT is((SELECT result -> 0 -> 'scopes' FROM wallet_shard_call('wallet_key_create', '{p_name,p_scopes}',
                                                                ARRAY['sc_key', '{read,topup}'])),
          '["read", "topup"]'::jsonb, 'p_scopes cast to text[] (wallet_key_create) ...');
SELECT is((SELECT scopes::text[] FROM api_keys WHERE name = 'sc_key'), ARRAY['read', 'topup'], '... and stored as such');

-- ---------------------------------------------------------------- errors as data

SELECT is(pg_temp.row_of($$SELECT * FROM wallet_shard_call('wallet_spend',
                              '{p_user_id,p_asset_code,p_amount,p_reference_id,p_item_id}',
                              '{user_bob,GOLD_COINS,5000000,sc_spend,castle}')$$),
          pg_temp.as_data(pg_temp.error_of($$SELECT wallet_spend('user_bob', 'GOLD_COINS', 5000000, 'sc_spend', 'castle')$$)),
          'a refused spend comes back as data: sqlstate, message, detail and field as wallet_spend raises them');
SELECT is((SELECT jsonb_build_array(sqlstate, message, detail::jsonb, field)
             FROM wallet_shard_call('wallet_spend', '{p_user_id,p_asset_code,p_amount,p_reference_id,p_item_id}',
                                    '{user_bob,GOLD_COINS,5000000,sc_spend,castle}')),
          jsonb_build_array('WL001', 'insufficient funds: player user_bob has 50250 GOLD_COINS and cannot spend 5000000',
                            '{"user_id": "user_bob", "asset_code": "GOLD_COINS", "required": 5000000, "available": 50250, "held": 0}'::jsonb,
                            NULL),
          'that is WL001 insufficient funds with its JSON detail');
SELECT is(pg_temp.row_of($$SELECT * FROM wallet_shard_call('wallet_topup', '{p_user_id,p_asset_code,p_amount,p_reference_id}',
                                                            '{user_bob,GOLD_COINS,0,sc_zero}')$$),
          pg_temp.as_data(pg_temp.error_of($$SELECT wallet_topup('user_bob', 'GOLD_COINS', 0, 'sc_zero')$$)),
          'an invalid argument comes back as data as wallet_topup raises it ...');
SELECT is((SELECT jsonb_build_array(sqlstate, field) FROM wallet_shard_call('wallet_topup',
              '{p_user_id,p_asset_code,p_amount,p_reference_id}', '{user_bob,GOLD_COINS,0,sc_zero}')),
          '["WL006", "amount"]'::jsonb, '... WL006 with its field');
SELECT is((SELECT jsonb_build_array(result, sqlstate, message) FROM wallet_shard_call('wallet_balances', '{p_user_id,p_at}',
                                                                                      '{user_alice,garbage}')),
          '[null, "22007", "invalid input syntax for type timestamp with time zone: \"garbage\""]'::jsonb,
          'an argument that does not cast to its type: the cast''s error, as data');

-- wallet_events numbers what waits, then refuses a position past the newest event: the call writes nothing
SELECT lives_ok($$SELECT wallet_topup('user_bob', 'GOLD_COINS', 1, 'sc_waiting', 'card')$$, 'a posting waits in the inbox');
CREATE TEMP TABLE before_error AS SELECT (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM event_inbox) AS inbox;
SELECT is((SELECT jsonb_build_array(sqlstate, field) FROM wallet_shard_call('wallet_events', '{p_after}', '{999}')),
          '["WL006", "last_event_id"]'::jsonb, 'wallet_events past the newest event: WL006 as data ...');
SELECT is((SELECT ARRAY[count(*), (SELECT count(*) FROM event_inbox)] FROM events),
          (SELECT ARRAY[events, inbox] FROM before_error), '... and what it numbered before it failed is undone');

-- ---------------------------------------------------------------- refused: raised (a bug of the proxy)

SELECT throws_ok($$SELECT * FROM wallet_shard_call('_wallet_post', '{}', '{}')$$, 'WL006',
    'invalid argument function: _wallet_post is no public wallet function', 'a private helper is refused');
SELECT throws_ok($$SELECT * FROM wallet_shard_call('wallet_shard_call', '{}', '{}')$$, 'WL006',
    'invalid argument function: wallet_shard_call is no public wallet function', 'wallet_shard_call itself is refused');
SELECT throws_ok($$SELECT * FROM wallet_shard_call('wallet_shard_reserved', '{p_reference_id,p_owner}', '{k,u}')$$, 'WL006',
    'invalid argument function: wallet_shard_reserved is no public wallet function', 'so is any wallet_shard_* function');
SELECT throws_ok($$SELECT * FROM wallet_shard_call(NULL, '{}', '{}')$$, 'WL006',
    'invalid argument function: NULL is no public wallet function', 'so is NULL');
SELECT throws_ok($$SELECT * FROM wallet_shard_call('wallet_migrations(); SELECT 1', '{}', '{}')$$, 'WL006',
    'invalid argument function: wallet_migrations(); SELECT 1 is no public wallet function',
    'so is a name that is no function''s');
SELECT throws_ok($$SELECT * FROM wallet_shard_call('wallet_nope', '{}', '{}')$$, 'WL006',
    'invalid argument function: wallet_nope is no public wallet function', 'an unknown function is refused');
CREATE SCHEMA sc_other;
CREATE FUNCTION sc_other.wallet_elsewhere() RETURNS integer LANGUAGE sql RETURN 1;
SELECT throws_ok($$SELECT * FROM wallet_shard_call('wallet_elsewhere', '{}', '{}')$$, 'WL006',
    'invalid argument function: wallet_elsewhere is no public wallet function',
    'a wallet_* function outside the public schema is refused');
SELECT throws_ok($$SELECT * FROM wallet_shard_call('wallet_topup', '{p_user_id,p_nope}', '{user_bob,1}')$$, 'WL006',
    'invalid argument arguments: wallet_topup has no argument p_nope', 'an unknown argument name is refused');
SELECT throws_ok($$SELECT * FROM wallet_shard_call('wallet_balances', '{p_user_id,balance}', '{user_bob,1}')$$, 'WL006',
    'invalid argument arguments: wallet_balances has no argument balance', 'so is the name of a result column');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_shard_call('wallet_topup', '{p_nope}', '{1}')$$) - 'message',
          '{"sqlstate": "WL006", "column": "arguments",
            "detail": "{\"field\" : \"arguments\", \"message\" : \"wallet_topup has no argument p_nope\"}"}'::jsonb,
          'the refusal names its field, with a JSON detail');

-- ---------------------------------------------------------------- the caller's rights

SET LOCAL ROLE wallet_app;
CREATE TEMP TABLE app_balances AS SELECT pg_temp.row_of($$SELECT * FROM wallet_shard_call('wallet_balances', '{p_user_id}',
                                                                                          '{user_charlie}')$$) AS r;
CREATE TEMP TABLE app_key AS SELECT pg_temp.row_of($$SELECT * FROM wallet_shard_call('wallet_key_create', '{p_name,p_scopes}',
                                                                                     ARRAY['sc_app_key', '{admin}'])$$) AS r;
CREATE TEMP TABLE app_refused AS SELECT pg_temp.error_of($$SELECT * FROM wallet_shard_call('wallet_nope', '{}', '{}')$$) AS e;
RESET ROLE;
SELECT is((SELECT jsonb_build_array(e ->> 'sqlstate', e ->> 'message') FROM app_refused),
          '["WL006", "invalid argument function: wallet_nope is no public wallet function"]'::jsonb,
          'wallet_app gets the refusal of an unknown function as anyone does (no helper it may not execute)');
SELECT is((SELECT r FROM app_balances),
          jsonb_build_object('result', (SELECT jsonb_agg(to_jsonb(b)) FROM wallet_balances('user_charlie') b),
                             'sqlstate', NULL, 'message', NULL, 'detail', NULL, 'field', NULL),
          'wallet_app calls a function it may execute through it');
SELECT is((SELECT r FROM app_key),
          '{"result": null, "sqlstate": "42501", "message": "permission denied for function wallet_key_create", "detail": null, "field": null}'::jsonb,
          'wallet_app calling wallet_key_create through it gets permission denied, as data');
SELECT is((SELECT count(*) FROM api_keys WHERE name = 'sc_app_key')::int, 0, 'and no key was created');

-- ---------------------------------------------------------------- a key reserved for another player

SELECT is(pg_temp.row_of($$SELECT * FROM wallet_shard_call('wallet_topup', '{p_user_id,p_asset_code,p_amount,p_reference_id}',
                              '{user_dora,GOLD_COINS,5,init_bob_gold_001}', 'init_bob_gold_001', 'user_bob')$$),
          pg_temp.as_data(pg_temp.error_of($$SELECT wallet_topup('user_dora', 'GOLD_COINS', 5, 'init_bob_gold_001')$$)),
          'a reserved key taken here by a transaction: the function runs and answers its own WL004, as on one server');
SELECT lives_ok($$SELECT wallet_hold('user_bob', 'GOLD_COINS', 5, 'sc_hold')$$, 'bob places a hold');
SELECT is(pg_temp.row_of($$SELECT * FROM wallet_shard_call('wallet_topup', '{p_user_id,p_asset_code,p_amount,p_reference_id}',
                              '{user_dora,GOLD_COINS,5,sc_hold}', 'sc_hold', 'user_bob')$$),
          pg_temp.as_data(pg_temp.error_of($$SELECT wallet_topup('user_dora', 'GOLD_COINS', 5, 'sc_hold')$$)),
          'a reserved key taken here by a hold: the function''s own error ...');
SELECT is((SELECT jsonb_build_array(sqlstate, message) FROM wallet_shard_call('wallet_topup',
              '{p_user_id,p_asset_code,p_amount,p_reference_id}', '{user_dora,GOLD_COINS,5,sc_hold}', 'sc_hold', 'user_bob')),
          '["WL004", "reference id sc_hold already belongs to a hold of 5 GOLD_COINS for user_bob"]'::jsonb,
          '... WL004, the key belongs to a hold');
SELECT is(pg_temp.row_of($$SELECT * FROM wallet_shard_call('wallet_topup', '{p_user_id,p_asset_code,p_amount,p_reference_id}',
                              '{user_dora,GOLD_COINS,5,sc_free}', 'sc_free', 'user_eve')$$),
          '{"result": null, "sqlstate": "WL004", "message": "reference id sc_free is reserved for user_eve",
            "detail": "{\"reference_id\" : \"sc_free\", \"user_id\" : \"user_eve\"}", "field": null}'::jsonb,
          'a reserved key taken by nothing here: WL004 reserved for its owner, as data');
SELECT is((SELECT count(*) FROM transactions WHERE reference_id = 'sc_free')::int, 0,
          'and the function did not run: nothing posted with the key');

SELECT * FROM finish();
ROLLBACK;
