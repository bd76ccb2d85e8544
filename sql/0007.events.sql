-- Events: every committed transaction, numbered 1, 2, 3... in an order a reader can resume exactly
-- (GET /api/v1/events, wallet_events()).
--
-- Why two tables. An identity or sequence value is taken before its transaction commits, so transactions
-- commit out of their number order: a reader that saw number 7 and resumes "after 7" would skip a number 6
-- committed later, forever. So a posting only drops its transaction into event_inbox (its seq orders the
-- inbox, nothing else); the sequencer (wallet_events_sequence, one at a time under an advisory lock) moves
-- committed inbox rows into events with the next ids max(events.id) + 1, 2, ... An inbox row still in flight
-- is invisible to the sequencer, so it gets its id only once committed, above every id handed out before:
-- the events a reader sees are always a gap-free prefix 1..n, and "id > last seen" is exact.
-- depends: 0006.economy

-- ---------------------------------------------------------------- tables

-- a committed transaction not yet numbered (the sequencer deletes the rows it moves to events)
CREATE TABLE event_inbox (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  uuid NOT NULL REFERENCES transactions (id),
    CONSTRAINT event_inbox_transaction_id_key UNIQUE (transaction_id)
);

-- a numbered transaction: ids 1..n without gaps, in the order the sequencer saw them committed; within one
-- wallet that is the wallet's commit (and entry) order. user_id is the transaction's, for the per-player
-- filter (text, not wallet_ref: it copies rows written before ids had to be printable).
CREATE TABLE events (
    id              bigint PRIMARY KEY CONSTRAINT events_id_positive CHECK (id > 0),
    transaction_id  uuid NOT NULL REFERENCES transactions (id),
    user_id         text NOT NULL,
    CONSTRAINT events_transaction_id_key UNIQUE (transaction_id)
);
-- one player's events in order (GET /events?user_id=)
CREATE INDEX events_user_id_idx ON events (user_id, id);

-- events are never changed, deleted or truncated (WL008); inbox rows are only deleted, once numbered
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION _wallet_reject_ledger_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION _wallet_reject_ledger_change();
CREATE TRIGGER event_inbox_no_update BEFORE UPDATE ON event_inbox
    FOR EACH ROW EXECUTE FUNCTION _wallet_reject_ledger_change();
CREATE TRIGGER event_inbox_no_truncate BEFORE TRUNCATE ON event_inbox
    FOR EACH STATEMENT EXECUTE FUNCTION _wallet_reject_ledger_change();

-- An inbox row may be deleted only once its transaction is in events (the sequencer moves, then deletes).
-- The function's body is procedures/_wallet_check_inbox_delete.sql, applied right after the migrations; until
-- then this placeholder refuses every delete (fail closed: nothing is numbered before the functions exist).
CREATE FUNCTION _wallet_check_inbox_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event inbox cannot change before the wallet functions are installed (wallet-service migrate)';
END;
$$;
CREATE TRIGGER event_inbox_delete_numbered AFTER DELETE ON event_inbox
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION _wallet_check_inbox_delete();

-- ---------------------------------------------------------------- every transaction enters the inbox

-- Whoever inserts a transaction (every posting function, a DBA's manual posting) puts it in the inbox in the
-- same database transaction: a trigger rather than a line in each posting function, so that no writer can
-- forget it and so that it holds from this migration's commit on, before the new functions are applied.
-- A posting inserts its transactions row once it holds its wallets' locks, so two postings of one wallet
-- take inbox seqs in their commit order. (procedures/_wallet_enqueue_event.sql holds the same body.)
CREATE FUNCTION _wallet_enqueue_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_inbox (transaction_id) VALUES (NEW.id);
    RETURN NULL;
END;
$$;

-- No posting may slip between the backfill below and the trigger: postings in flight finish first, later
-- ones wait for this migration's commit (and then see the trigger).
LOCK TABLE transactions IN SHARE ROW EXCLUSIVE MODE;

-- The ledger so far, numbered at once: by time, and within one instant by the first entry's id (entry ids
-- follow each wallet's lock order, so one wallet's events keep its entries' order even on a clock tie).
INSERT INTO events (id, transaction_id, user_id)
SELECT row_number() OVER (ORDER BY t.created_at, f.first_entry, t.id), t.id, t.user_id
  FROM transactions t
  LEFT JOIN LATERAL (SELECT min(e.id) AS first_entry FROM ledger_entries e WHERE e.transaction_id = t.id) f ON true;

CREATE TRIGGER transactions_enqueue_event AFTER INSERT ON transactions
    FOR EACH ROW EXECUTE FUNCTION _wallet_enqueue_event();
