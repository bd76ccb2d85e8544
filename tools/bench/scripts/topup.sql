-- pgbench: one top-up of a random pre-funded player (TREASURY -> player), a unique reference id each time.
\set p random(1, :players)
\set r random(1, 9000000000000000000)
SELECT transaction_id, balance FROM wallet_topup('bench_' || :p::text, 'GOLD_COINS', 10, 'sql-t-' || :client_id::text || '-' || :r::text, 'bench');
