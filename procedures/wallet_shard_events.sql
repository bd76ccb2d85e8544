-- wallet_shard_events: for the PL/Proxy database's event sequencer (which runs it on every shard): this
-- shard's events after the position the proxy has reached on it, oldest first (wallet_events, which numbers
-- what is waiting first), each tagged with the shard's name.
-- Arguments: p_after (JSON object: shard name -> the last event id of that shard the proxy has; a shard
--   missing from it: 0), p_limit (1 .. _wallet_max_page()).
-- Returns: (shard, event_id, event) per event, event being the wallet_events row as a JSON object.
-- Raises: WL006 as wallet_events does (e.g. a position past this shard's newest event: a shard restored from
--   an older backup would otherwise lose events silently); WL006 when the database is no shard.
CREATE OR REPLACE FUNCTION wallet_shard_events(p_after jsonb, p_limit integer)
RETURNS TABLE (shard text, event_id bigint, event jsonb)
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_name text := (SELECT s.name FROM shard_identity s);
BEGIN
    IF v_name IS NULL THEN
        PERFORM _wallet_invalid_argument('shard', 'this database is no shard (wallet-service shards init)');
    END IF;
    RETURN QUERY
        SELECT v_name, e.event_id, to_jsonb(e)
          FROM wallet_events(p_after => coalesce((p_after ->> v_name)::bigint, 0), p_limit => p_limit) e
         ORDER BY e.event_id;
END;
$$;
