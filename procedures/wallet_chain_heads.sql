-- wallet_chain_heads: the head of every player wallet's hash chain: its newest entry and that entry's hash.
-- Kept outside the database (wallet-service verify --save-anchor), they let wallet_verify_anchor catch
-- what wallet_verify cannot: a rewrite that recomputed every later hash, or removed newest entries.
-- Arguments: none.
-- Returns: rows (wallet_id, user_id, asset_code, entry_id, entry_hash as hex), by wallet id.
-- Raises: nothing.
-- Example: SELECT * FROM wallet_chain_heads();
CREATE OR REPLACE FUNCTION wallet_chain_heads()
RETURNS TABLE (wallet_id bigint, user_id text, asset_code text, entry_id bigint, entry_hash text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    RETURN QUERY
        SELECT w.id, w.user_id::text, w.asset_code, h.id, encode(h.entry_hash, 'hex')
          FROM wallets w
          CROSS JOIN LATERAL (SELECT e.id, e.entry_hash FROM ledger_entries e
                               WHERE e.wallet_id = w.id ORDER BY e.id DESC LIMIT 1) h
         WHERE w.kind = 'PLAYER'
         ORDER BY w.id;
END;
$$;
