-- Economy operations, part 2: multi-asset purchases, reversals, holds and balances at an instant.
--
-- Purchases and purchase reversals move several assets in one transaction: their legs
-- ([{asset_code, amount}], sorted by asset code) are in transactions.legs, and asset_code and amount are
-- NULL. Every other transaction keeps its one asset and amount in those columns, legs NULL.
-- A reversal names its original (original_id) and says why (reason).
--
-- Holds are reservations, not postings: a hold writes no ledger entry. It lowers the player's available
-- funds (balance - active holds) until it is captured (a CAPTURE posting, player -> REVENUE, whose
-- reference id is the hold's), voided, or reaches expires_at, where it simply stops counting.
-- depends: 0005.economy-types

-- ---------------------------------------------------------------- constants

-- a hold's lifetime, in seconds: 1 .. this many (a day), and the default
CREATE FUNCTION _wallet_max_hold_seconds() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 86400;
CREATE FUNCTION _wallet_default_hold_seconds() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 600;
-- the most assets one purchase debits
CREATE FUNCTION _wallet_max_price_legs() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 3;

-- ---------------------------------------------------------------- transactions

ALTER TABLE transactions
    ALTER COLUMN asset_code DROP NOT NULL,
    ALTER COLUMN amount DROP NOT NULL,
    ADD COLUMN legs jsonb,
    ADD COLUMN original_id uuid REFERENCES transactions (id),
    ADD COLUMN reason wallet_ref,
    ADD CONSTRAINT transactions_one_asset_or_legs
        CHECK (CASE WHEN legs IS NULL THEN asset_code IS NOT NULL AND amount IS NOT NULL
                    ELSE asset_code IS NULL AND amount IS NULL AND jsonb_typeof(legs) = 'array' END),
    ADD CONSTRAINT transactions_legs_only_for_purchases
        CHECK (legs IS NULL OR type IN ('PURCHASE', 'REVERSAL')),
    ADD CONSTRAINT transactions_reversal_names_original
        CHECK ((type = 'REVERSAL') = (original_id IS NOT NULL) AND (type = 'REVERSAL') = (reason IS NOT NULL)),
    ADD CONSTRAINT transactions_purchase_names_item CHECK (type <> 'PURCHASE' OR item_id IS NOT NULL);
-- the reversals of an original (how much of it is already reversed)
CREATE INDEX transactions_original_id_idx ON transactions (original_id) WHERE original_id IS NOT NULL;

-- ---------------------------------------------------------------- balances at an instant

-- a player entry's balance as of any instant: the wallet's newest entry at or before it, one index probe.
-- (created_at of a posting is taken once it holds its wallets' locks, so within a wallet it grows with id)
CREATE INDEX ledger_entries_wallet_created_idx ON ledger_entries (wallet_id, created_at, id) INCLUDE (balance_after)
    WHERE balance_after IS NOT NULL;

-- ---------------------------------------------------------------- holds

CREATE TYPE hold_status AS ENUM (
    'HELD',      -- counts against available funds until expires_at
    'CAPTURED',  -- posted as a CAPTURE transaction (captured_amount of amount); the rest was released
    'VOIDED',    -- released by a void
    'EXPIRED'    -- reached expires_at while HELD (written lazily: a HELD hold past expires_at is expired already)
);

CREATE TABLE holds (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reference_id            wallet_ref NOT NULL,
    wallet_id               bigint NOT NULL,
    user_id                 wallet_ref NOT NULL,
    asset_code              text NOT NULL,
    amount                  wallet_amount NOT NULL,
    item_id                 wallet_ref,
    metadata                jsonb,
    actor                   text NOT NULL DEFAULT session_user,
    db_role                 text NOT NULL DEFAULT session_user,
    created_at              timestamptz NOT NULL,
    expires_at              timestamptz NOT NULL,
    status                  hold_status NOT NULL DEFAULT 'HELD',
    captured_amount         wallet_amount,
    capture_transaction_id  uuid REFERENCES transactions (id),
    closed_at               timestamptz,
    closed_by               text,          -- who captured or voided it (API key name or database role)
    CONSTRAINT holds_reference_id_key UNIQUE (reference_id),
    CONSTRAINT holds_wallet_asset_fkey FOREIGN KEY (wallet_id, asset_code) REFERENCES wallets (id, asset_code),
    CONSTRAINT holds_expiry_after_creation CHECK (expires_at > created_at),
    CONSTRAINT holds_captured_has_posting
        CHECK ((status = 'CAPTURED') = (capture_transaction_id IS NOT NULL)
               AND (status = 'CAPTURED') = (captured_amount IS NOT NULL)),
    CONSTRAINT holds_capture_within_hold CHECK (captured_amount <= amount),
    CONSTRAINT holds_closed_when_not_held CHECK ((status = 'HELD') = (closed_at IS NULL))
);
-- a posting captures one hold at most (and wallet_verify's capture checks find a capture's hold by index)
CREATE UNIQUE INDEX holds_capture_transaction_id_key ON holds (capture_transaction_id)
    WHERE capture_transaction_id IS NOT NULL;
-- the active holds of a wallet (what is held), and the holds to expire lazily
CREATE INDEX holds_active_idx ON holds (wallet_id, expires_at) INCLUDE (amount) WHERE status = 'HELD';

-- holds_until: no active hold of the wallet expires after this instant (NULL: it has none). A spend whose
-- clock is past it knows, without reading holds, that nothing is held; otherwise it sums the active holds.
ALTER TABLE wallets ADD COLUMN holds_until timestamptz;

-- A hold changes only from HELD to its end state, once; nothing else of it changes, and it is never deleted.
-- The function's body is procedures/_wallet_check_hold_change.sql, applied right after the migrations; until
-- then this placeholder refuses every change (fail closed).
CREATE FUNCTION _wallet_check_hold_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'holds cannot change before the wallet functions are installed (wallet-service migrate)';
END;
$$;
CREATE TRIGGER holds_guarded BEFORE UPDATE OR DELETE ON holds
    FOR EACH ROW EXECUTE FUNCTION _wallet_check_hold_change();
CREATE TRIGGER holds_no_truncate BEFORE TRUNCATE ON holds
    FOR EACH STATEMENT EXECUTE FUNCTION _wallet_reject_ledger_change();

-- ---------------------------------------------------------------- changed signatures

-- wallet_balances gains held, available and p_at; wallet_history gains original_reference_id;
-- wallet_transaction gains legs, original_reference_id, reason and each entry's asset code
DROP FUNCTION IF EXISTS wallet_balances(text, text);
DROP FUNCTION IF EXISTS wallet_history(text, text, integer, integer, bigint);
DROP FUNCTION IF EXISTS wallet_transaction(text);
