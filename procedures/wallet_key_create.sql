-- wallet_key_create: create an API key for the HTTP service. Only a hash of the secret is stored; the
-- secret is returned this once. (For admins: wallet_owner; not granted to wallet_app.)
-- Arguments: p_name (1..64 of A-Z a-z 0-9 . _ -, starting with a letter or digit; unique for ever: a
--   revoked key keeps its name), p_scopes (one or more of read, topup, bonus, spend, reverse, admin).
-- Returns: one row (name, scopes, secret, created_at); secret is 'wsk_' and 64 hex digits (244 random bits).
-- Raises: WL006 invalid argument (bad or taken name, no scope, unknown scope).
-- Example: SELECT * FROM wallet_key_create('game-backend', '{read,spend}');
CREATE OR REPLACE FUNCTION wallet_key_create(p_name text, p_scopes text[])
RETURNS TABLE (name text, scopes text[], secret text, created_at timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_secret text;
    v_scopes wallet_scope[];
    v_key api_keys;
BEGIN
    IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' THEN
        PERFORM _wallet_invalid_argument('name',
            'must be 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit');
    END IF;
    IF p_scopes IS NULL OR cardinality(p_scopes) = 0 THEN
        PERFORM _wallet_invalid_argument('scopes', 'must name at least one scope');
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_scopes) s WHERE s IS NULL OR s NOT IN (SELECT unnest(enum_range(NULL::wallet_scope))::text)) THEN
        PERFORM _wallet_invalid_argument('scopes',
            format('must be among %s', array_to_string(enum_range(NULL::wallet_scope), ', ')));
    END IF;
    v_scopes := ARRAY(SELECT DISTINCT s::wallet_scope FROM unnest(p_scopes) s ORDER BY 1);
    -- two random UUIDs (gen_random_uuid draws from the server's strong random source): 244 random bits
    v_secret := 'wsk_' || replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
    INSERT INTO api_keys AS k (name, key_hash, scopes)
    VALUES (p_name, sha256(convert_to(v_secret, 'UTF8')), v_scopes)
    ON CONFLICT ON CONSTRAINT api_keys_name_key DO NOTHING
    RETURNING k.* INTO v_key;
    IF NOT FOUND THEN
        PERFORM _wallet_invalid_argument('name', format('an API key named %s already exists', p_name));
    END IF;
    RETURN QUERY SELECT v_key.name, v_key.scopes::text[], v_secret, v_key.created_at;
END;
$$;
