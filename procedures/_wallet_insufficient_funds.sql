-- _wallet_insufficient_funds: raise WL001 for a debit above what a player may use.
-- Arguments: p_user_id, p_asset_code, p_required (the debit), p_available (balance minus active holds),
--   p_held (what active holds reserve; 0 when none), p_action (what the debit is for: spend, hold, ...).
-- Raises: WL001 always; DETAIL {user_id, asset_code, required, available, held}.
CREATE OR REPLACE FUNCTION _wallet_insufficient_funds(p_user_id text, p_asset_code text, p_required bigint,
                                                      p_available bigint, p_held bigint, p_action text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'WL001',
        MESSAGE = format('insufficient funds: player %s has %s %s%s and cannot %s %s', p_user_id, p_available,
                         p_asset_code, CASE WHEN p_held > 0 THEN format(' available (%s held)', p_held) ELSE '' END,
                         p_action, p_required),
        DETAIL = json_build_object('user_id', p_user_id, 'asset_code', p_asset_code,
                                   'required', p_required, 'available', p_available, 'held', p_held)::text;
END;
$$;
