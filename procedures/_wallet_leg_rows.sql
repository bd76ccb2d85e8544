-- _wallet_leg_rows: what a posted transaction did to its player, asset by asset (for replays).
-- Arguments: p_transaction_id.
-- Returns: rows (asset_code, amount, balance): per player entry, in asset order, the positive amount and the
--   player's balance right after it.
CREATE OR REPLACE FUNCTION _wallet_leg_rows(p_transaction_id uuid)
RETURNS TABLE (asset_code text, amount bigint, balance bigint)
LANGUAGE sql STABLE
AS $$
    SELECT e.asset_code, abs(e.amount), e.balance_after::bigint
      FROM ledger_entries e
     WHERE e.transaction_id = p_transaction_id AND e.balance_after IS NOT NULL
     ORDER BY e.asset_code;
$$;
