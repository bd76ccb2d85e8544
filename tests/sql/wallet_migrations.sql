-- wallet_migrations: the applied migrations, for a service that may read no table.
BEGIN;
SELECT plan(3);

SELECT has_function('wallet_migrations', 'wallet_migrations exists');
SELECT ok((SELECT array_agg(migration_id) FROM wallet_migrations())
          @> ARRAY['0001.schema', '0002.reference-data', '0003.limits', '0004.trust'], 'every migration so far');
SET LOCAL ROLE wallet_app;
SELECT ok((SELECT count(*) FROM wallet_migrations()) >= 4, 'wallet_app may call it');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
