-- _wallet_seed_rows: the demo players' opening balances that wallet_seed posts (and wallet_shard_seed on a
-- shard): n (the order), user_id, asset_code, amount, reference_id, display_name.
CREATE OR REPLACE FUNCTION _wallet_seed_rows()
RETURNS TABLE (n integer, user_id text, asset_code text, amount bigint, reference_id text, display_name text)
LANGUAGE sql IMMUTABLE AS $$
    VALUES (1, 'user_alice', 'GOLD_COINS', 100000::bigint, 'init_alice_gold_001', 'Alice'),
           (2, 'user_alice', 'DIAMONDS', 500, 'init_alice_diamonds_001', 'Alice'),
           (3, 'user_bob', 'GOLD_COINS', 50000, 'init_bob_gold_001', 'Bob'),
           (4, 'user_charlie', 'GOLD_COINS', 25000, 'init_charlie_gold_001', 'Charlie');
$$;
