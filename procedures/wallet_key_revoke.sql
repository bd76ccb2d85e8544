-- wallet_key_revoke: revoke an API key; the service refuses it within seconds (its cache lives 2 s).
-- Revoking a revoked key changes nothing. (For admins: wallet_owner; not granted to wallet_app.)
-- Arguments: p_name.
-- Returns: one row (name, revoked_at): when it was revoked, now or before.
-- Raises: WL006 invalid argument (no API key has this name).
-- Example: SELECT * FROM wallet_key_revoke('game-backend');
CREATE OR REPLACE FUNCTION wallet_key_revoke(p_name text)
RETURNS TABLE (name text, revoked_at timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_key api_keys;
BEGIN
    UPDATE api_keys k SET revoked_at = coalesce(k.revoked_at, now()) WHERE k.name = p_name RETURNING k.* INTO v_key;
    IF NOT FOUND THEN
        PERFORM _wallet_invalid_argument('name', format('no API key is named %s', coalesce(p_name, 'null')));
    END IF;
    RETURN QUERY SELECT v_key.name, v_key.revoked_at;
END;
$$;
