-- The database roles: wallet_app may call the API and nothing else; wallet_support reads but cannot write;
-- PUBLIC may execute nothing; every function runs as wallet_owner with a pinned search_path.
BEGIN;
SELECT plan(61);

SELECT has_role('wallet_owner', 'wallet_owner exists');
SELECT has_role('wallet_app', 'wallet_app exists');
SELECT has_role('wallet_support', 'wallet_support exists');
SELECT is(ARRAY(SELECT rolname::text FROM pg_roles WHERE rolname IN ('wallet_owner', 'wallet_app', 'wallet_support')
                                                   AND NOT rolcanlogin AND NOT rolsuper ORDER BY 1),
          ARRAY['wallet_app', 'wallet_owner', 'wallet_support'], 'all three NOLOGIN, none a superuser');
SELECT is_member_of('wallet_app', 'wallet_support', 'wallet_support holds wallet_app');

SELECT is_empty($$SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'S') AND c.relname !~ '^_?yoyo'
                     AND pg_get_userbyid(c.relowner) <> 'wallet_owner'
                     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')$$,
    'wallet_owner owns every table, view, sequence (but an extension''s)');
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                   WHERE n.nspname = 'public' AND p.proname ~ '^_?wallet_' AND pg_get_userbyid(p.proowner) <> 'wallet_owner'$$,
    'wallet_owner owns every wallet function');
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                   WHERE n.nspname = 'public' AND p.proname ~ '^_?wallet_' AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
    'PUBLIC may execute no wallet function');
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                   WHERE n.nspname = 'public' AND p.proname ~ '^wallet_'
                     AND p.proname NOT IN ('wallet_grant_role', 'wallet_shard_call', 'wallet_shard_batch', 'wallet_shard_rows')
                     AND NOT p.prosecdef$$,
    'every public wallet_* function runs as its owner (SECURITY DEFINER), but those documented to run with the caller''s rights');
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                   WHERE n.nspname = 'public' AND p.prosecdef
                     AND NOT coalesce(p.proconfig @> ARRAY['search_path=public, pg_temp'], false)$$,
    'every SECURITY DEFINER function pins search_path to public, pg_temp');
SELECT ok((SELECT count(*) FROM pg_proc WHERE prosecdef AND pronamespace = 'public'::regnamespace) >= 15,
    'and there are SECURITY DEFINER functions to check');
SELECT is(ARRAY(SELECT p.proname::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
                  AND p.proname ~ '^_?wallet_' AND has_function_privilege('wallet_app', p.oid, 'EXECUTE')
                  AND p.proname NOT IN ('wallet_topup', 'wallet_bonus', 'wallet_spend', 'wallet_balances',
                                        'wallet_history', 'wallet_transaction', 'wallet_verify', 'wallet_authenticate',
                                        'wallet_migrations', 'wallet_chain_heads', 'wallet_verify_anchor',
                                        'wallet_purchase', 'wallet_reverse', 'wallet_hold', 'wallet_capture',
                                        'wallet_void', 'wallet_hold_status', 'wallet_expire_holds',
                                        'wallet_events', 'wallet_events_sequence', 'wallet_post_batch',
                                        -- the shard's side of the PL/Proxy database (not wallet_shard_seed: it mints)
                                        'wallet_shard_call', 'wallet_shard_reserved', 'wallet_shard_claim',
                                        'wallet_shard_owner', 'wallet_shard_verify', 'wallet_shard_verify_anchor',
                                        'wallet_shard_events', 'wallet_shard_batch', 'wallet_shard_rows')),
          ARRAY[]::text[], 'wallet_app may execute the API and nothing else (no helper, no seed, no key management)');

SELECT is(ARRAY(SELECT p.proname::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
                  AND p.proname IN ('wallet_purchase', 'wallet_reverse', 'wallet_hold', 'wallet_capture', 'wallet_void',
                                    'wallet_hold_status', 'wallet_expire_holds')
                  AND has_function_privilege('wallet_app', p.oid, 'EXECUTE')
                  AND NOT has_function_privilege('public', p.oid, 'EXECUTE')
                ORDER BY 1),
          ARRAY['wallet_capture', 'wallet_expire_holds', 'wallet_hold', 'wallet_hold_status', 'wallet_purchase',
                'wallet_reverse', 'wallet_void'],
          'wallet_app may execute each economy function, PUBLIC none of them');
