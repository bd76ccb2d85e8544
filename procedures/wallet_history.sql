-- wallet_history: a player's transactions in one asset, newest first, with the balance after each.
-- Arguments: p_user_id, p_asset_code, p_limit (1 .. 1000, default 50), p_offset (>= 0, default 0),
--   p_before_entry_id (keyset cursor: only entries older than this entry id; pages stay cheap at any
--   depth, unlike p_offset).
-- Returns: rows (entry_id, transaction_id, type, amount, balance_after, reference_id, created_at,
--   description); amount is the transaction's (positive) amount, type tells its direction.
-- Raises: WL002 player has no wallet at all, WL003 asset not found, WL006 invalid argument.
-- Example: SELECT * FROM wallet_history('user_alice', 'GOLD_COINS', p_limit => 10);
CREATE OR REPLACE FUNCTION wallet_history(
    p_user_id text,
    p_asset_code text,
    p_limit integer DEFAULT 50,
    p_offset integer DEFAULT 0,
    p_before_entry_id bigint DEFAULT NULL)
RETURNS TABLE (entry_id bigint, transaction_id uuid, type transaction_type, amount bigint,
               balance_after bigint, reference_id text, created_at timestamptz, description text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_asset_code IS NULL THEN
        PERFORM _wallet_invalid_argument('asset_code', 'is required');
    END IF;
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 1000 THEN
        PERFORM _wallet_invalid_argument('limit', 'must be an integer from 1 to 1000');
    END IF;
    IF p_offset IS NULL OR p_offset < 0 THEN
        PERFORM _wallet_invalid_argument('offset', 'must be a non-negative integer');
    END IF;
    PERFORM _wallet_require_player(p_user_id, p_asset_code);
    -- walk the (wallet_id, id) index backwards from the cursor; a player with no wallet in this
    -- asset simply has no entries
    RETURN QUERY
        SELECT e.id, t.id, t.type, t.amount, e.balance_after, t.reference_id, t.created_at, t.description
          FROM wallets w
          JOIN ledger_entries e ON e.wallet_id = w.id
          JOIN transactions t ON t.id = e.transaction_id
         WHERE w.user_id = p_user_id AND w.asset_code = p_asset_code
           AND (p_before_entry_id IS NULL OR e.id < p_before_entry_id)
         ORDER BY e.id DESC
         LIMIT p_limit OFFSET p_offset;
END;
$$;
