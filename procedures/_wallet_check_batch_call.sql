-- _wallet_check_batch_call: the checks of a whole wallet_post_batch call (not of its operations): a JSON array
-- of 1 .. _wallet_max_batch() operations, an actor that is NULL or a valid id. Also the PL/Proxy database's
-- wallet_post_batch (shards init copies this function there), so both refuse a call alike.
-- Arguments: p_operations, p_actor. Returns: the number of operations. Raises: WL006.
CREATE OR REPLACE FUNCTION _wallet_check_batch_call(p_operations jsonb, p_actor text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    IF jsonb_typeof(p_operations) IS DISTINCT FROM 'array' THEN
        PERFORM _wallet_invalid_argument('operations', 'must be a JSON array of operations');
    END IF;
    v_count := jsonb_array_length(p_operations);
    IF v_count NOT BETWEEN 1 AND _wallet_max_batch() THEN
        PERFORM _wallet_invalid_argument('operations',
            format('must hold 1 to %s operations, not %s', _wallet_max_batch(), v_count));
    END IF;
    PERFORM _wallet_check_id('actor', p_actor, false);
    RETURN v_count;
END;
$$;
