-- wallet_seed: post the demo players' opening balances (TREASURY -> player, type INITIAL_BALANCE).
-- Idempotent: each posting has a fixed reference id, so a second run replays and writes nothing.
-- The assets and system wallets themselves come with the schema (migration 0002).
-- Arguments: none.
-- Returns: one wallet_posting row per opening balance (replayed = true when it was already there).
-- Raises: WL004 if a seed reference id was used for something else.
-- Example: SELECT * FROM wallet_seed();
CREATE OR REPLACE FUNCTION wallet_seed()
RETURNS SETOF wallet_posting
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    RETURN NEXT _wallet_post('INITIAL_BALANCE', 'user_alice', 'GOLD_COINS', 100000, 'init_alice_gold_001',
                             p_display_name => 'Alice');
    RETURN NEXT _wallet_post('INITIAL_BALANCE', 'user_alice', 'DIAMONDS', 500, 'init_alice_diamonds_001',
                             p_display_name => 'Alice');
    RETURN NEXT _wallet_post('INITIAL_BALANCE', 'user_bob', 'GOLD_COINS', 50000, 'init_bob_gold_001',
                             p_display_name => 'Bob');
    RETURN NEXT _wallet_post('INITIAL_BALANCE', 'user_charlie', 'GOLD_COINS', 25000, 'init_charlie_gold_001',
                             p_display_name => 'Charlie');
END;
$$;
