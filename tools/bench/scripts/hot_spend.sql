-- pgbench: a spend of the one hot player every client writes to.
\set r random(1, 9000000000000000000)
SELECT transaction_id, balance FROM wallet_spend('bench_hot', 'GOLD_COINS', 1, 'sql-hs-' || :client_id::text || '-' || :r::text, 'bench_item');
