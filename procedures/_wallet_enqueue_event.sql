-- _wallet_enqueue_event: trigger function: every transaction enters the event inbox in the database
-- transaction that inserts it (wallet_events_sequence numbers it once it is committed).
-- Fires: AFTER INSERT (row) on transactions. Every posting function inserts its transactions row once it holds
--   its wallets' locks, so two postings of one wallet take inbox seqs in their commit order.
-- Returns: NULL. Raises: unique_violation if the transaction is in the inbox already (it cannot be).
-- (migration sql/0007 created it with this same body, so that it held from that migration's commit on)
CREATE OR REPLACE FUNCTION _wallet_enqueue_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_inbox (transaction_id) VALUES (NEW.id);
    RETURN NULL;
END;
$$;
