-- Callers and rights: three database roles, API keys, the actor of every transaction, and the hash chain
-- that makes the ledger tamper-evident. Ownership and grants themselves are (re)applied after every
-- migration run by _wallet_secure() (procedures/), so objects added later get them too.
-- depends: 0003.limits

-- ---------------------------------------------------------------- roles
-- Roles belong to the cluster, not the database: created once, shared by every wallet database in it.
--   wallet_owner    owns every table and function (NOLOGIN; migrations run as a superuser or a member)
--   wallet_app      may EXECUTE the public wallet_* functions and nothing else: the service's login holds it
--   wallet_support  wallet_app plus SELECT on the tables: support staff and DBAs reading the ledger
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wallet_owner') THEN
        CREATE ROLE wallet_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wallet_app') THEN
        CREATE ROLE wallet_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wallet_support') THEN
        CREATE ROLE wallet_support NOLOGIN;
    END IF;
END;
$$;
GRANT wallet_app TO wallet_support;

-- ---------------------------------------------------------------- API keys

-- What an API key may do.
CREATE TYPE wallet_scope AS ENUM (
    'read',     -- balances, history, transaction and hold lookups, events
    'topup',    -- top-ups
    'bonus',    -- bonuses
    'spend',    -- spends, purchases, holds, captures, voids
    'reverse',  -- reversals
    'admin'     -- everything
);

-- One row per key, never deleted: a revoked key keeps its row (its name stays the actor of what it posted).
-- Only the SHA-256 of the secret is stored; the secret is shown once, when the key is created.
CREATE TABLE api_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CONSTRAINT api_keys_name_format CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    key_hash    bytea NOT NULL CONSTRAINT api_keys_hash_length CHECK (length(key_hash) = 32),
    scopes      wallet_scope[] NOT NULL CONSTRAINT api_keys_some_scope CHECK (cardinality(scopes) > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL DEFAULT session_user,
    revoked_at  timestamptz,
    CONSTRAINT api_keys_name_key UNIQUE (name),
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash)
);

-- ---------------------------------------------------------------- actors

-- actor: the API key's name for a request through the service, else the database role that called;
-- db_role: the database role that called, whatever the actor says (a psql caller cannot hide behind a key
-- name). Transactions written before this migration say 'unrecorded'.
ALTER TABLE transactions
    ADD COLUMN actor text NOT NULL DEFAULT 'unrecorded',
    ADD COLUMN db_role text NOT NULL DEFAULT 'unrecorded';
ALTER TABLE transactions
    ALTER COLUMN actor SET DEFAULT session_user,
    ALTER COLUMN db_role SET DEFAULT session_user;

-- ---------------------------------------------------------------- printable ids

-- An id (user id, reference id, operation field, actor) may not hide what it says: none of its characters
-- is in the Unicode 14 general categories Cc (control), Cf (format: zero-width, bidi controls, BOM, tags,
-- soft hyphen...), Co (private use), Zl or Zp (line and paragraph separators); surrogates and NUL cannot be
-- in a text value at all. The ranges are the table FORBIDDEN_ID_RANGES of service/validation.py, which the
-- HTTP layer and the OpenAPI document use too (tests/api/test_hostile_input.py checks that they agree).
CREATE FUNCTION _wallet_printable(p_value text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN p_value !~ '[\u0001-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ue000-\uf8ff\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f\U000f0000-\U000ffffd\U00100000-\U0010fffd]';

-- ids written from now on are printable; existing rows are not re-checked (NOT VALID)
ALTER DOMAIN wallet_ref ADD CONSTRAINT wallet_ref_printable CHECK (_wallet_printable(VALUE)) NOT VALID;

-- ---------------------------------------------------------------- the hash chain

-- entry_hash: SHA-256 chaining each player entry to its wallet's previous entry and covering its
-- transaction (see _wallet_entry_hash); NULL on system wallets' entries, which their transaction's player
-- entry covers through the transaction's invariants (zero sum, expected legs: wallet_verify).
ALTER TABLE ledger_entries ADD COLUMN entry_hash bytea;
-- chain_head: a player wallet's newest entry_hash, kept with its balance so that a posting, which locks the
-- wallet row anyway, finds the hash to chain to without another read (a manual posting must set it too)
ALTER TABLE wallets ADD COLUMN chain_head bytea;
-- every posting updates its wallet row: room on each page keeps those updates HOT (no index entries),
-- which measured ~5% of a top-up's time once the rows grew by the 32-byte chain head
ALTER TABLE wallets SET (fillfactor = 70);

-- The hash of a player entry: SHA-256 over its wallet's previous entry hash (none for the first), then a
-- canonical JSON text of its transaction row (every column; NULL columns left out, so a column added
-- later that is NULL on old rows leaves their hashes valid; created_at in UTC, whatever the session's
-- TimeZone) and of the entry's own wallet, amount and balance_after. A plain SQL expression, so that
-- PostgreSQL inlines it into the statement that calls it.
-- Changing what is hashed is a migration that re-chains the ledger (like the one below); a timestamptz
-- column added to transactions must be normalized here like created_at.
CREATE FUNCTION _wallet_entry_hash(p_previous bytea, p_tx transactions, p_wallet_id bigint, p_amount bigint,
                                   p_balance_after bigint)
RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
RETURN sha256(coalesce(p_previous, ''::bytea)
              || convert_to(jsonb_build_array(
                                'wallet-entry-v1',
                                jsonb_strip_nulls(to_jsonb(p_tx) || jsonb_build_object('created_at',
                                    to_char(p_tx.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))),
                                p_wallet_id, p_amount, p_balance_after)::text, 'UTF8'));

-- Chain the entries written before this migration, wallet by wallet in entry order (the append-only
-- trigger is off for this one UPDATE of the history; nothing else changes).
ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only;
DO $$
DECLARE
    r record;
    v_wallet_id bigint;
    v_hash bytea;
BEGIN
    FOR r IN
        SELECT e.id, e.wallet_id, e.amount, e.balance_after, t AS tx
          FROM ledger_entries e
          JOIN wallets w ON w.id = e.wallet_id AND w.kind = 'PLAYER'
          JOIN transactions t ON t.id = e.transaction_id
         ORDER BY e.wallet_id, e.id
    LOOP
        IF r.wallet_id IS DISTINCT FROM v_wallet_id THEN
            v_wallet_id := r.wallet_id;
            v_hash := NULL;
        END IF;
        v_hash := _wallet_entry_hash(v_hash, r.tx, r.wallet_id, r.amount, r.balance_after);
        UPDATE ledger_entries SET entry_hash = v_hash WHERE id = r.id;
    END LOOP;
END;
$$;
ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_append_only;
UPDATE wallets w
   SET chain_head = (SELECT e.entry_hash FROM ledger_entries e WHERE e.wallet_id = w.id ORDER BY e.id DESC LIMIT 1)
 WHERE w.kind = 'PLAYER';

-- wallet_posting rows (what postings return) do not change; wallet_transaction gains actor and db_role,
-- and the postings gain p_actor: their signatures change.
DROP FUNCTION IF EXISTS wallet_transaction(text);
DROP FUNCTION IF EXISTS wallet_topup(text, text, bigint, text, text, jsonb);
DROP FUNCTION IF EXISTS wallet_bonus(text, text, bigint, text, text, jsonb);
DROP FUNCTION IF EXISTS wallet_spend(text, text, bigint, text, text, jsonb);
DROP FUNCTION IF EXISTS _wallet_post(transaction_type, text, text, bigint, text, text, text, text, jsonb, text);
