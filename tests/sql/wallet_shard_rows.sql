-- wallet_shard_rows: every row of one ledger table as JSON, for the proxy's read-only views; only a table of the
-- public schema (no view, no yoyo table), with the caller's own rights.
BEGIN;
SELECT plan(16);

SELECT has_function('wallet_shard_rows', ARRAY['text'], 'wallet_shard_rows exists');
SELECT lives_ok($$SELECT wallet_topup('user_dora', 'GOLD_COINS', 5, 'rw_1', 'card')$$, 'a posting');

SELECT is((SELECT count(*) FROM wallet_shard_rows('wallets'))::int, (SELECT count(*) FROM wallets)::int,
          'wallets: one row per wallet');
SELECT set_eq($$SELECT * FROM wallet_shard_rows('wallets')$$, $$SELECT to_jsonb(w) FROM wallets w$$,
              'each wallet as one JSON object by column name');
SELECT set_eq($$SELECT * FROM wallet_shard_rows('ledger_entries')$$, $$SELECT to_jsonb(e) FROM ledger_entries e$$,
              'ledger_entries: every entry');
SELECT set_eq($$SELECT * FROM wallet_shard_rows('transactions')$$, $$SELECT to_jsonb(t) FROM transactions t$$,
              'transactions: every transaction');
SELECT is((SELECT count(*) FROM wallet_shard_rows('holds'))::int, 0, 'holds: none, no row');

SELECT throws_ok($$SELECT * FROM wallet_shard_rows('nope')$$, 'WL006',
    'invalid argument table: must be the name of a ledger table', 'an unknown table: WL006');
SELECT is(pg_temp.error_of($$SELECT * FROM wallet_shard_rows('nope')$$) - 'message',
          '{"sqlstate": "WL006", "column": "table",
            "detail": "{\"field\" : \"table\", \"message\" : \"must be the name of a ledger table\"}"}'::jsonb,
          'naming the field table, with a JSON detail');
SELECT throws_ok($$SELECT * FROM wallet_shard_rows('_yoyo_migration')$$, 'WL006',
    'invalid argument table: must be the name of a ledger table', 'a yoyo table: WL006');
SELECT throws_ok($$SELECT * FROM wallet_shard_rows('yoyo_lock')$$, 'WL006',
    'invalid argument table: must be the name of a ledger table', 'yoyo''s lock table: WL006');
SELECT throws_ok($$SELECT * FROM wallet_shard_rows('wallet_system_balances')$$, 'WL006',
    'invalid argument table: must be the name of a ledger table', 'a view: WL006');
SELECT throws_ok($$SELECT * FROM wallet_shard_rows('pg_authid')$$, 'WL006',
    'invalid argument table: must be the name of a ledger table', 'a table of another schema: WL006');

SET LOCAL ROLE wallet_app;
SELECT throws_ok($$SELECT * FROM wallet_shard_rows('wallets')$$, '42501', 'permission denied for table wallets',
    'wallet_app (it may read no table): permission denied');
RESET ROLE;
SET LOCAL ROLE wallet_support;
SELECT lives_ok($$SELECT * FROM wallet_shard_rows('ledger_entries')$$, 'wallet_support (it reads every table) reads the rows');
SELECT throws_ok($$SELECT * FROM wallet_shard_rows('nope')$$, 'WL006',
    'invalid argument table: must be the name of a ledger table', 'and gets WL006 for an unknown table, as anyone does');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
