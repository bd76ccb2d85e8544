-- wallet_hold: reserve credits of a player for a later capture (two-phase spend). A hold writes no ledger
-- entry: the balance stays, and what the player may use (available = balance - active holds) drops until the
-- hold is captured, voided, or reaches expires_at, where it stops counting without any job running.
-- Arguments: p_user_id, p_asset_code, p_amount (1 .. 2^53-1), p_reference_id (the hold's idempotency key:
--   unique across holds and postings; its capture posts under it), p_expires_in (seconds,
--   1 .. _wallet_max_hold_seconds(), default _wallet_default_hold_seconds()), p_item_id and p_metadata
--   (optional, carried into the capture), p_actor (the API key's name when the service calls; default: the
--   calling role).
-- Returns: one row (reference_id, user_id, asset_code, amount, status, expires_at, available, replayed):
--   available is what the player may still use in that asset. The same request again (same player, asset,
--   amount and item; p_expires_in is not compared) returns the hold as it is now, replayed = true.
-- Raises: WL001 amount above what is available, WL002 player has no wallet, WL003 asset not found,
--   WL004 the key belongs to a posting or to a different hold, WL006 invalid argument.
-- Locking: the key's advisory lock, then the player's wallet; expired holds of that wallet are marked
--   EXPIRED on the way (lazy clean-up).
-- Example: SELECT * FROM wallet_hold('user_alice', 'GOLD_COINS', 300, 'hold_001', p_expires_in => 120);
CREATE OR REPLACE FUNCTION wallet_hold(
    p_user_id text,
    p_asset_code text,
    p_amount bigint,
    p_reference_id text,
    p_expires_in integer DEFAULT NULL,
    p_item_id text DEFAULT NULL,
    p_metadata jsonb DEFAULT NULL,
    p_actor text DEFAULT NULL)
RETURNS TABLE (reference_id text, user_id text, asset_code text, amount bigint, status text,
               expires_at timestamptz, available bigint, replayed boolean)
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
SET lock_timeout = '2s'
AS $$
DECLARE
    v_hold holds;
    v_wallet wallets;
    v_now timestamptz;
    v_held bigint;
BEGIN
    PERFORM _wallet_check_id('user_id', p_user_id);
    IF p_asset_code IS NULL THEN
        PERFORM _wallet_invalid_argument('asset_code', 'is required');
    END IF;
    PERFORM _wallet_check_amount('amount', p_amount);
    PERFORM _wallet_check_id('reference_id', p_reference_id);
    IF p_expires_in IS NOT NULL AND p_expires_in NOT BETWEEN 1 AND _wallet_max_hold_seconds() THEN
        PERFORM _wallet_invalid_argument('expires_in', format('must be a number of seconds from 1 to %s, not %s',
                                                              _wallet_max_hold_seconds(), p_expires_in));
    END IF;
    PERFORM _wallet_check_id('item_id', p_item_id, false);
    PERFORM _wallet_check_id('actor', p_actor, false);
    IF p_metadata IS NOT NULL AND jsonb_typeof(p_metadata) <> 'object' THEN
        PERFORM _wallet_invalid_argument('metadata', 'must be a JSON object');
    END IF;

    SELECT h.* INTO v_hold FROM holds h WHERE h.reference_id = p_reference_id;
    IF NOT FOUND THEN
        PERFORM _wallet_claim_key(p_reference_id, p_for_hold => true);
        -- a concurrent hold with this key may have committed while we waited for the key
        SELECT h.* INTO v_hold FROM holds h WHERE h.reference_id = p_reference_id;
    END IF;
    IF FOUND THEN
        IF v_hold.user_id <> p_user_id OR v_hold.asset_code <> p_asset_code OR v_hold.amount <> p_amount
           OR v_hold.item_id IS DISTINCT FROM p_item_id THEN
            RAISE EXCEPTION 'reference id % already belongs to a hold of % % for %, not to this hold of % % for %',
                p_reference_id, v_hold.amount, v_hold.asset_code, v_hold.user_id, p_amount, p_asset_code, p_user_id
                USING ERRCODE = 'WL004',
                      DETAIL = json_build_object('reference_id', p_reference_id,
                                                 'hold_reference_id', v_hold.reference_id)::text;
        END IF;
        RETURN QUERY SELECT s.reference_id, s.user_id, s.asset_code, s.amount, s.status, s.expires_at,
                            (SELECT b.available FROM wallet_balances(s.user_id, s.asset_code) b), true
                       FROM wallet_hold_status(p_reference_id) s;
        RETURN;
    END IF;

    SELECT w.* INTO v_wallet FROM wallets w
     WHERE w.user_id = p_user_id AND w.asset_code = p_asset_code
       FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM _wallet_require_asset(p_asset_code);
        PERFORM _wallet_require_player(p_user_id);
        PERFORM _wallet_insufficient_funds(p_user_id, p_asset_code, p_amount, 0, 0, 'hold');
    END IF;
    v_now := clock_timestamp();

    -- lazy clean-up: the wallet's holds past expires_at are EXPIRED from now on (they stopped counting already)
    IF v_wallet.holds_until IS NOT NULL THEN
        UPDATE holds h SET status = 'EXPIRED', closed_at = h.expires_at
         WHERE h.wallet_id = v_wallet.id AND h.status = 'HELD' AND h.expires_at <= v_now;
    END IF;
    v_held := _wallet_held(v_wallet.id, v_wallet.holds_until, v_now);
    IF v_wallet.balance - v_held < p_amount THEN
        PERFORM _wallet_insufficient_funds(p_user_id, p_asset_code, p_amount, v_wallet.balance - v_held, v_held,
                                           'hold');
    END IF;

    INSERT INTO holds AS h (reference_id, wallet_id, user_id, asset_code, amount, item_id, metadata, actor,
                            created_at, expires_at)
    VALUES (p_reference_id, v_wallet.id, p_user_id, p_asset_code, p_amount, p_item_id, p_metadata,
            coalesce(p_actor, session_user), v_now,
            v_now + make_interval(secs => coalesce(p_expires_in, _wallet_default_hold_seconds())))
    RETURNING h.* INTO v_hold;
    -- spends read the holds only while one may be active
    UPDATE wallets w
       SET holds_until = (SELECT max(a.expires_at) FROM holds a WHERE a.wallet_id = v_wallet.id AND a.status = 'HELD')
     WHERE w.id = v_wallet.id;

    RETURN QUERY SELECT v_hold.reference_id::text, p_user_id, p_asset_code, p_amount, 'HELD'::text,
                        v_hold.expires_at, v_wallet.balance - v_held - p_amount, false;
END;
$$;
