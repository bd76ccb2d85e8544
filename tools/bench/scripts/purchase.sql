-- pgbench: one purchase of a random pre-funded player in two assets (player -> REVENUE in GOLD_COINS and in
-- DIAMONDS, one transaction, four entries), a unique reference id each time. (A space after every ':' inside
-- the JSON: pgbench would read ':1' as a variable.)
\set p random(1, :players)
\set r random(1, 9000000000000000000)
SELECT transaction_id, balance FROM wallet_purchase('bench_' || :p::text, 'sql-p-' || :client_id::text || '-' || :r::text, 'bench_bundle', '[{"asset_code": "GOLD_COINS", "amount": 1}, {"asset_code": "DIAMONDS", "amount": 1}]');
