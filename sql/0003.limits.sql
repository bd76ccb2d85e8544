-- Each limit of the ledger, written once: three constant functions, and domains built on them for the
-- columns that carry amounts, balances and ids. The functions (procedures/) check arguments against the
-- same constants, so changing a limit is a change here, plus service/limits.py (a test compares them).
-- depends: 0002.reference-data

-- ---------------------------------------------------------------- constants

-- 2^53-1: the largest integer every JSON client reads exactly; no amount or player balance exceeds it
CREATE FUNCTION _wallet_max_amount() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 9007199254740991;

-- user ids, reference ids and operation fields (payment method, bonus type, item id): 1 to this many characters
CREATE FUNCTION _wallet_max_id_length() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 128;

-- the most history entries one call of wallet_history returns
CREATE FUNCTION _wallet_max_page() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 100;

-- ---------------------------------------------------------------- domains

-- a transaction's amount: 1 .. 2^53-1
CREATE DOMAIN wallet_amount AS bigint
    CONSTRAINT wallet_amount_range CHECK (VALUE BETWEEN 1 AND _wallet_max_amount());
-- a player's balance, stored or after an entry: 0 .. 2^53-1
CREATE DOMAIN wallet_balance AS bigint
    CONSTRAINT wallet_balance_range CHECK (VALUE BETWEEN 0 AND _wallet_max_amount());
-- an id-like string: 1 .. 128 characters
CREATE DOMAIN wallet_ref AS text
    CONSTRAINT wallet_ref_length CHECK (length(VALUE) BETWEEN 1 AND _wallet_max_id_length());

-- ---------------------------------------------------------------- columns on the domains
-- (each replaces a CHECK of 0001 that spelled the same limit out)

-- (a trigger that fires on UPDATE OF balance pins the column's type: re-created as it was)
DROP TRIGGER wallets_balance_matches_ledger ON wallets;
ALTER TABLE wallets
    DROP CONSTRAINT wallets_balance_not_negative,
    DROP CONSTRAINT wallets_balance_limit,
    DROP CONSTRAINT wallets_user_id_length,
    ALTER COLUMN balance TYPE wallet_balance,
    ALTER COLUMN user_id TYPE wallet_ref;
CREATE CONSTRAINT TRIGGER wallets_balance_matches_ledger
    AFTER INSERT OR UPDATE OF balance ON wallets
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.kind = 'PLAYER')
    EXECUTE FUNCTION _wallet_check_stored_balance();

ALTER TABLE transactions
    DROP CONSTRAINT transactions_amount_check,
    DROP CONSTRAINT transactions_reference_id_check,
    DROP CONSTRAINT transactions_payment_method_check,
    DROP CONSTRAINT transactions_bonus_type_check,
    DROP CONSTRAINT transactions_item_id_check,
    ALTER COLUMN amount TYPE wallet_amount,
    ALTER COLUMN reference_id TYPE wallet_ref,
    ALTER COLUMN user_id TYPE wallet_ref,
    ALTER COLUMN payment_method TYPE wallet_ref,
    ALTER COLUMN bonus_type TYPE wallet_ref,
    ALTER COLUMN item_id TYPE wallet_ref;

ALTER TABLE ledger_entries
    DROP CONSTRAINT ledger_entries_balance_after_check,
    ALTER COLUMN balance_after TYPE wallet_balance;

-- wallet_history gains has_older (is there another page after this row); its return type changes.
-- (IF EXISTS: on a new database the functions are created only after the migrations)
DROP FUNCTION IF EXISTS wallet_history(text, text, integer, integer, bigint);
-- _wallet_require_player now checks the player only (the asset has its own _wallet_require_asset)
DROP FUNCTION IF EXISTS _wallet_require_player(text, text);
