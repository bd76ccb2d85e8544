-- _wallet_check_inbox_delete: trigger function: an event inbox row is deleted only once its transaction is
-- numbered (in events), as wallet_events_sequence does; deleting one before would lose its event for good.
-- Fires: AFTER DELETE (statement, transition table gone) on event_inbox.
-- Returns: NULL. Raises: WL008.
CREATE OR REPLACE FUNCTION _wallet_check_inbox_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_lost uuid;
BEGIN
    SELECT g.transaction_id INTO v_lost
      FROM gone g
     WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.transaction_id = g.transaction_id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'event inbox rows are deleted only once numbered: transaction % has no event', v_lost
            USING ERRCODE = 'WL008', HINT = 'wallet_events_sequence() numbers committed inbox rows';
    END IF;
    RETURN NULL;
END;
$$;
