-- _wallet_check_hold_change: the rule of the holds table (trigger holds_guarded, BEFORE UPDATE OR DELETE).
-- A hold is never deleted; it changes once, from HELD to CAPTURED, VOIDED or EXPIRED, and only its status,
-- captured_amount, capture_transaction_id, closed_at and closed_by change then.
-- Raises: WL008 on a delete or on any other change.
CREATE OR REPLACE FUNCTION _wallet_check_hold_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'holds are kept: DELETE of hold % is not allowed', OLD.reference_id
            USING ERRCODE = 'WL008', HINT = 'void the hold instead';
    END IF;
    IF OLD.status <> 'HELD'
       OR NEW.status = 'HELD'
       OR (to_jsonb(NEW) - ARRAY['status', 'captured_amount', 'capture_transaction_id', 'closed_at', 'closed_by'])
          IS DISTINCT FROM
          (to_jsonb(OLD) - ARRAY['status', 'captured_amount', 'capture_transaction_id', 'closed_at', 'closed_by']) THEN
        RAISE EXCEPTION 'hold % is % and cannot change this way', OLD.reference_id, OLD.status
            USING ERRCODE = 'WL008', HINT = 'a hold changes once, from HELD to CAPTURED, VOIDED or EXPIRED';
    END IF;
    RETURN NEW;
END;
$$;
