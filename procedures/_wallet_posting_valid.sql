-- _wallet_posting_valid: whether every argument of a top-up, bonus or spend is valid, as one expression (the
-- fast path of _wallet_post and wallet_post_batch; _wallet_check_posting names the first invalid argument).
-- Arguments: as _wallet_post's. Returns: true when _wallet_check_posting would raise nothing.
-- (an optional argument that is NULL makes its test NULL, not false: hence the coalesce)
-- An SQL function of immutable parts: PostgreSQL inlines it, and folds the constants, into the caller's plan.
CREATE OR REPLACE FUNCTION _wallet_posting_valid(
    p_type transaction_type,
    p_user_id text,
    p_asset_code text,
    p_amount bigint,
    p_reference_id text,
    p_payment_method text,
    p_bonus_type text,
    p_item_id text,
    p_metadata jsonb,
    p_actor text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN NOT coalesce(
       p_user_id IS NULL OR length(p_user_id) NOT BETWEEN 1 AND _wallet_max_id_length()
       OR p_reference_id IS NULL OR length(p_reference_id) NOT BETWEEN 1 AND _wallet_max_id_length()
       OR p_asset_code IS NULL
       OR p_amount IS NULL OR p_amount NOT BETWEEN 1 AND _wallet_max_amount()
       OR length(p_payment_method) NOT BETWEEN 1 AND _wallet_max_id_length()
       OR (p_bonus_type IS NULL AND p_type = 'BONUS') OR length(p_bonus_type) NOT BETWEEN 1 AND _wallet_max_id_length()
       OR (p_item_id IS NULL AND p_type = 'SPEND') OR length(p_item_id) NOT BETWEEN 1 AND _wallet_max_id_length()
       OR length(p_actor) NOT BETWEEN 1 AND _wallet_max_id_length()
       OR NOT _wallet_printable(p_user_id || p_reference_id || coalesce(p_payment_method, '')
                                || coalesce(p_bonus_type, '') || coalesce(p_item_id, '') || coalesce(p_actor, ''))
       OR jsonb_typeof(p_metadata) <> 'object', false);
