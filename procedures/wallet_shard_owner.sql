-- wallet_shard_owner: the key directory's answer to "whose is this reference id": the player it was claimed
-- for (wallet_shard_claim), or NULL when nobody claimed it. Called by the PL/Proxy database on the shard of
-- the key's partition before it routes a lookup, capture, void or reversal to the player's shard.
-- Arguments: p_reference_id. Returns: the player's user_id, or NULL. Raises: nothing.
CREATE OR REPLACE FUNCTION wallet_shard_owner(p_reference_id text)
RETURNS text
LANGUAGE sql STABLE
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT d.user_id::text FROM reference_directory d WHERE d.reference_id = p_reference_id;
$$;
