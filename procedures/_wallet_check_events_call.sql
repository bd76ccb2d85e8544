-- _wallet_check_events_call: the argument checks of wallet_events (all but "past the newest event", which needs
-- the events): p_after a non-negative integer, p_user_id NULL or a valid id, p_limit NULL or 1 ..
-- _wallet_max_page(). Also the PL/Proxy database's wallet_events (shards init copies this function there).
-- Arguments: p_after, p_user_id, p_limit. Returns: the limit to use (p_limit, or _wallet_max_page() for NULL).
-- Raises: WL006 naming last_event_id, user_id or limit.
CREATE OR REPLACE FUNCTION _wallet_check_events_call(p_after bigint, p_user_id text, p_limit integer)
RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    IF p_after IS NULL OR p_after < 0 THEN
        PERFORM _wallet_invalid_argument('last_event_id', 'must be a non-negative integer');
    END IF;
    PERFORM _wallet_check_id('user_id', p_user_id, false);
    IF p_limit NOT BETWEEN 1 AND _wallet_max_page() THEN
        PERFORM _wallet_invalid_argument('limit', format('must be an integer from 1 to %s', _wallet_max_page()));
    END IF;
    RETURN coalesce(p_limit, _wallet_max_page());
END;
$$;
