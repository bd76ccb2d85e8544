-- _wallet_hold_not_active: raise WL012 for a capture or void of a hold already captured or voided.
-- Arguments: p_hold (the hold), p_action ('capture' or 'void').
-- Raises: WL012 always; DETAIL {reference_id, status, captured_amount}.
CREATE OR REPLACE FUNCTION _wallet_hold_not_active(p_hold holds, p_action text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'hold % is % and cannot be %', p_hold.reference_id, p_hold.status,
        CASE p_action WHEN 'capture' THEN 'captured' || coalesce(' again (it was captured for '
                                                                 || p_hold.captured_amount || ')', '')
                      ELSE 'voided' END
        USING ERRCODE = 'WL012',
              DETAIL = json_build_object('reference_id', p_hold.reference_id, 'status', p_hold.status,
                                         'captured_amount', p_hold.captured_amount)::text;
END;
$$;
