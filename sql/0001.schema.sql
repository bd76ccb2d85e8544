-- The ledger: assets, wallets, transactions and their double-entry ledger entries.
-- Rules that must hold even for a DBA who bypasses the wallet_* functions live here as
-- constraints and triggers: non-negative player balances, zero-sum postings, an append-only ledger.

-- ---------------------------------------------------------------- types

-- Who owns a wallet.
CREATE TYPE wallet_kind AS ENUM (
    'PLAYER',      -- a player's wallet; its balance is stored and never negative
    'TREASURY',    -- issues purchased credits (top-ups, initial balances); may go negative
    'BONUS_POOL',  -- issues free credits (bonuses); may go negative
    'REVENUE'      -- receives spent credits
);

-- What a transaction did.
CREATE TYPE transaction_type AS ENUM (
    'TOPUP',            -- TREASURY -> player: credits bought with real money
    'BONUS',            -- BONUS_POOL -> player: free credits
    'SPEND',            -- player -> REVENUE: credits spent on an item
    'INITIAL_BALANCE'   -- TREASURY -> player: opening balance from the seed
);

-- What wallet_topup, wallet_bonus and wallet_spend return: one readable row.
CREATE TYPE wallet_posting AS (
    transaction_id    uuid,
    user_id           text,
    asset_code        text,
    amount            bigint,
    balance           bigint,            -- the player's balance right after this transaction
    transaction_type  transaction_type,
    created_at        timestamptz,
    replayed          boolean            -- true when the reference id had already been used
);

-- ---------------------------------------------------------------- tables

CREATE TABLE assets (
    code        text PRIMARY KEY CHECK (code ~ '^[A-Z][A-Z0-9_]{0,63}$'),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One wallet per (player, asset), and one wallet per (asset, system kind).
-- System wallets keep no stored balance: every posting would otherwise update (and lock) the same
-- TREASURY / BONUS_POOL / REVENUE row and serialize all players behind it. Their balance is derived
-- from their ledger entries instead (view wallet_system_balances).
CREATE TABLE wallets (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    asset_code  text NOT NULL REFERENCES assets (code),
    kind        wallet_kind NOT NULL,
    user_id     text,
    name        text NOT NULL,
    balance     bigint,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT wallets_player_has_user_id CHECK ((kind = 'PLAYER') = (user_id IS NOT NULL)),
    CONSTRAINT wallets_player_has_balance CHECK ((kind = 'PLAYER') = (balance IS NOT NULL)),
    CONSTRAINT wallets_balance_not_negative CHECK (balance >= 0),
    CONSTRAINT wallets_balance_limit CHECK (balance <= 9007199254740991),
    CONSTRAINT wallets_user_id_length CHECK (length(user_id) BETWEEN 1 AND 128),
    CONSTRAINT wallets_player_asset_key UNIQUE (user_id, asset_code),
    CONSTRAINT wallets_id_asset_key UNIQUE (id, asset_code)
);
CREATE UNIQUE INDEX wallets_system_asset_kind_key ON wallets (asset_code, kind) WHERE kind <> 'PLAYER';

-- One row per posting; reference_id is the idempotency key across all operation types.
CREATE TABLE transactions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    reference_id    text NOT NULL CHECK (length(reference_id) BETWEEN 1 AND 128),
    type            transaction_type NOT NULL,
    user_id         text NOT NULL,
    asset_code      text NOT NULL REFERENCES assets (code),
    amount          bigint NOT NULL CHECK (amount BETWEEN 1 AND 9007199254740991),
    payment_method  text CHECK (length(payment_method) BETWEEN 1 AND 128),
    bonus_type      text CHECK (length(bonus_type) BETWEEN 1 AND 128),
    item_id         text CHECK (length(item_id) BETWEEN 1 AND 128),
    metadata        jsonb,
    description     text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT transactions_reference_id_key UNIQUE (reference_id)
);

-- Signed double-entry legs: credit > 0, debit < 0. The legs of a transaction sum to zero per asset.
-- balance_after is the player's balance right after the entry (NULL on system wallets' entries).
CREATE TABLE ledger_entries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  uuid NOT NULL REFERENCES transactions (id),
    wallet_id       bigint NOT NULL,
    asset_code      text NOT NULL,
    amount          bigint NOT NULL CHECK (amount <> 0),
    balance_after   bigint CHECK (balance_after BETWEEN 0 AND 9007199254740991),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ledger_entries_wallet_asset_fkey FOREIGN KEY (wallet_id, asset_code)
        REFERENCES wallets (id, asset_code)
);
-- history pages (newest first, keyset by id) and derived system balances (index-only sums)
CREATE INDEX ledger_entries_wallet_id_idx ON ledger_entries (wallet_id, id) INCLUDE (amount);
CREATE INDEX ledger_entries_transaction_id_idx ON ledger_entries (transaction_id);

-- ---------------------------------------------------------------- enforcement

