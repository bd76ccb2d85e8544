-- wallet_seed: post the demo players' opening balances (TREASURY -> player, type INITIAL_BALANCE).
-- Idempotent: each posting has a fixed reference id, so a second run replays and writes nothing.
-- The assets and system wallets themselves come with the schema (migration 0002). On a shard only the players
-- at home there (_wallet_home): the postings of wallet_shard_seed, which the PL/Proxy database's wallet_seed
-- runs on every shard.
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
    RETURN QUERY SELECT (jsonb_populate_record(NULL::wallet_posting, s.posting)).* FROM wallet_shard_seed() s;
END;
$$;
