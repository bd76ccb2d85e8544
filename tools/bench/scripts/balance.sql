-- pgbench: a random player's balance in one asset.
\set p random(1, :players)
SELECT * FROM wallet_balances('bench_' || :p::text, 'GOLD_COINS');
