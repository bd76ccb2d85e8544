-- wallet_shard_reserved: for the PL/Proxy database, when its key directory says a reference id belongs to
-- another player than the request's: wait for any posting of that key in flight here (the key's advisory
-- lock, _wallet_claim_key's), then return if the key is taken on this shard (a transaction or a hold: the
-- function called next answers WL004 with the same message and detail as one server would), or raise WL004.
-- Arguments: p_reference_id, p_owner (the player the directory names).
-- Returns: nothing. Raises: WL004 when the key is reserved for p_owner but nothing was posted with it (its
--   posting was refused, or its caller never reached this shard): a key is the first player's it was
--   presented for, for good (one server would let another player use a refused key).
CREATE OR REPLACE FUNCTION wallet_shard_reserved(p_reference_id text, p_owner text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1464615748, hashtext(p_reference_id));
    IF EXISTS (SELECT 1 FROM transactions t WHERE t.reference_id = p_reference_id)
       OR EXISTS (SELECT 1 FROM holds h WHERE h.reference_id = p_reference_id) THEN
        RETURN;
    END IF;
    RAISE EXCEPTION 'reference id % is reserved for %', p_reference_id, p_owner
        USING ERRCODE = 'WL004',
              DETAIL = json_build_object('reference_id', p_reference_id, 'user_id', p_owner)::text;
END;
$$;
