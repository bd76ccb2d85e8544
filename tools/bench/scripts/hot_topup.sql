-- pgbench: a top-up of the one hot player every client writes to.
\set r random(1, 9000000000000000000)
SELECT transaction_id, balance FROM wallet_topup('bench_hot', 'GOLD_COINS', 10, 'sql-ht-' || :client_id::text || '-' || :r::text, 'bench');
