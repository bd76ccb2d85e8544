-- wallet_authenticate: the active key behind a secret's hash, or nothing.
BEGIN;
SELECT plan(5);

SELECT has_function('wallet_authenticate', ARRAY['bytea'], 'wallet_authenticate exists');
CREATE TEMP TABLE k AS SELECT * FROM wallet_key_create('reader', ARRAY['read', 'topup']);
SELECT results_eq($$SELECT name, scopes FROM wallet_authenticate((SELECT sha256(convert_to(secret, 'UTF8')) FROM k))$$,
    $$VALUES ('reader', ARRAY['read', 'topup'])$$, 'the hash of the secret names the key and its scopes');
SELECT is_empty($$SELECT * FROM wallet_authenticate(sha256('wsk_not_a_key'::bytea))$$, 'an unknown secret: no row');
SELECT is_empty($$SELECT * FROM wallet_authenticate((SELECT convert_to(secret, 'UTF8') FROM k))$$,
    'the secret itself (not its hash) matches nothing');
SELECT is_empty($$SELECT * FROM wallet_authenticate(NULL)$$, 'NULL: no row');

SELECT * FROM finish();
ROLLBACK;
