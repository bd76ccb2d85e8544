-- pgbench: the first history page (50 entries, newest first) of a random player.
\set p random(1, :players)
SELECT * FROM wallet_history('bench_' || :p::text, 'GOLD_COINS', 50);
