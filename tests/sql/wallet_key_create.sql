-- wallet_key_create: a named key with scopes; the secret returned once, only its SHA-256 stored.
BEGIN;
SELECT plan(13);

SELECT has_function('wallet_key_create', ARRAY['text', 'text[]'], 'wallet_key_create exists');

CREATE TEMP TABLE created AS SELECT * FROM wallet_key_create('game-backend', ARRAY['spend', 'read', 'spend']);
SELECT is((SELECT count(*) FROM created)::int, 1, 'one row');
SELECT is((SELECT name FROM created), 'game-backend', 'the name');
SELECT is((SELECT scopes FROM created), ARRAY['read', 'spend'], 'the scopes, each once, in scope order');
SELECT matches((SELECT secret FROM created), '^wsk_[0-9a-f]{64}$', 'the secret: wsk_ and 64 hex digits');
SELECT is((SELECT key_hash FROM api_keys WHERE name = 'game-backend'),
          (SELECT sha256(convert_to(secret, 'UTF8')) FROM created), 'the SHA-256 of the secret is stored');
SELECT is_empty($$SELECT 1 FROM api_keys k, created c WHERE position(convert_to(c.secret, 'UTF8') IN k.key_hash) > 0
                   OR k.name = c.secret$$, 'the secret itself is stored nowhere');
SELECT isnt((SELECT secret FROM wallet_key_create('second', ARRAY['read'])), (SELECT secret FROM created),
    'each key gets its own secret');

SELECT throws_ok($$SELECT * FROM wallet_key_create('game-backend', ARRAY['read'])$$, 'WL006',
    'invalid argument name: an API key named game-backend already exists', 'a name is taken for ever');
SELECT throws_ok($$SELECT * FROM wallet_key_create('bad name', ARRAY['read'])$$, 'WL006',
    'invalid argument name: must be 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit',
    'a name with a space is refused');
SELECT throws_ok($$SELECT * FROM wallet_key_create('k1', ARRAY['read', 'root'])$$, 'WL006',
    'invalid argument scopes: must be among read, topup, bonus, spend, reverse, admin', 'an unknown scope is refused');
SELECT throws_ok($$SELECT * FROM wallet_key_create('k2', ARRAY[]::text[])$$, 'WL006',
    'invalid argument scopes: must name at least one scope', 'a key needs a scope');
SELECT is((SELECT count(*) FROM api_keys)::int, 2, 'refused keys wrote nothing');

SELECT * FROM finish();
ROLLBACK;
