-- pgbench: one wallet_post_batch call of :size operations, top-ups (10) and spends (1) alternating, with unique
-- reference ids (client, a random number, the operation's position). Players: random pre-funded ones from the
-- client's own stripe of the :players when :stripes is the number of clients (no two clients' batches share a
-- wallet, so they never wait for each other's locks), from all of them when :stripes is 1.
-- An operation refused inside the batch turns into an error of the statement (a cast of the refusal's text),
-- so pgbench counts it and the report quotes it: every operation of the run must post.
\set r random(1, 9000000000000000000)
SELECT CASE WHEN count(sqlstate) = 0 THEN count(*)
            ELSE ('batch operation refused: ' || min(sqlstate || ' ' || message))::int END
  FROM wallet_post_batch((
       SELECT jsonb_agg(jsonb_build_object(
                  'operation', CASE WHEN i % 2 = 1 THEN 'topup' ELSE 'spend' END,
                  'user_id', 'bench_' || (1 + :client_id::int % :stripes::int
                                          + :stripes::int * floor(random() * (:players::int / :stripes::int))::int)::text,
                  'asset_code', 'GOLD_COINS',
                  'amount', CASE WHEN i % 2 = 1 THEN 10 ELSE 1 END,
                  'reference_id', 'sql-b-' || :client_id::text || '-' || :r::text || '-' || i::text)
              || CASE WHEN i % 2 = 1 THEN '{"payment_method": "bench"}'::jsonb
                      ELSE '{"item_id": "bench_item"}'::jsonb END
              ORDER BY i)
         FROM generate_series(1, :size) i));
