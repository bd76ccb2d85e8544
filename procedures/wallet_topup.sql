-- wallet_topup: credit a player with purchased credits (TREASURY -> player); opens the wallet on a first purchase.
-- Arguments: p_user_id, p_asset_code, p_amount (1 .. 2^53-1), p_reference_id (idempotency key),
--   p_payment_method, p_metadata (JSON object, optional), p_actor (the
--   API key's name when the service calls; default: the calling database role).
-- Returns: one wallet_posting row; replayed = true when this same request had already been posted.
-- Raises: WL003 asset not found, WL004 idempotency conflict, WL006 invalid argument, WL007 balance limit.
-- Example: SELECT * FROM wallet_topup('user_alice', 'GOLD_COINS', 100, 'topup_001', 'stripe');
CREATE OR REPLACE FUNCTION wallet_topup(
    p_user_id text,
    p_asset_code text,
    p_amount bigint,
    p_reference_id text,
    p_payment_method text DEFAULT NULL,
    p_metadata jsonb DEFAULT NULL,
    p_actor text DEFAULT NULL)
RETURNS wallet_posting
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    RETURN _wallet_post('TOPUP', p_user_id, p_asset_code, p_amount, p_reference_id,
                        p_payment_method => p_payment_method, p_metadata => p_metadata,
                        p_actor => p_actor);
END;
$$;
