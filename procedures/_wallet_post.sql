-- _wallet_post: post one player transaction (top-up, bonus, spend or initial balance) as two
-- ledger entries, exactly once per reference id.
-- Arguments: p_type, p_user_id, p_asset_code, p_amount (1 .. 2^53-1), p_reference_id, the operation
--   field of the type (p_payment_method | p_bonus_type | p_item_id), p_metadata (a JSON object or
--   NULL), p_display_name (name of a wallet this call opens; default: the player's existing name),
--   p_actor (who asks: the API key's name for the service; NULL: the calling database role).
-- Returns: wallet_posting (replayed = true when the key had been used for this same request).
-- Raises: WL001 insufficient funds (a spend needs the balance minus active holds), WL002 wallet not found (spend by a player with no wallet),
--   WL003 asset not found, WL004 idempotency conflict, WL006 invalid argument, WL007 balance limit;
--   lock_not_available (55P03) when the player's wallet stays locked past lock_timeout.
-- Records: the actor (p_actor or the calling role) and the calling role (db_role) on the transaction, and
-- each player entry's hash, chained to its wallet's previous entry (_wallet_entry_hash).
-- Locking: the reference id's advisory lock (_wallet_claim_key), then only the player's wallet row. The system wallet's leg is inserted without
-- locking or updating the system wallet, so postings of different players never wait on each other.
CREATE OR REPLACE FUNCTION _wallet_post(
    p_type transaction_type,
    p_user_id text,
    p_asset_code text,
    p_amount bigint,
    p_reference_id text,
    p_payment_method text DEFAULT NULL,
    p_bonus_type text DEFAULT NULL,
    p_item_id text DEFAULT NULL,
    p_metadata jsonb DEFAULT NULL,
    p_display_name text DEFAULT NULL,
    p_actor text DEFAULT NULL)
RETURNS wallet_posting
LANGUAGE plpgsql
SET lock_timeout = '2s'
AS $$
DECLARE
    v_tx transactions;
    v_wallet_id bigint;
    v_balance wallet_balance;
    v_new_balance bigint;
    v_system_kind wallet_kind;
    v_sign bigint;
    v_result wallet_posting;
    v_previous_hash bytea;
    v_hash bytea;
    v_holds_until timestamptz;
    v_now timestamptz;
    v_held bigint := 0::bigint;
BEGIN
    -- validate every argument before touching any row: one expression for the common, valid call; the
    -- per-argument checks (which raise the precise WL006) only when something is wrong
    -- (the constant functions are inlined and folded into the cached plan: no call at run time)
    IF NOT _wallet_posting_valid(p_type, p_user_id, p_asset_code, p_amount, p_reference_id, p_payment_method,
                                 p_bonus_type, p_item_id, p_metadata, p_actor) THEN
        PERFORM _wallet_check_posting(p_type, p_user_id, p_asset_code, p_amount, p_reference_id, p_payment_method,
                                      p_bonus_type, p_item_id, p_metadata, p_actor);
    END IF;

    -- a retried key is answered from the transaction that holds it, without taking any lock
    SELECT t.* INTO v_tx FROM transactions t WHERE t.reference_id = p_reference_id;
    IF FOUND THEN
        RETURN _wallet_replay(v_tx, p_type, p_user_id, p_asset_code, p_amount,
                              p_payment_method, p_bonus_type, p_item_id);
    END IF;

    -- the key is no hold's (and no concurrent writer of the same key gets past this until we commit)
    PERFORM _wallet_claim_key(p_reference_id);

    -- lock the player's wallet: the one row this posting locks, waited for up to lock_timeout
    SELECT w.id, w.balance, w.chain_head, w.holds_until INTO v_wallet_id, v_balance, v_previous_hash, v_holds_until
      FROM wallets w
     WHERE w.user_id = p_user_id AND w.asset_code = p_asset_code
       FOR UPDATE;
    IF NOT FOUND THEN
        -- only now can the asset be unknown: a wallet in it exists, so it does (foreign key)
        PERFORM _wallet_require_asset(p_asset_code);
        IF p_type = 'SPEND' THEN
            PERFORM _wallet_require_player(p_user_id);
            -- the player exists but never held this asset: nothing to spend
            v_balance := 0;
        ELSE
            -- a first credit opens the wallet; a concurrent opener may win the race, then we lock theirs
            INSERT INTO wallets AS w (asset_code, kind, user_id, name, balance)
            VALUES (p_asset_code, 'PLAYER', p_user_id,
                    coalesce(p_display_name,
                             (SELECT o.name FROM wallets o WHERE o.user_id = p_user_id LIMIT 1),
                             p_user_id),
                    0)
            ON CONFLICT (user_id, asset_code) DO NOTHING;
            SELECT w.id, w.balance, w.chain_head, w.holds_until INTO STRICT v_wallet_id, v_balance, v_previous_hash, v_holds_until
              FROM wallets w
             WHERE w.user_id = p_user_id AND w.asset_code = p_asset_code
               FOR UPDATE;
        END IF;
    END IF;

    -- the posting's time, read under the lock: within a wallet, later entries never have earlier times
    -- (what wallet_balances(..., p_at) relies on)
    v_now := clock_timestamp();

    -- claim the key under the wallet lock, before the funds check: a concurrent duplicate that just
    -- committed must be answered as a replay, not judged against the balance it left. If a posting in
    -- flight holds the key, this waits for it and then yields no row.
    INSERT INTO transactions AS t (reference_id, type, user_id, asset_code, amount,
                                   payment_method, bonus_type, item_id, metadata, actor, description, created_at)
    VALUES (p_reference_id, p_type, p_user_id, p_asset_code, p_amount,
            p_payment_method, p_bonus_type, p_item_id, p_metadata, coalesce(p_actor, session_user),
            _wallet_posting_description(p_type, p_payment_method, p_bonus_type, p_item_id),
            v_now)
    ON CONFLICT (reference_id) DO NOTHING
    RETURNING t.* INTO v_tx;
    IF NOT FOUND THEN
        SELECT t.* INTO STRICT v_tx FROM transactions t WHERE t.reference_id = p_reference_id;
        RETURN _wallet_replay(v_tx, p_type, p_user_id, p_asset_code, p_amount,
                              p_payment_method, p_bonus_type, p_item_id);
    END IF;

    -- funds and limit, checked under the wallet lock; a spend may use what active holds do not reserve
    IF p_type = 'SPEND' THEN
        v_held := _wallet_held(v_wallet_id, v_holds_until, v_now);
        IF v_balance - v_held < p_amount THEN
            PERFORM _wallet_insufficient_funds(p_user_id, p_asset_code, p_amount, v_balance - v_held, v_held, 'spend');
        END IF;
        v_sign := -1;
        v_system_kind := 'REVENUE';
    ELSE
        IF v_balance > _wallet_max_amount() - p_amount THEN
            PERFORM _wallet_balance_limit_exceeded(p_user_id, p_asset_code, v_balance, p_amount);
        END IF;
        v_sign := 1;
        v_system_kind := CASE p_type WHEN 'BONUS' THEN 'BONUS_POOL'::wallet_kind ELSE 'TREASURY'::wallet_kind END;
    END IF;
    v_new_balance := v_balance + v_sign * p_amount;

    -- the player entry's hash, chained to the wallet's head (read under the wallet's lock above)
    v_hash := _wallet_entry_hash(v_previous_hash, v_tx, v_wallet_id, v_sign * p_amount, v_new_balance);
    UPDATE wallets w SET balance = v_new_balance, updated_at = v_tx.created_at, chain_head = v_hash
     WHERE w.id = v_wallet_id;

    -- both legs in one statement: the ledger's trigger requires each INSERT to sum to zero.
    -- "kind <> 'PLAYER'" is implied by v_system_kind, but spelled out it lets the cached generic plan use
    -- the partial index wallets_system_asset_kind_key; without it this INSERT was re-planned on every call
    INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount, balance_after, created_at, entry_hash)
    SELECT v_tx.id, v_wallet_id, p_asset_code, v_sign * p_amount, v_new_balance, v_tx.created_at,
           v_hash
    UNION ALL
    SELECT v_tx.id, s.id, p_asset_code, -v_sign * p_amount, NULL, v_tx.created_at, NULL
      FROM wallets s
     WHERE s.asset_code = p_asset_code AND s.kind = v_system_kind AND s.kind <> 'PLAYER';

    v_result := (v_tx.id, p_user_id, p_asset_code, p_amount, v_new_balance, p_type, v_tx.created_at, false);
    RETURN v_result;
END;
$$;
