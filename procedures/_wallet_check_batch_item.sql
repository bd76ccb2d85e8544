-- _wallet_check_batch_item: the checks of one operation of wallet_post_batch, one by one, raising the first
-- precise WL006 (its slow path: only for an item its one-expression check found wrong).
-- Arguments: p_item (one element of the operations array).
-- Returns: nothing when the item is a valid operation. Raises: WL006 invalid argument (COLUMN = the field):
--   not an object, no or an unknown operation, a field that is not the operation's, a field of the wrong JSON
--   type, then every check of the single function (_wallet_check_posting).
CREATE OR REPLACE FUNCTION _wallet_check_batch_item(p_item jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_type transaction_type;
    v_own_field text;
    v_field record;
BEGIN
    IF jsonb_typeof(p_item) IS DISTINCT FROM 'object' THEN
        PERFORM _wallet_invalid_argument('operation', 'each operation must be a JSON object');
    END IF;
    v_type := CASE p_item ->> 'operation' WHEN 'topup' THEN 'TOPUP'::transaction_type
                                          WHEN 'bonus' THEN 'BONUS'::transaction_type
                                          WHEN 'spend' THEN 'SPEND'::transaction_type END;
    IF v_type IS NULL THEN
        PERFORM _wallet_invalid_argument('operation', 'must be one of topup, bonus, spend');
    END IF;
    v_own_field := CASE v_type WHEN 'TOPUP' THEN 'payment_method' WHEN 'BONUS' THEN 'bonus_type' ELSE 'item_id' END;
    FOR v_field IN SELECT f.key, jsonb_typeof(f.value) AS json_type FROM jsonb_each(p_item) f ORDER BY f.key LOOP
        IF v_field.key NOT IN ('operation', 'user_id', 'asset_code', 'amount', 'reference_id', 'metadata', v_own_field) THEN
            PERFORM _wallet_invalid_argument(v_field.key, format('is not a field of a %s', p_item ->> 'operation'));
        ELSIF v_field.key IN ('user_id', 'asset_code', 'reference_id', v_own_field)
              AND v_field.json_type NOT IN ('string', 'null') THEN
            PERFORM _wallet_invalid_argument(v_field.key, 'must be a string');
        END IF;
    END LOOP;
    IF jsonb_typeof(p_item -> 'amount') = 'number' AND NOT (p_item ->> 'amount') ~ '^-?[0-9]{1,18}$'
       OR jsonb_typeof(p_item -> 'amount') NOT IN ('number', 'null') THEN
        PERFORM _wallet_invalid_argument('amount', format('must be an integer from 1 to %s, not %s',
                                                          _wallet_max_amount(), p_item -> 'amount'));
    END IF;
    PERFORM _wallet_check_posting(v_type, p_item ->> 'user_id', p_item ->> 'asset_code',
                                  (p_item ->> 'amount')::bigint, p_item ->> 'reference_id',
                                  p_item ->> 'payment_method', p_item ->> 'bonus_type', p_item ->> 'item_id',
                                  nullif(p_item -> 'metadata', 'null'::jsonb), NULL);
END;
$$;
