-- _wallet_hold_not_found: raise WL011 for a reference id no hold has.
-- Arguments: p_reference_id. Raises: WL011 always; DETAIL {reference_id}.
CREATE OR REPLACE FUNCTION _wallet_hold_not_found(p_reference_id text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'hold with reference id % not found', p_reference_id
        USING ERRCODE = 'WL011', DETAIL = json_build_object('reference_id', p_reference_id)::text;
END;
$$;
