-- The ledger's references, checked once per INSERT statement instead of once per row.
-- depends: 0008.shards
--
-- Until now foreign keys checked that every ledger entry names an existing transaction and a wallet of its own
-- asset, and that every transaction names an existing asset: five checks per posting, each a query that also
-- took a KEY SHARE lock on the row it found. Those rows are the same for every posting of an asset (its
-- system wallet, the asset), so concurrent postings shared their locks through multixacts. The same rules are
-- now checked by the ledger's statement trigger (_wallet_check_new_entries: one query per INSERT, 23503
-- foreign_key_violation as before), with plain reads: nothing can take a referenced row away, since
-- transactions are append-only already and wallets and assets become permanent here (WL008 on DELETE,
-- TRUNCATE, or a change of the columns other rows refer to). A transaction written without entries is
-- refused at commit (transactions_have_entries), so every committed transaction passed the trigger's check.
-- Measured on the 2-core bench machine, 8 clients, A/B against the foreign keys: batches of 100 +9% to +11%,
-- single postings between equal and +10% (docs/benchmarks.md, 2026-11-29 later).
-- event_inbox -> transactions and holds -> wallets keep their foreign keys (not on every posting's path).
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_wallet_asset_fkey,
                           DROP CONSTRAINT ledger_entries_transaction_id_fkey;
ALTER TABLE transactions DROP CONSTRAINT transactions_asset_code_fkey;

CREATE TRIGGER wallets_permanent BEFORE DELETE OR UPDATE OF id, asset_code ON wallets
    FOR EACH ROW EXECUTE FUNCTION _wallet_reject_ledger_change();
CREATE TRIGGER wallets_no_truncate BEFORE TRUNCATE ON wallets
    FOR EACH STATEMENT EXECUTE FUNCTION _wallet_reject_ledger_change();
CREATE TRIGGER assets_permanent BEFORE DELETE OR UPDATE OF code ON assets
    FOR EACH ROW EXECUTE FUNCTION _wallet_reject_ledger_change();
CREATE TRIGGER assets_no_truncate BEFORE TRUNCATE ON assets
    FOR EACH STATEMENT EXECUTE FUNCTION _wallet_reject_ledger_change();

-- Fail closed until the new body of the statement trigger (procedures/_wallet_check_new_entries.sql, which
-- checks the references) is applied, right after the migrations: no entry is written without the checks.
CREATE OR REPLACE FUNCTION _wallet_check_new_entries() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'no ledger entry is written before the wallet functions are installed (wallet-service migrate)';
END;
$$;
