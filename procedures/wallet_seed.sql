-- wallet_seed: post the demo players' opening balances (TREASURY -> player, type INITIAL_BALANCE).
-- Idempotent: each posting has a fixed reference id, so a second run replays and writes nothing.
-- The assets and system wallets themselves come with the schema (migration 0002). On a shard only the players
-- at home there (_wallet_home): the PL/Proxy database's wallet_seed runs this on every shard.
-- Arguments: none.
-- Returns: one wallet_posting row per opening balance (replayed = true when it was already there).
-- Raises: WL004 if a seed reference id was used for something else.
-- Example: SELECT * FROM wallet_seed();
CREATE OR REPLACE FUNCTION wallet_seed()
RETURNS SETOF wallet_posting
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM _wallet_seed_rows() s WHERE _wallet_home(s.user_id) ORDER BY s.n LOOP
        RETURN NEXT _wallet_post('INITIAL_BALANCE', r.user_id, r.asset_code, r.amount, r.reference_id,
                                 p_display_name => r.display_name);
    END LOOP;
END;
$$;
