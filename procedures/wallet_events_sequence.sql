-- wallet_events_sequence: number the committed transactions waiting in the event inbox: move up to p_max of
-- them, oldest inbox row first, into events with the next ids (max(events.id) + 1, + 2, ...), then NOTIFY
-- wallet_events (payload: the newest event id) so that listeners read them. wallet_events() calls it before it
-- reads; the service's event hub calls it every few tenths of a second while anyone streams.
-- Arguments: p_max (1 .. 10000, default 1000): how many to move at most.
-- Returns: how many it moved; 0 when the inbox holds nothing committed, or when another sequencer is at work
--   (that one moves them), or when called in a read-only or non-READ COMMITTED transaction (see below).
-- Raises: WL006 invalid argument.
-- Why it is exact: one sequencer at a time (a transaction-level advisory lock, released only after its commit
--   is visible), and each statement after the lock reads a snapshot taken after the previous sequencer's
--   commit. An inbox row of a transaction still in flight is invisible here, so it is numbered only once
--   committed, above every id handed out already: the events anyone sees are always 1..n without a gap, and a
--   reader resuming after the last id it saw misses nothing. Postings never NOTIFY (a NOTIFY serializes
--   commits database-wide); only this, which is serialized anyway, does.
-- Not here: in a REPEATABLE READ or SERIALIZABLE transaction the snapshot predates the lock (it would fail on
--   an id the previous sequencer took), and a read-only one (a standby) cannot write: it leaves the work to
--   others and returns 0. Called inside a longer transaction it holds the lock until that one ends, and no
--   event is numbered meanwhile: call it on its own (the service runs every statement in autocommit).
-- Example: SELECT wallet_events_sequence();
CREATE OR REPLACE FUNCTION wallet_events_sequence(p_max integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_last bigint;
    v_moved integer;
    v_deleted integer;
BEGIN
    IF p_max IS NULL OR p_max NOT BETWEEN 1 AND 10000 THEN
        PERFORM _wallet_invalid_argument('max', 'must be an integer from 1 to 10000');
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' OR current_setting('transaction_read_only') = 'on' THEN
        RETURN 0;
    END IF;
    -- (1163284052: 'EVNT', the advisory lock of the sequencer; a separate IF: SQL does not promise to skip the
    -- call when the test above is true) another sequencer is at work: it moves them
    IF NOT pg_try_advisory_xact_lock(1163284052, 0) THEN
        RETURN 0;
    END IF;

    -- from here on, each statement sees every earlier sequencer's commit, and no other sequencer runs
    SELECT coalesce(max(e.id), 0) INTO v_last FROM events e;
    INSERT INTO events (id, transaction_id, user_id)
    SELECT v_last + row_number() OVER (ORDER BY b.seq), b.transaction_id, t.user_id
      FROM (SELECT i.seq, i.transaction_id FROM event_inbox i ORDER BY i.seq LIMIT p_max) b
      JOIN transactions t ON t.id = b.transaction_id;
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    IF v_moved = 0 THEN
        RETURN 0;
    END IF;
    DELETE FROM event_inbox i
     WHERE i.transaction_id IN (SELECT e.transaction_id FROM events e WHERE e.id > v_last);
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    IF v_deleted <> v_moved THEN  -- cannot happen: the rows just read are this transaction's to delete
        RAISE EXCEPTION 'numbered % inbox rows but deleted %', v_moved, v_deleted USING ERRCODE = 'WL008';
    END IF;
    PERFORM pg_notify('wallet_events', (v_last + v_moved)::text);
    RETURN v_moved;
END;
$$;
