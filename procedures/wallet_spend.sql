-- wallet_spend: debit a player for an item (player -> REVENUE).
-- Arguments: p_user_id, p_asset_code, p_amount (1 .. 2^53-1), p_reference_id (idempotency key),
--   p_item_id, p_metadata (JSON object, optional), p_actor (the
--   API key's name when the service calls; default: the calling database role).
-- Returns: one wallet_posting row; replayed = true when this same request had already been posted.
-- Raises: WL001 insufficient funds (the balance minus active holds), WL002 player has no wallet, WL003, WL004
--   (also when a hold has the key), WL006.
-- Example: SELECT * FROM wallet_spend('user_alice', 'GOLD_COINS', 100, 'spend_001', 'dragon_skin');
CREATE OR REPLACE FUNCTION wallet_spend(
    p_user_id text,
    p_asset_code text,
    p_amount bigint,
    p_reference_id text,
    p_item_id text,
    p_metadata jsonb DEFAULT NULL,
    p_actor text DEFAULT NULL)
RETURNS wallet_posting
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    RETURN _wallet_post('SPEND', p_user_id, p_asset_code, p_amount, p_reference_id,
                        p_item_id => p_item_id, p_metadata => p_metadata,
                        p_actor => p_actor);
END;
$$;
