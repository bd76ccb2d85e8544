-- wallet_expire_holds: optional maintenance: mark every hold past expires_at EXPIRED. Nothing depends on it (a
-- hold stops counting at expires_at by itself); it only keeps the index of active holds small where many
-- holds are left to expire. Holds locked by a capture or void in progress are skipped.
-- Arguments: none. Returns: how many holds were marked.
-- Example: SELECT wallet_expire_holds();
CREATE OR REPLACE FUNCTION wallet_expire_holds()
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    UPDATE holds h SET status = 'EXPIRED', closed_at = h.expires_at
     WHERE h.status = 'HELD'
       AND h.id IN (SELECT x.id FROM holds x
                     WHERE x.status = 'HELD' AND x.expires_at <= clock_timestamp()
                     ORDER BY x.id
                       FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
