-- wallet_key_list: every key, active or revoked, without secrets.
BEGIN;
SELECT plan(4);

SELECT has_function('wallet_key_list', 'wallet_key_list exists');
SELECT is_empty('SELECT * FROM wallet_key_list()', 'no keys on a new ledger');
SELECT lives_ok($$SELECT wallet_key_create('a', ARRAY['read']); SELECT wallet_key_create('b', ARRAY['admin']);
                  SELECT wallet_key_revoke('a')$$, 'two keys, one revoked');
SELECT results_eq($$SELECT name, scopes, revoked_at IS NOT NULL, created_by FROM wallet_key_list()$$,
    $$VALUES ('a', ARRAY['read'], true, session_user::text COLLATE "default"), ('b', ARRAY['admin'], false, session_user::text COLLATE "default")$$,
    'both, oldest first, with scopes, who created them and whether revoked');

SELECT * FROM finish();
ROLLBACK;
