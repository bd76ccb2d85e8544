-- wallet_shard_verify_anchor: wallet_verify_anchor() of this shard for the PL/Proxy database (which runs it on
-- every shard with all the heads it was given): only the heads of players at home here are checked (wallet
-- ids are per shard), each violation's subject prefixed with the shard's name.
-- Arguments: p_heads (as wallet_verify_anchor; each head's user_id says whose it is). Returns: (invariant,
-- subject, detail) per anchored head that no longer holds. Raises: WL006 as wallet_verify_anchor.
CREATE OR REPLACE FUNCTION wallet_shard_verify_anchor(p_heads jsonb)
RETURNS TABLE (invariant text, subject text, detail text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_name text := coalesce((SELECT s.name FROM shard_identity s), current_database());
    v_heads jsonb := p_heads;
BEGIN
    IF jsonb_typeof(p_heads) = 'array' THEN
        v_heads := coalesce((SELECT jsonb_agg(h ORDER BY n) FROM jsonb_array_elements(p_heads) WITH ORDINALITY AS x (h, n)
                              WHERE jsonb_typeof(h -> 'user_id') IS DISTINCT FROM 'string'
                                 OR _wallet_home(h ->> 'user_id')), '[]');
    END IF;
    RETURN QUERY SELECT a.invariant, v_name || ':' || a.subject, a.detail FROM wallet_verify_anchor(v_heads) a;
END;
$$;
