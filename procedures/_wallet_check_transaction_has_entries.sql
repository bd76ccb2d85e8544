-- _wallet_check_transaction_has_entries: trigger function: a transaction commits with its ledger entries
-- or not at all (a bare transactions row would hold a reference id while moving no money).
-- Fires: deferred constraint trigger, AFTER INSERT on transactions.
-- Returns: NULL. Raises: check_violation (23514).
-- Runs as wallet_owner (SECURITY DEFINER): a deferred trigger fires at COMMIT, where PostgreSQL before 18
-- runs it as the session's role, which (a wallet_app login) may read no table.
CREATE OR REPLACE FUNCTION _wallet_check_transaction_has_entries() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.transaction_id = NEW.id) THEN
        RAISE EXCEPTION 'transaction % (reference id %) has no ledger entries', NEW.id, NEW.reference_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
