-- wallet_events: the events after p_after (all players', or one player's), oldest first: one per committed
-- transaction, numbered 1, 2, 3... without gaps (wallet_events_sequence); a reader that keeps the last id it
-- got and asks again after it receives every later event exactly once, in order, even when transactions
-- commit out of the order they started in.
-- Arguments: p_after (0 .. the newest event id: the last id the reader has; default 0, from the first event),
--   p_user_id (only this player's events; NULL: everyone's; a player with no transaction, yet, has none: not an
--   error, so a reader may follow a player before their first top-up), p_limit (1 .. _wallet_max_page();
--   NULL, the default: _wallet_max_page()).
-- Returns: rows (event_id, transaction_id, reference_id, type, user_id, legs, created_at) ordered by event_id;
--   legs is a JSON array, in asset order, of the player's entries: [{asset_code, amount, balance_after}] with
--   amount signed as the player sees it (a credit > 0, a debit < 0) and the player's balance right after.
--   Fewer rows than the limit: the reader is caught up.
-- Raises: WL006 invalid argument (last_event_id: p_after negative or past the newest event, e.g. a reader
--   pointed at a database restored from an older backup, which would silently skip events; user_id; limit).
-- Writes: numbers what is waiting first (wallet_events_sequence), so a reader never waits for the hub.
-- Example: SELECT * FROM wallet_events(0, 'user_alice', 10);
CREATE OR REPLACE FUNCTION wallet_events(p_after bigint DEFAULT 0, p_user_id text DEFAULT NULL,
                                         p_limit integer DEFAULT NULL)
RETURNS TABLE (event_id bigint, transaction_id uuid, reference_id text, type transaction_type, user_id text,
               legs jsonb, created_at timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_newest bigint;
    v_limit integer := _wallet_check_events_call(p_after, p_user_id, p_limit);
BEGIN

    PERFORM wallet_events_sequence();
    -- a new statement, a new snapshot: what this or any other sequencer committed (always a prefix 1..n)
    SELECT coalesce(max(e.id), 0) INTO v_newest FROM events e;
    IF p_after > v_newest THEN
        PERFORM _wallet_invalid_argument('last_event_id',
            format('is past the newest event (%s): it is no event id of this ledger', v_newest));
    END IF;

    IF p_user_id IS NULL THEN
        RETURN QUERY
            SELECT e.id, t.id, t.reference_id::text, t.type, t.user_id::text, _wallet_event_legs(t.id), t.created_at
              FROM events e JOIN transactions t ON t.id = e.transaction_id
             WHERE e.id > p_after
             ORDER BY e.id
             LIMIT v_limit;
    ELSE
        RETURN QUERY
            SELECT e.id, t.id, t.reference_id::text, t.type, t.user_id::text, _wallet_event_legs(t.id), t.created_at
              FROM events e JOIN transactions t ON t.id = e.transaction_id
             WHERE e.user_id = p_user_id AND e.id > p_after
             ORDER BY e.id
             LIMIT v_limit;
    END IF;
END;
$$;
