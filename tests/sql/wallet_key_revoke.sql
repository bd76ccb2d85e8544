-- wallet_key_revoke: a revoked key no longer authenticates; revoking again changes nothing.
BEGIN;
SELECT plan(6);

SELECT has_function('wallet_key_revoke', ARRAY['text'], 'wallet_key_revoke exists');
CREATE TEMP TABLE k AS SELECT * FROM wallet_key_create('to-revoke', ARRAY['spend']);
SELECT is((SELECT name FROM wallet_authenticate((SELECT sha256(convert_to(secret, 'UTF8')) FROM k))), 'to-revoke',
    'the new key authenticates');
CREATE TEMP TABLE r AS SELECT * FROM wallet_key_revoke('to-revoke');
SELECT is((SELECT revoked_at FROM r), now(), 'revoked now');
SELECT is_empty($$SELECT * FROM wallet_authenticate((SELECT sha256(convert_to(secret, 'UTF8')) FROM k))$$,
    'a revoked key authenticates no more');
SELECT is((SELECT revoked_at FROM wallet_key_revoke('to-revoke')), (SELECT revoked_at FROM r),
    'revoking again keeps the first revocation time');
SELECT throws_ok($$SELECT * FROM wallet_key_revoke('nobody')$$, 'WL006',
    'invalid argument name: no API key is named nobody', 'an unknown name is WL006');

SELECT * FROM finish();
ROLLBACK;
