-- wallet_grant_role: give a login role the rights of wallet_app or wallet_support, with the session limits
-- that go with them (settings of a granted role do not reach its members, so they are set on the login):
--   wallet_app      statement_timeout 15s, idle_in_transaction_session_timeout 15s: the service never
--                   waits longer (its functions wait for a row lock at most lock_timeout = 2s)
--   wallet_support  idle_in_transaction_session_timeout 60s: a forgotten psql session holding a
--                   transaction open cannot keep locks or snapshots for long
-- Runs with the caller's rights (SECURITY INVOKER): a superuser, or a role with CREATEROLE that may grant
-- these roles. Not granted to wallet_app or wallet_support.
-- Arguments: p_login (an existing login role), p_role ('wallet_app' or 'wallet_support').
-- Returns: nothing. Raises: WL006 invalid argument (unknown login or role).
-- Example: CREATE ROLE wallet_service LOGIN PASSWORD '...'; SELECT wallet_grant_role('wallet_service', 'wallet_app');
CREATE OR REPLACE FUNCTION wallet_grant_role(p_login text, p_role text)
RETURNS void
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
    IF p_role IS NULL OR p_role NOT IN ('wallet_app', 'wallet_support') THEN
        PERFORM _wallet_invalid_argument('role', 'must be wallet_app or wallet_support');
    END IF;
    IF p_login IS NULL OR NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = p_login AND r.rolcanlogin) THEN
        PERFORM _wallet_invalid_argument('login', format('no login role is named %s', coalesce(p_login, 'null')));
    END IF;
    EXECUTE format('GRANT %I TO %I', p_role, p_login);
    IF p_role = 'wallet_app' THEN
        EXECUTE format('ALTER ROLE %I SET statement_timeout = %L', p_login, '15s');
        EXECUTE format('ALTER ROLE %I SET idle_in_transaction_session_timeout = %L', p_login, '15s');
    ELSE
        EXECUTE format('ALTER ROLE %I SET idle_in_transaction_session_timeout = %L', p_login, '60s');
    END IF;
END;
$$;
