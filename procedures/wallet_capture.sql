-- wallet_capture: turn a hold into a posting (player -> REVENUE, type CAPTURE, under the hold's reference id)
-- and release whatever of it is not captured.
-- Arguments: p_reference_id (the hold's), p_amount (1 .. the held amount; default: all of it), p_actor (the
--   API key's name when the service calls; default: the calling role).
-- Returns: one row (transaction_id, user_id, asset_code, amount, balance, transaction_type, hold_reference_id,
--   created_at, replayed); replayed = true when this same capture (same amount, or no amount for a whole
--   capture) was already made.
-- Raises: WL001 the balance no longer covers the capture (only when someone bypassing the functions spent the
--   held credits), WL006 invalid argument, WL011 no such hold, WL012 the hold was voided, or captured with
--   another amount, WL013 the hold is past expires_at, WL014 amount above the held amount.
-- Locking: the player's wallet, then the hold.
-- Example: SELECT * FROM wallet_capture('hold_001', 250);
CREATE OR REPLACE FUNCTION wallet_capture(
    p_reference_id text,
    p_amount bigint DEFAULT NULL,
    p_actor text DEFAULT NULL)
RETURNS TABLE (transaction_id uuid, user_id text, asset_code text, amount bigint, balance bigint,
               transaction_type transaction_type, hold_reference_id text, created_at timestamptz,
               replayed boolean)
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
SET lock_timeout = '2s'
AS $$
DECLARE
    v_hold holds;
    v_wallet wallets;
    v_tx transactions;
    v_now timestamptz;
    v_held_by_others bigint;
BEGIN
    PERFORM _wallet_check_id('reference_id', p_reference_id);
    PERFORM _wallet_check_amount('amount', p_amount, p_required => false);
    PERFORM _wallet_check_id('actor', p_actor, false);

    SELECT h.* INTO v_hold FROM holds h WHERE h.reference_id = p_reference_id;
    IF NOT FOUND THEN
        PERFORM _wallet_hold_not_found(p_reference_id);
    END IF;
    IF v_hold.status = 'HELD' THEN
        -- lock the wallet, then the hold, and read the hold again: a concurrent capture or void may have won
        SELECT w.* INTO STRICT v_wallet FROM wallets w WHERE w.id = v_hold.wallet_id FOR UPDATE;
        SELECT h.* INTO STRICT v_hold FROM holds h WHERE h.id = v_hold.id FOR UPDATE;
    END IF;
    v_now := clock_timestamp();

    IF v_hold.status = 'CAPTURED' THEN
        IF coalesce(p_amount, v_hold.amount) = v_hold.captured_amount THEN
            RETURN QUERY
                SELECT t.id, t.user_id::text, t.asset_code, t.amount::bigint, e.balance_after::bigint, t.type,
                       v_hold.reference_id::text, t.created_at, true
                  FROM transactions t JOIN ledger_entries e ON e.transaction_id = t.id AND e.balance_after IS NOT NULL
                 WHERE t.id = v_hold.capture_transaction_id;
            RETURN;
        END IF;
        PERFORM _wallet_hold_not_active(v_hold, 'capture');
    ELSIF v_hold.status = 'VOIDED' THEN
        PERFORM _wallet_hold_not_active(v_hold, 'capture');
    ELSIF v_hold.status = 'EXPIRED' OR v_hold.expires_at <= v_now THEN
        RAISE EXCEPTION 'hold % expired at % and cannot be captured', p_reference_id, v_hold.expires_at
            USING ERRCODE = 'WL013',
                  DETAIL = json_build_object('reference_id', p_reference_id,
                                             'expires_at', to_char(v_hold.expires_at AT TIME ZONE 'UTC',
                                                                   'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text;
    END IF;
    IF p_amount > v_hold.amount THEN
        RAISE EXCEPTION 'cannot capture % % from hold %, which holds %', p_amount, v_hold.asset_code,
            p_reference_id, v_hold.amount
            USING ERRCODE = 'WL014',
                  DETAIL = json_build_object('reference_id', p_reference_id, 'amount', p_amount,
                                             'held', v_hold.amount)::text;
    END IF;

    -- the hold reserved these credits; only a DBA who bypassed the functions could have spent them since
    v_held_by_others := _wallet_held(v_wallet.id, v_wallet.holds_until, v_now) - v_hold.amount;
    IF v_wallet.balance - v_held_by_others < coalesce(p_amount, v_hold.amount) THEN
        PERFORM _wallet_insufficient_funds(v_hold.user_id, v_hold.asset_code, coalesce(p_amount, v_hold.amount),
                                           v_wallet.balance - v_held_by_others, v_held_by_others, 'capture');
    END IF;

    INSERT INTO transactions AS t (reference_id, type, user_id, asset_code, amount, item_id, metadata, actor,
                                   description, created_at)
    VALUES (v_hold.reference_id, 'CAPTURE', v_hold.user_id, v_hold.asset_code, coalesce(p_amount, v_hold.amount),
            v_hold.item_id, v_hold.metadata, coalesce(p_actor, session_user),
            'Capture of hold' || coalesce(': ' || v_hold.item_id, ''), v_now)
    RETURNING t.* INTO v_tx;
    UPDATE holds h SET status = 'CAPTURED', captured_amount = v_tx.amount, capture_transaction_id = v_tx.id,
                       closed_at = v_now, closed_by = coalesce(p_actor, session_user)
     WHERE h.id = v_hold.id;

    RETURN QUERY
        SELECT v_tx.id, v_tx.user_id::text, v_tx.asset_code, l.amount, l.balance, v_tx.type,
               v_hold.reference_id::text, v_tx.created_at, false
          FROM _wallet_post_legs(v_tx, ARRAY[v_wallet.id], ARRAY[-v_tx.amount::bigint], 'REVENUE') l;
END;
$$;
