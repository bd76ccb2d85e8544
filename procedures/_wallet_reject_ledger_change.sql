-- _wallet_reject_ledger_change: trigger function: ledger rows are never updated, deleted or truncated.
-- Fires: BEFORE UPDATE OR DELETE (row) and BEFORE TRUNCATE (statement) on ledger_entries, transactions and
--   events; BEFORE TRUNCATE on holds (whose other changes _wallet_check_hold_change judges); BEFORE UPDATE (row)
--   and BEFORE TRUNCATE on event_inbox (whose deletes _wallet_check_inbox_delete judges); BEFORE DELETE, UPDATE
--   of the columns other rows refer to (row) and TRUNCATE on wallets and assets (sql/0009: permanent rows).
-- Returns: never. Raises: WL008, always.
CREATE OR REPLACE FUNCTION _wallet_reject_ledger_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'WL008', HINT = 'correct a mistake with a new, compensating transaction';
END;
$$;
