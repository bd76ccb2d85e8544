-- wallet_shard_batch: this shard's part of a wallet_post_batch through the PL/Proxy database, which splits a
-- batch by player (PL/Proxy SPLIT: RUN ON hashtext(user_id)): the operations of the players of one partition,
-- in batch order, applied by wallet_post_batch, each result row carrying the operation's ordinal in the whole
-- batch. Errors of the whole call come back as data (as wallet_shard_call's).
-- Arguments: p_user_ids (what the proxy routed by: one per operation), p_operations (the operations),
--   p_ordinals (each one's position in the whole batch), p_actor.
-- Returns: one row: result (JSON array of wallet_post_batch's rows, ordinal replaced) or the error's fields.
CREATE OR REPLACE FUNCTION wallet_shard_batch(p_user_ids text[], p_operations jsonb[], p_ordinals integer[],
                                              p_actor text DEFAULT NULL)
RETURNS TABLE (result jsonb, sqlstate text, message text, detail text, field text)
LANGUAGE plpgsql AS $$
DECLARE
    v_result jsonb;
    v_state text;
    v_message text;
    v_detail text;
    v_field text;
BEGIN
    IF cardinality(p_user_ids) IS DISTINCT FROM cardinality(p_operations)
       OR cardinality(p_ordinals) IS DISTINCT FROM cardinality(p_operations) THEN
        RAISE EXCEPTION 'invalid argument operations: must come with one player and one ordinal each'
            USING ERRCODE = 'WL006', COLUMN = 'operations',
                  DETAIL = json_build_object('field', 'operations',
                                             'message', 'must come with one player and one ordinal each')::text;
    END IF;
    SELECT coalesce(jsonb_agg(to_jsonb(r) || jsonb_build_object('ordinal', p_ordinals[r.ordinal])
                              ORDER BY r.ordinal), '[]')
      INTO v_result
      FROM wallet_post_batch(to_jsonb(p_operations), p_actor) r;
    RETURN QUERY SELECT v_result, NULL::text, NULL::text, NULL::text, NULL::text;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_field = COLUMN_NAME;
    RETURN QUERY SELECT NULL::jsonb, v_state, v_message, nullif(v_detail, ''), nullif(v_field, '');
END;
$$;
