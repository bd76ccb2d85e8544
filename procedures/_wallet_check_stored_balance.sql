-- _wallet_check_stored_balance: trigger function: a player's stored balance equals the balance_after of
-- the wallet's newest entry, checked when the transaction commits (the entry is written after the balance
-- update): a balance changed without an entry cannot commit. (An entry without the balance update is
-- refused by the INSERT trigger.)
-- Fires: deferred constraint trigger, AFTER INSERT OR UPDATE OF balance on player rows of wallets.
-- Returns: NULL. Raises: check_violation (23514).
-- Runs as wallet_owner (SECURITY DEFINER): a deferred trigger fires at COMMIT, where PostgreSQL before 18
-- runs it as the session's role, which (a wallet_app login) may read no table.
CREATE OR REPLACE FUNCTION _wallet_check_stored_balance() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_stored wallet_balance;
    v_ledger wallet_balance;
BEGIN
    -- the row as it is at commit, not as it was when this event was queued
    SELECT w.balance INTO v_stored FROM wallets w WHERE w.id = NEW.id;
    SELECT e.balance_after INTO v_ledger
      FROM ledger_entries e WHERE e.wallet_id = NEW.id ORDER BY e.id DESC LIMIT 1;
    IF v_stored IS DISTINCT FROM coalesce(v_ledger, 0) THEN
        RAISE EXCEPTION 'stored balance % of wallet % (%, %) does not match its ledger (%)',
            v_stored, NEW.id, NEW.user_id, NEW.asset_code, coalesce(v_ledger, 0)
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
