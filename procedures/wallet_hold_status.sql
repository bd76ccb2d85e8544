-- wallet_hold_status: one hold as it stands now.
-- Arguments: p_reference_id (the hold's).
-- Returns: one row (reference_id, user_id, asset_code, amount, status, expires_at, captured_amount, item_id,
--   metadata, created_at, closed_at, capture_transaction_id, actor); status HELD, CAPTURED, VOIDED or
--   EXPIRED (a HELD hold past expires_at reads EXPIRED, whether or not it was marked so yet).
-- Raises: WL006 invalid argument, WL011 no hold has this reference id.
-- Example: SELECT * FROM wallet_hold_status('hold_001');
CREATE OR REPLACE FUNCTION wallet_hold_status(p_reference_id text)
RETURNS TABLE (reference_id text, user_id text, asset_code text, amount bigint, status text,
               expires_at timestamptz, captured_amount bigint, item_id text, metadata jsonb, created_at timestamptz,
               closed_at timestamptz, capture_transaction_id uuid, actor text)
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_now timestamptz := clock_timestamp();  -- one reading: status and closed_at agree
BEGIN
    PERFORM _wallet_check_id('reference_id', p_reference_id);
    RETURN QUERY
        SELECT h.reference_id::text, h.user_id::text, h.asset_code, h.amount::bigint,
               CASE WHEN h.status = 'HELD' AND h.expires_at <= v_now THEN 'EXPIRED'
                    ELSE h.status::text END,
               h.expires_at, h.captured_amount::bigint, h.item_id::text, h.metadata, h.created_at,
               CASE WHEN h.status = 'HELD' AND h.expires_at <= v_now THEN h.expires_at
                    ELSE h.closed_at END,
               h.capture_transaction_id, h.actor
          FROM holds h
         WHERE h.reference_id = p_reference_id;
    IF NOT FOUND THEN
        PERFORM _wallet_hold_not_found(p_reference_id);
    END IF;
END;
$$;