-- Ledger rows are never updated, deleted or truncated: WL008.
CREATE FUNCTION _wallet_reject_ledger_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'WL008', HINT = 'correct a mistake with a new, compensating transaction';
END;
$$;

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION _wallet_reject_ledger_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION _wallet_reject_ledger_change();
CREATE TRIGGER transactions_append_only BEFORE UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION _wallet_reject_ledger_change();
CREATE TRIGGER transactions_no_truncate BEFORE TRUNCATE ON transactions
    FOR EACH STATEMENT EXECUTE FUNCTION _wallet_reject_ledger_change();

-- Every INSERT into ledger_entries must be balanced by itself: per (transaction, asset) its rows sum
-- to zero, so no committed transaction can hold an unbalanced set of entries. Player entries must
-- continue their wallet's balance_after chain, and a wallet's newest entry must record the balance the
-- wallet stores (so the wallet is updated first, then its entry inserted, as _wallet_post does); system
-- entries carry no balance_after.
CREATE FUNCTION _wallet_check_new_entries() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_bad record;
BEGIN
    -- zero-sum per transaction and asset within the statement
    SELECT n.transaction_id, n.asset_code, sum(n.amount) AS total INTO v_bad
      FROM new_entries n
     GROUP BY n.transaction_id, n.asset_code
    HAVING sum(n.amount) <> 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unbalanced ledger entries: transaction % sums to % in %',
            v_bad.transaction_id, v_bad.total, v_bad.asset_code
            USING ERRCODE = 'check_violation';
    END IF;

    -- balance_after continues the wallet's previous entry (player wallets only)
    SELECT n.id, n.wallet_id, n.balance_after, prev.balance_after AS previous, w.kind, w.balance,
           w.user_id, w.asset_code,
           n.balance_after IS NOT DISTINCT FROM coalesce(prev.balance_after, 0) + n.amount AS chained
      INTO v_bad
      FROM new_entries n
      JOIN wallets w ON w.id = n.wallet_id
      LEFT JOIN LATERAL (
            SELECT p.balance_after FROM ledger_entries p
             WHERE p.wallet_id = n.wallet_id AND p.id < n.id
             ORDER BY p.id DESC LIMIT 1) prev ON true
     WHERE CASE WHEN w.kind = 'PLAYER'
                THEN n.balance_after IS DISTINCT FROM coalesce(prev.balance_after, 0) + n.amount
                     -- the wallet's newest entry of this statement records its stored balance
                     OR (n.balance_after IS DISTINCT FROM w.balance
                         AND n.id = (SELECT max(l.id) FROM new_entries l WHERE l.wallet_id = n.wallet_id))
                ELSE n.balance_after IS NOT NULL END
     LIMIT 1;
    IF FOUND AND v_bad.chained AND v_bad.kind = 'PLAYER' THEN
        RAISE EXCEPTION 'ledger entry % records balance_after % but wallet % (%, %) stores %',
            v_bad.id, v_bad.balance_after, v_bad.wallet_id, v_bad.user_id, v_bad.asset_code, v_bad.balance
            USING ERRCODE = 'check_violation',
                  HINT = 'update the wallet''s balance first, then insert its entry';
    ELSIF FOUND THEN
        RAISE EXCEPTION 'ledger entry % breaks the balance chain of wallet % (% wallet): balance_after % after %',
            v_bad.id, v_bad.wallet_id, v_bad.kind, v_bad.balance_after, coalesce(v_bad.previous, 0)
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION _wallet_check_new_entries();

-- A player's stored balance always equals the balance_after of the wallet's newest entry, checked
-- when the transaction commits (the entry is written after the balance update): a balance changed
-- without an entry cannot commit. (An entry without the balance update is refused by the INSERT trigger.)
CREATE FUNCTION _wallet_check_stored_balance() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_stored bigint;
    v_ledger bigint;
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

CREATE CONSTRAINT TRIGGER wallets_balance_matches_ledger
    AFTER INSERT OR UPDATE OF balance ON wallets
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.kind = 'PLAYER')
    EXECUTE FUNCTION _wallet_check_stored_balance();

-- A transaction commits with its ledger entries or not at all: a bare transactions row would hold a
-- reference id (answering replays with no balance) while moving no money.
CREATE FUNCTION _wallet_check_transaction_has_entries() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.transaction_id = NEW.id) THEN
        RAISE EXCEPTION 'transaction % (reference id %) has no ledger entries', NEW.id, NEW.reference_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER transactions_have_entries
    AFTER INSERT ON transactions
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    EXECUTE FUNCTION _wallet_check_transaction_has_entries();

-- ---------------------------------------------------------------- views

-- System wallet balances, derived from their entries (see the note on wallets).
CREATE VIEW wallet_system_balances AS
SELECT w.id AS wallet_id, w.asset_code, w.kind, w.name,
       coalesce((SELECT sum(e.amount) FROM ledger_entries e WHERE e.wallet_id = w.id), 0)::bigint AS balance
  FROM wallets w
 WHERE w.kind <> 'PLAYER';