SELECT is(ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
                  AND p.proname ~ '_event'
                  AND has_function_privilege('wallet_app', p.oid, 'EXECUTE')
                  AND NOT has_function_privilege('public', p.oid, 'EXECUTE') AND p.prosecdef
                ORDER BY 1),
          ARRAY['wallet_events(bigint,text,integer)', 'wallet_events_sequence(integer)', 'wallet_shard_events(jsonb,integer)'],
          'wallet_app may execute the event reader and sequencer (SECURITY DEFINER), PUBLIC neither, no event helper');

-- ---------------------------------------------------------------- as wallet_app
SET LOCAL ROLE wallet_app;
SELECT lives_ok($$SELECT wallet_topup('user_bob', 'GOLD_COINS', 5, 'roles_1', 'card')$$, 'wallet_app posts a top-up');
SELECT lives_ok('SET CONSTRAINTS ALL IMMEDIATE', 'and its deferred checks, which run as at COMMIT, pass for wallet_app');
SET CONSTRAINTS ALL DEFERRED;
SELECT is((SELECT count(*) FROM wallet_post_batch('[{"operation": "bonus", "user_id": "user_bob", "asset_code": "GOLD_COINS",
              "amount": 5, "reference_id": "roles_batch", "bonus_type": "X"}]') WHERE sqlstate IS NULL), 1::bigint,
    'wallet_app posts a batch');
SELECT lives_ok('SET CONSTRAINTS ALL IMMEDIATE', 'and its deferred checks pass for wallet_app');
SET CONSTRAINTS ALL DEFERRED;
SELECT lives_ok($$SELECT * FROM wallet_balances('user_bob')$$, 'wallet_app reads balances');
SELECT lives_ok($$SELECT * FROM wallet_transaction('roles_1')$$, 'wallet_app looks a transaction up');
SELECT lives_ok($$SELECT * FROM wallet_purchase('user_bob', 'roles_buy', 'hat', '[{"asset_code": "GOLD_COINS", "amount": 3}]')$$,
    'wallet_app makes a purchase');
SELECT lives_ok($$SELECT * FROM wallet_reverse('roles_refund', 'roles_buy', 'test')$$, 'wallet_app reverses it');
SELECT lives_ok($$SELECT wallet_hold('user_bob', 'GOLD_COINS', 5, 'roles_hold_1'),
                         wallet_hold('user_bob', 'GOLD_COINS', 5, 'roles_hold_2')$$, 'wallet_app places holds');
SELECT lives_ok($$SELECT wallet_capture('roles_hold_1'), wallet_void('roles_hold_2')$$,
    'wallet_app captures one and voids the other');
SELECT lives_ok($$SELECT wallet_hold_status('roles_hold_1'), wallet_expire_holds()$$,
    'wallet_app reads a hold and runs the maintenance');
SELECT lives_ok($$SELECT * FROM wallet_balances('user_bob', p_at => now())$$, 'wallet_app reads balances at an instant');
SELECT lives_ok($$SELECT * FROM wallet_events(0, 'user_bob')$$, 'wallet_app reads events (numbering what waits)');
SELECT lives_ok('SET CONSTRAINTS ALL IMMEDIATE', 'the deferred checks of all that pass for wallet_app');
SET CONSTRAINTS ALL DEFERRED;
SELECT throws_ok($$SELECT * FROM holds$$, '42501', NULL, 'wallet_app cannot SELECT holds');
SELECT throws_ok($$UPDATE holds SET status = 'VOIDED'$$, '42501', NULL, 'wallet_app cannot UPDATE holds');
SELECT throws_ok($$SELECT _wallet_claim_key('roles_x')$$, '42501', NULL, 'wallet_app cannot call a new private helper');
SELECT throws_ok($$SELECT * FROM wallets$$, '42501', NULL, 'wallet_app cannot SELECT wallets');
SELECT throws_ok($$SELECT * FROM transactions$$, '42501', NULL, 'wallet_app cannot SELECT transactions');
SELECT throws_ok($$SELECT * FROM ledger_entries$$, '42501', NULL, 'wallet_app cannot SELECT ledger_entries');
SELECT throws_ok($$SELECT * FROM api_keys$$, '42501', NULL, 'wallet_app cannot SELECT api_keys');
SELECT throws_ok($$SELECT * FROM assets$$, '42501', NULL, 'wallet_app cannot SELECT assets');
SELECT throws_ok($$UPDATE wallets SET balance = balance + 1$$, '42501', NULL, 'wallet_app cannot UPDATE wallets');
SELECT throws_ok($$DELETE FROM ledger_entries$$, '42501', NULL, 'wallet_app cannot DELETE ledger entries');
SELECT throws_ok($$INSERT INTO transactions (reference_id, type, user_id, asset_code, amount, description)
                   VALUES ('x', 'TOPUP', 'u', 'GOLD_COINS', 1, 'x')$$, '42501', NULL, 'wallet_app cannot INSERT transactions');
