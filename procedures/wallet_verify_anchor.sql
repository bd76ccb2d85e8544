-- wallet_verify_anchor: check chain heads kept outside the database against the ledger: each must still be
-- an entry of its wallet with the same hash (history is append-only, so later postings never change it).
-- Arguments: p_heads (a JSON array of {wallet_id, entry_id, entry_hash (hex)}, as wallet_chain_heads gave).
-- Returns: one row per head that no longer holds (invariant 'anchor_mismatch', subject the wallet id,
--   detail); no rows when every anchored head is still there, unchanged.
-- Raises: WL006 invalid argument (p_heads is not such an array).
-- Example: SELECT * FROM wallet_verify_anchor('[{"wallet_id": 10, "entry_id": 7, "entry_hash": "ab..."}]');
CREATE OR REPLACE FUNCTION wallet_verify_anchor(p_heads jsonb)
RETURNS TABLE (invariant text, subject text, detail text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    IF jsonb_typeof(p_heads) IS DISTINCT FROM 'array' OR EXISTS (
        SELECT 1 FROM jsonb_array_elements(p_heads) h
         WHERE jsonb_typeof(h -> 'wallet_id') IS DISTINCT FROM 'number'
            OR jsonb_typeof(h -> 'entry_id') IS DISTINCT FROM 'number'
            OR jsonb_typeof(h -> 'entry_hash') IS DISTINCT FROM 'string') THEN
        PERFORM _wallet_invalid_argument('heads', 'must be a JSON array of {wallet_id, entry_id, entry_hash}');
    END IF;
    RETURN QUERY
        SELECT 'anchor_mismatch', a.wallet_id::text,
               CASE WHEN e.id IS NULL
                    THEN format('anchored entry %s of wallet %s is gone', a.entry_id, a.wallet_id)
                    ELSE format('anchored entry %s of wallet %s had hash %s, now %s',
                                a.entry_id, a.wallet_id, a.entry_hash, coalesce(encode(e.entry_hash, 'hex'), 'none'))
               END
          FROM jsonb_to_recordset(p_heads) AS a (wallet_id bigint, entry_id bigint, entry_hash text)
          LEFT JOIN ledger_entries e ON e.id = a.entry_id AND e.wallet_id = a.wallet_id
         WHERE e.entry_hash IS DISTINCT FROM decode(a.entry_hash, 'hex')
         ORDER BY a.wallet_id;
END;
$$;
