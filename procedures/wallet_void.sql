-- wallet_void: release a hold without posting anything.
-- Arguments: p_reference_id (the hold's), p_actor (who voids it, kept as the hold's closed_by: the API key's
--   name when the service calls; default: the calling role).
-- Returns: one row (reference_id, status, available, replayed): status VOIDED, or EXPIRED for a hold that
--   had reached expires_at (it released its credits then: nothing to do); available is what the player may
--   use in that asset now; replayed = true when the hold had already been voided.
-- Raises: WL006 invalid argument, WL011 no such hold, WL012 the hold was captured.
-- Locking: the player's wallet, then the hold.
-- Example: SELECT * FROM wallet_void('hold_001');
CREATE OR REPLACE FUNCTION wallet_void(p_reference_id text, p_actor text DEFAULT NULL)
RETURNS TABLE (reference_id text, status text, available bigint, replayed boolean)
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
SET lock_timeout = '2s'
AS $$
DECLARE
    v_hold holds;
    v_wallet wallets;
    v_now timestamptz;
    v_replayed boolean := false;
BEGIN
    PERFORM _wallet_check_id('reference_id', p_reference_id);
    PERFORM _wallet_check_id('actor', p_actor, false);

    SELECT h.* INTO v_hold FROM holds h WHERE h.reference_id = p_reference_id;
    IF NOT FOUND THEN
        PERFORM _wallet_hold_not_found(p_reference_id);
    END IF;
    SELECT w.* INTO STRICT v_wallet FROM wallets w WHERE w.id = v_hold.wallet_id FOR UPDATE;
    SELECT h.* INTO STRICT v_hold FROM holds h WHERE h.id = v_hold.id FOR UPDATE;
    v_now := clock_timestamp();

    IF v_hold.status = 'CAPTURED' THEN
        PERFORM _wallet_hold_not_active(v_hold, 'void');
    ELSIF v_hold.status = 'HELD' AND v_hold.expires_at <= v_now THEN
        UPDATE holds h SET status = 'EXPIRED', closed_at = h.expires_at WHERE h.id = v_hold.id
        RETURNING h.* INTO v_hold;
    ELSIF v_hold.status = 'HELD' THEN
        UPDATE holds h SET status = 'VOIDED', closed_at = v_now, closed_by = coalesce(p_actor, session_user)
         WHERE h.id = v_hold.id
        RETURNING h.* INTO v_hold;
    ELSE
        v_replayed := v_hold.status = 'VOIDED';
    END IF;

    RETURN QUERY SELECT v_hold.reference_id::text, v_hold.status::text,
                        v_wallet.balance - _wallet_held(v_wallet.id, v_wallet.holds_until, v_now), v_replayed;
END;
$$;