SELECT throws_ok($$ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only$$, '42501', NULL,
    'wallet_app cannot DISABLE TRIGGER');
SELECT throws_ok($$SET session_replication_role = replica$$, '42501', NULL,
    'wallet_app cannot switch triggers off with session_replication_role');
SELECT throws_ok($$COPY (SELECT 1) TO PROGRAM 'true'$$, '42501', NULL, 'wallet_app cannot COPY TO PROGRAM');
SELECT throws_ok($$SELECT * FROM events$$, '42501', NULL, 'wallet_app cannot SELECT events');
SELECT throws_ok($$SELECT * FROM event_inbox$$, '42501', NULL, 'wallet_app cannot SELECT the event inbox');
SELECT throws_ok($$INSERT INTO event_inbox (transaction_id) SELECT gen_random_uuid()$$, '42501', NULL,
    'wallet_app cannot INSERT into the event inbox');
SELECT throws_ok($$DELETE FROM event_inbox$$, '42501', NULL, 'wallet_app cannot DELETE from the event inbox');
SELECT throws_ok($$UPDATE events SET user_id = 'x'$$, '42501', NULL, 'wallet_app cannot UPDATE events');
SELECT throws_ok($$SELECT _wallet_event_legs(gen_random_uuid())$$, '42501', NULL,
    'wallet_app cannot call the event helper');
SELECT throws_ok($$SELECT _wallet_post('TOPUP', 'user_bob', 'GOLD_COINS', 5, 'roles_2')$$, '42501', NULL,
    'wallet_app cannot call a private helper');
SELECT throws_ok($$SELECT * FROM wallet_seed()$$, '42501', NULL, 'wallet_app cannot seed (it mints credits)');
SELECT throws_ok($$SELECT * FROM wallet_key_create('mine', ARRAY['admin'])$$, '42501', NULL,
    'wallet_app cannot create API keys');
RESET ROLE;
SELECT is((SELECT db_role FROM transactions WHERE reference_id = 'roles_1'), session_user::text,
    'the calling role is recorded as db_role, not the functions'' owner');

-- ---------------------------------------------------------------- as wallet_support
SET LOCAL ROLE wallet_support;
SELECT lives_ok($$SELECT count(*) FROM ledger_entries$$, 'wallet_support reads ledger entries');
SELECT lives_ok($$SELECT count(*) FROM wallets JOIN transactions USING (user_id)$$, 'wallet_support reads wallets and transactions');
SELECT lives_ok($$SELECT count(*) FROM holds$$, 'wallet_support reads holds');
SELECT lives_ok($$SELECT count(*) FROM events JOIN event_inbox USING (transaction_id)$$,
    'wallet_support reads events and the event inbox');
SELECT lives_ok($$SELECT * FROM wallet_verify()$$, 'wallet_support runs wallet_verify');
SELECT throws_ok($$UPDATE wallets SET balance = balance + 1$$, '42501', NULL, 'wallet_support cannot UPDATE wallets');
SELECT throws_ok($$INSERT INTO api_keys (name, key_hash, scopes) VALUES ('x', sha256('x'), '{admin}')$$, '42501', NULL,
    'wallet_support cannot mint an API key by hand');
SELECT throws_ok($$DELETE FROM transactions$$, '42501', NULL, 'wallet_support cannot DELETE transactions');
SELECT throws_ok($$DELETE FROM events$$, '42501', NULL, 'wallet_support cannot DELETE events');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
