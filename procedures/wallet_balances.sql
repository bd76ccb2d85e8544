-- wallet_balances: a player's balances, one row per asset held (in the order the wallets were opened).
-- Arguments: p_user_id, p_asset_code (optional: exactly one row, balance 0 and last_updated NULL if the
--   player never held that asset).
-- Returns: rows (asset_code, asset_name, balance, last_updated).
-- Raises: WL002 player has no wallet at all, WL003 asset not found, WL006 invalid argument.
-- Example: SELECT * FROM wallet_balances('user_alice');
CREATE OR REPLACE FUNCTION wallet_balances(p_user_id text, p_asset_code text DEFAULT NULL)
RETURNS TABLE (asset_code text, asset_name text, balance bigint, last_updated timestamptz)
LANGUAGE plpgsql STABLE
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM _wallet_check_id('user_id', p_user_id);
    PERFORM _wallet_require_asset(p_asset_code);
    PERFORM _wallet_require_player(p_user_id);
    RETURN QUERY
        SELECT a.code, a.name, coalesce(w.balance, 0), w.updated_at
          FROM assets a
          LEFT JOIN wallets w ON w.asset_code = a.code AND w.user_id = p_user_id
         WHERE CASE WHEN p_asset_code IS NULL THEN w.id IS NOT NULL ELSE a.code = p_asset_code END
         ORDER BY w.id NULLS LAST;
END;
$$;
