-- wallet_purchase: debit a player in 1 to 3 assets at once for one item (player -> REVENUE in each asset),
-- all legs or none.
-- Arguments: p_user_id, p_reference_id (idempotency key), p_item_id, p_price (a JSON array of 1 to 3
--   {"asset_code": text, "amount": 1 .. 2^53-1} objects, distinct assets, in any order), p_metadata (JSON
--   object, optional), p_actor (the API key's name when the service calls; default: the calling role).
-- Returns: one row per leg, in asset order: (transaction_id, user_id, transaction_type, item_id, asset_code,
--   amount, balance, created_at, replayed); balance is the player's balance in that asset right after.
--   The same request again (same player, item and price, in any order) returns the original rows with
--   replayed = true.
-- Raises: WL001 insufficient funds in any asset (balance minus active holds; DETAIL names the asset),
--   WL002 player has no wallet, WL003 asset not found, WL004 idempotency conflict, WL006 invalid argument.
-- Locking: the key's advisory lock, then the player's wallets in ascending id order, so purchases that
--   list the same assets in different orders never deadlock.
-- Example: SELECT * FROM wallet_purchase('user_alice', 'buy_001', 'dragon_bundle',
--              '[{"asset_code": "GOLD_COINS", "amount": 100}, {"asset_code": "DIAMONDS", "amount": 5}]');
CREATE OR REPLACE FUNCTION wallet_purchase(
    p_user_id text,
    p_reference_id text,
    p_item_id text,
    p_price jsonb,
    p_metadata jsonb DEFAULT NULL,
    p_actor text DEFAULT NULL)
RETURNS TABLE (transaction_id uuid, user_id text, transaction_type transaction_type, item_id text,
               asset_code text, amount bigint, balance bigint, created_at timestamptz, replayed boolean)
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
SET lock_timeout = '2s'
AS $$
DECLARE
    v_legs jsonb;
    v_assets text[];
    v_amounts bigint[];
    v_tx transactions;
    v_wallet_ids bigint[] := ARRAY[]::bigint[];
    v_debits bigint[] := ARRAY[]::bigint[];
    v_wallet record;
    v_now timestamptz;
    v_held bigint;
    v_new boolean := false;
    v_locked bigint;
BEGIN
    PERFORM _wallet_check_id('user_id', p_user_id);
    PERFORM _wallet_check_id('reference_id', p_reference_id);
    PERFORM _wallet_check_id('item_id', p_item_id);
    PERFORM _wallet_check_id('actor', p_actor, false);
    IF p_metadata IS NOT NULL AND jsonb_typeof(p_metadata) <> 'object' THEN
        PERFORM _wallet_invalid_argument('metadata', 'must be a JSON object');
    END IF;
    v_legs := _wallet_price_legs(p_price);
    SELECT array_agg(l->>'asset_code' ORDER BY l->>'asset_code'), array_agg((l->>'amount')::bigint ORDER BY l->>'asset_code')
      INTO v_assets, v_amounts
      FROM jsonb_array_elements(v_legs) l;

    -- a retried key is answered from the transaction that holds it, without taking any lock
    SELECT t.* INTO v_tx FROM transactions t WHERE t.reference_id = p_reference_id;
    IF NOT FOUND THEN
        PERFORM _wallet_claim_key(p_reference_id);
        -- the player's wallets in these assets, locked in ascending id order
        SELECT count(*) INTO v_locked
          FROM (SELECT w.id FROM wallets w
                 WHERE w.user_id = p_user_id AND w.asset_code = ANY (v_assets)
                 ORDER BY w.id
                   FOR UPDATE) w;
        v_now := clock_timestamp();

        INSERT INTO transactions AS t (reference_id, type, user_id, asset_code, amount, legs, item_id, metadata,
                                       actor, description, created_at)
        VALUES (p_reference_id, 'PURCHASE', p_user_id, NULL, NULL, v_legs, p_item_id, p_metadata,
                coalesce(p_actor, session_user), 'Purchase: ' || p_item_id, v_now)
        ON CONFLICT (reference_id) DO NOTHING
        RETURNING t.* INTO v_tx;
        v_new := FOUND;
        IF NOT v_new THEN
            SELECT t.* INTO STRICT v_tx FROM transactions t WHERE t.reference_id = p_reference_id;
        END IF;
    END IF;

    IF NOT v_new THEN
        -- the key was taken: the same purchase is replayed, anything else is a conflict
        IF v_tx.type <> 'PURCHASE' OR v_tx.user_id <> p_user_id OR v_tx.item_id IS DISTINCT FROM p_item_id
           OR v_tx.legs <> v_legs THEN
            RAISE EXCEPTION 'reference id % already belongs to transaction % (% for %), not to this purchase of % for %',
                v_tx.reference_id, v_tx.id, v_tx.type, v_tx.user_id, p_item_id, p_user_id
                USING ERRCODE = 'WL004',
                      DETAIL = json_build_object('reference_id', v_tx.reference_id, 'transaction_id', v_tx.id)::text;
        END IF;
        RETURN QUERY
            SELECT v_tx.id, v_tx.user_id::text, v_tx.type, v_tx.item_id::text, l.asset_code, l.amount, l.balance,
                   v_tx.created_at, true
              FROM _wallet_leg_rows(v_tx.id) l;
        RETURN;
    END IF;

    -- every asset exists, the player exists, and each wallet can pay (balance minus active holds)
    IF v_locked < cardinality(v_assets) THEN
        FOR i IN 1 .. cardinality(v_assets) LOOP
            PERFORM _wallet_require_asset(v_assets[i]);
        END LOOP;
        PERFORM _wallet_require_player(p_user_id);
    END IF;
    FOR v_wallet IN
        SELECT l.asset_code, l.amount, w.id, w.balance, w.holds_until
          FROM unnest(v_assets, v_amounts) AS l (asset_code, amount)
          LEFT JOIN wallets w ON w.user_id = p_user_id AND w.asset_code = l.asset_code
         ORDER BY l.asset_code
    LOOP
        IF v_wallet.id IS NULL THEN
            PERFORM _wallet_insufficient_funds(p_user_id, v_wallet.asset_code, v_wallet.amount, 0, 0, 'spend');
        END IF;
        v_held := _wallet_held(v_wallet.id, v_wallet.holds_until, v_now);
        IF v_wallet.balance - v_held < v_wallet.amount THEN
            PERFORM _wallet_insufficient_funds(p_user_id, v_wallet.asset_code, v_wallet.amount,
                                               v_wallet.balance - v_held, v_held, 'spend');
        END IF;
        v_wallet_ids := v_wallet_ids || v_wallet.id;
        v_debits := v_debits || -v_wallet.amount;
    END LOOP;

    RETURN QUERY
        SELECT v_tx.id, p_user_id, v_tx.type, p_item_id, l.asset_code, l.amount, l.balance, v_tx.created_at, false
          FROM _wallet_post_legs(v_tx, v_wallet_ids, v_debits, 'REVENUE') l;
END;
$$;
