-- pgbench: one spend of a random pre-funded player (player -> REVENUE), a unique reference id each time.
\set p random(1, :players)
\set r random(1, 9000000000000000000)
SELECT transaction_id, balance FROM wallet_spend('bench_' || :p::text, 'GOLD_COINS', 1, 'sql-s-' || :client_id::text || '-' || :r::text, 'bench_item');
