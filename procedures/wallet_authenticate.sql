-- wallet_authenticate: the API key a secret belongs to, if it is active (for the HTTP service, which
-- caches the answer for at most a few seconds).
-- Arguments: p_key_hash (SHA-256 of the secret as the client sent it; the secret itself never reaches
--   the database).
-- Returns: one row (name, scopes) for an active key; no row for an unknown or revoked one.
-- Raises: nothing.
-- Example: SELECT * FROM wallet_authenticate(sha256('wsk_...'::bytea));
CREATE OR REPLACE FUNCTION wallet_authenticate(p_key_hash bytea)
RETURNS TABLE (name text, scopes text[])
LANGUAGE plpgsql STABLE
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT k.name, k.scopes::text[] FROM api_keys k WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL;
END;
$$;
