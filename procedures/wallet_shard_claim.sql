-- wallet_shard_claim: the key directory's half of a posting through the PL/Proxy database: claim each
-- reference id for its player unless it is claimed already, and say whose each one is. The proxy calls it on
-- the shard of each key's partition (PL/Proxy SPLIT: RUN ON hashtext(reference_id)) before it posts on the
-- player's shard. Keys are inserted in sorted order (two concurrent calls never wait on each other in a
-- cycle); of two claims of one key in one call the earlier in the arrays wins. A key that is no valid
-- reference id (NULL, empty, too long, unprintable) is not claimed: its owner is NULL and the posting itself
-- refuses it. Autocommitted by the proxy, so a crash after it and before the posting leaves the key claimed
-- for its player: the retry with the same key finds it so and posts.
-- Arguments: p_reference_ids, p_user_ids (arrays of the same length).
-- Returns: (reference_id, user_id) for each valid key: the player it belongs to now.
-- Raises: WL006 when the arrays differ in length.
CREATE OR REPLACE FUNCTION wallet_shard_claim(p_reference_ids text[], p_user_ids text[])
RETURNS TABLE (reference_id text, user_id text)
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    IF cardinality(p_reference_ids) IS DISTINCT FROM cardinality(p_user_ids) THEN
        PERFORM _wallet_invalid_argument('user_ids', 'must have one player per reference id');
    END IF;
    INSERT INTO reference_directory AS d (reference_id, user_id)
    SELECT k.reference_id, k.user_id
      FROM unnest(p_reference_ids, p_user_ids) WITH ORDINALITY AS k (reference_id, user_id, n)
     WHERE length(k.reference_id) BETWEEN 1 AND _wallet_max_id_length() AND _wallet_printable(k.reference_id)
       AND length(k.user_id) BETWEEN 1 AND _wallet_max_id_length() AND _wallet_printable(k.user_id)
     ORDER BY k.reference_id, k.n
    ON CONFLICT ON CONSTRAINT reference_directory_pkey DO NOTHING;
    RETURN QUERY
        SELECT d.reference_id::text, d.user_id::text
          FROM reference_directory d
         WHERE d.reference_id = ANY (p_reference_ids);
END;
$$;
