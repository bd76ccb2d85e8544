-- _wallet_replay: answer a request whose reference id is already taken.
-- Arguments: p_tx (the transaction that holds the key) and the new request's fields.
-- Returns: the original posting with replayed = true when the request is the same one (same type,
-- player, asset, amount and operation field; metadata is not compared).
-- Raises: WL004 when the key was used for a different request (DETAIL names its transaction_id).
CREATE OR REPLACE FUNCTION _wallet_replay(
    p_tx transactions,
    p_type transaction_type,
    p_user_id text,
    p_asset_code text,
    p_amount bigint,
    p_payment_method text,
    p_bonus_type text,
    p_item_id text)
RETURNS wallet_posting
LANGUAGE plpgsql AS $$
DECLARE
    v_result wallet_posting;
BEGIN
    IF p_tx.type <> p_type
       OR p_tx.user_id <> p_user_id
       OR p_tx.asset_code <> p_asset_code
       OR p_tx.amount <> p_amount
       OR p_tx.payment_method IS DISTINCT FROM p_payment_method
       OR p_tx.bonus_type IS DISTINCT FROM p_bonus_type
       OR p_tx.item_id IS DISTINCT FROM p_item_id THEN
        RAISE EXCEPTION 'reference id % already belongs to transaction % (% of % % for %), not to this % of % % for %',
            p_tx.reference_id, p_tx.id, p_tx.type, p_tx.amount, p_tx.asset_code, p_tx.user_id,
            p_type, p_amount, p_asset_code, p_user_id
            USING ERRCODE = 'WL004',
                  DETAIL = json_build_object('reference_id', p_tx.reference_id,
                                             'transaction_id', p_tx.id)::text;
    END IF;

    -- the balance reported is the one the original posting left, not today's
    -- (the domain-typed columns read out as their base types)
    v_result := (p_tx.id, p_tx.user_id::text, p_tx.asset_code, p_tx.amount::bigint,
                 (SELECT e.balance_after::bigint FROM ledger_entries e
                   WHERE e.transaction_id = p_tx.id AND e.balance_after IS NOT NULL),
                 p_tx.type, p_tx.created_at, true);
    RETURN v_result;
END;
$$;
