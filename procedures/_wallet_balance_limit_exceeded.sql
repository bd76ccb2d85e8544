-- _wallet_balance_limit_exceeded: raise WL007 for a credit that would take a balance past 2^53-1.
-- Arguments: p_user_id, p_asset_code, p_balance (the balance now), p_amount (the credit).
-- Raises: WL007 always; DETAIL {user_id, asset_code, amount, balance, limit}.
CREATE OR REPLACE FUNCTION _wallet_balance_limit_exceeded(p_user_id text, p_asset_code text, p_balance bigint,
                                                          p_amount bigint)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'balance limit exceeded: player % has % % and cannot receive %',
        p_user_id, p_balance, p_asset_code, p_amount
        USING ERRCODE = 'WL007',
              DETAIL = json_build_object('user_id', p_user_id, 'asset_code', p_asset_code,
                                         'amount', p_amount, 'balance', p_balance,
                                         'limit', _wallet_max_amount())::text;
END;
$$;
