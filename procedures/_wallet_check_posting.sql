-- _wallet_check_posting: the argument checks of a top-up, bonus or spend, one by one, raising the first
-- precise WL006 (the slow path of _wallet_post and wallet_post_batch: they first test every argument in one
-- expression and call this only when something is wrong, so a valid call never pays for it).
-- Arguments: as _wallet_post's (p_type decides which operation field is required).
-- Returns: nothing when every argument is valid. Raises: WL006 invalid argument (COLUMN = the field).
CREATE OR REPLACE FUNCTION _wallet_check_posting(
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
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM _wallet_check_id('user_id', p_user_id);
    PERFORM _wallet_check_id('reference_id', p_reference_id);
    IF p_asset_code IS NULL THEN
        PERFORM _wallet_invalid_argument('asset_code', 'is required');
    END IF;
    PERFORM _wallet_check_amount('amount', p_amount);
    PERFORM _wallet_check_id('payment_method', p_payment_method, false);
    PERFORM _wallet_check_id('bonus_type', p_bonus_type, p_type = 'BONUS');
    PERFORM _wallet_check_id('item_id', p_item_id, p_type = 'SPEND');
    PERFORM _wallet_check_id('actor', p_actor, false);
    IF p_metadata IS NOT NULL AND jsonb_typeof(p_metadata) <> 'object' THEN
        PERFORM _wallet_invalid_argument('metadata', 'must be a JSON object');
    END IF;
END;
$$;
