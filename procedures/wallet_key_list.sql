-- wallet_key_list: every API key, revoked ones too (never the secrets, which are not stored).
-- (For admins: wallet_owner; not granted to wallet_app.)
-- Arguments: none.
-- Returns: rows (name, scopes, created_at, created_by, revoked_at), oldest first; revoked_at NULL while active.
-- Raises: nothing.
-- Example: SELECT * FROM wallet_key_list();
CREATE OR REPLACE FUNCTION wallet_key_list()
RETURNS TABLE (name text, scopes text[], created_at timestamptz, created_by text, revoked_at timestamptz)
LANGUAGE plpgsql STABLE
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT k.name, k.scopes::text[], k.created_at, k.created_by, k.revoked_at FROM api_keys k ORDER BY k.id;
END;
$$;
