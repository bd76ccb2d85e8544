-- wallet_balances: a player's balances, one row per asset held (in the order the wallets were opened), now or
-- as they stood at an instant.
-- Arguments: p_user_id, p_asset_code (optional: exactly one row, balance 0 and last_updated NULL if the
--   player never held that asset, or had no entry in it by p_at), p_at (optional: the instant; each
--   balance is the balance_after of the wallet's newest entry at or before it, one index probe per wallet;
--   wallets without an entry by then are left out unless p_asset_code names them).
-- Returns: rows (asset_code, asset_name, balance, held, available, last_updated): held is what active holds
--   reserve and available = balance - held (what spends, purchases and new holds may use); with p_at, held
--   and available are NULL and last_updated is the time of the entry the balance comes from.
-- Raises: WL002 player has no wallet at all, WL003 asset not found, WL006 invalid argument.
-- Example: SELECT * FROM wallet_balances('user_alice');
--          SELECT * FROM wallet_balances('user_alice', p_at => now() - interval '1 day');
CREATE OR REPLACE FUNCTION wallet_balances(p_user_id text, p_asset_code text DEFAULT NULL,
                                           p_at timestamptz DEFAULT NULL)
RETURNS TABLE (asset_code text, asset_name text, balance bigint, held bigint, available bigint,
               last_updated timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    PERFORM _wallet_check_id('user_id', p_user_id);
    PERFORM _wallet_require_asset(p_asset_code);
    PERFORM _wallet_require_player(p_user_id);
    IF p_at IS NULL THEN
        RETURN QUERY
            SELECT a.code, a.name, coalesce(w.balance, 0)::bigint, coalesce(h.held, 0),
                   coalesce(w.balance, 0) - coalesce(h.held, 0), w.updated_at
              FROM assets a
              LEFT JOIN wallets w ON w.asset_code = a.code AND w.user_id = p_user_id
              LEFT JOIN LATERAL (SELECT _wallet_held(w.id, w.holds_until, v_now) AS held) h ON true
             WHERE CASE WHEN p_asset_code IS NULL THEN w.id IS NOT NULL ELSE a.code = p_asset_code END
             ORDER BY w.id NULLS LAST;
    ELSE
        RETURN QUERY
            SELECT a.code, a.name, coalesce(e.balance_after, 0)::bigint, NULL::bigint, NULL::bigint, e.created_at
              FROM assets a
              LEFT JOIN wallets w ON w.asset_code = a.code AND w.user_id = p_user_id
              LEFT JOIN LATERAL (SELECT x.balance_after, x.created_at FROM ledger_entries x
                                  WHERE x.wallet_id = w.id AND x.created_at <= p_at AND x.balance_after IS NOT NULL
                                  ORDER BY x.created_at DESC, x.id DESC
                                  LIMIT 1) e ON true
             WHERE CASE WHEN p_asset_code IS NULL THEN e.created_at IS NOT NULL ELSE a.code = p_asset_code END
             ORDER BY w.id NULLS LAST;
    END IF;
END;
$$;
