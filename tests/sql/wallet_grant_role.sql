-- wallet_grant_role: a login gets wallet_app or wallet_support, with the session limits that go with it.
BEGIN;
SELECT plan(8);

SELECT has_function('wallet_grant_role', ARRAY['text', 'text'], 'wallet_grant_role exists');
CREATE ROLE grant_test_app LOGIN;
CREATE ROLE grant_test_support LOGIN;
CREATE ROLE grant_test_nologin NOLOGIN;
SELECT lives_ok($$SELECT wallet_grant_role('grant_test_app', 'wallet_app')$$, 'a login gets wallet_app');
SELECT is_member_of('wallet_app', 'grant_test_app', 'it is a member of wallet_app');
SELECT is((SELECT setconfig FROM pg_db_role_setting WHERE setrole = 'grant_test_app'::regrole AND setdatabase = 0),
          ARRAY['statement_timeout=15s', 'idle_in_transaction_session_timeout=15s'],
          'an app login gets statement and idle-in-transaction timeouts');
SELECT lives_ok($$SELECT wallet_grant_role('grant_test_support', 'wallet_support')$$, 'a login gets wallet_support');
SELECT is((SELECT setconfig FROM pg_db_role_setting WHERE setrole = 'grant_test_support'::regrole AND setdatabase = 0),
          ARRAY['idle_in_transaction_session_timeout=60s'],
          'a support login gets an idle_in_transaction_session_timeout: a forgotten session cannot hold locks');
SELECT throws_ok($$SELECT wallet_grant_role('grant_test_app', 'wallet_owner')$$, 'WL006',
    'invalid argument role: must be wallet_app or wallet_support', 'only the app and support roles are granted');
SELECT throws_ok($$SELECT wallet_grant_role('grant_test_nologin', 'wallet_app')$$, 'WL006',
    'invalid argument login: no login role is named grant_test_nologin', 'only to a login role');

SELECT * FROM finish();
ROLLBACK;
