-- _wallet_price_legs: check a purchase's price and return it in canonical form.
-- Arguments: p_price (a JSON array of 1 to _wallet_max_price_legs() {"asset_code", "amount"} objects).
-- Returns: the same legs as [{"asset_code": text, "amount": integer}], sorted by asset code (so that the
--   same price in another order, or with an amount written 5.0 or 5e0, is the same request).
-- Raises: WL006 naming the field (price, price[i].asset_code, price[i].amount) when the price is not such an
--   array, an amount is not an integer from 1 to 2^53-1, or an asset appears twice.
CREATE OR REPLACE FUNCTION _wallet_price_legs(p_price jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_leg jsonb;
    v_i integer := 0;
    v_result jsonb;
BEGIN
    IF p_price IS NULL THEN
        PERFORM _wallet_invalid_argument('price', 'is required');
    END IF;
    IF jsonb_typeof(p_price) <> 'array'
       OR jsonb_array_length(p_price) NOT BETWEEN 1 AND _wallet_max_price_legs() THEN
        PERFORM _wallet_invalid_argument('price',
            format('must be an array of 1 to %s {asset_code, amount} objects', _wallet_max_price_legs()));
    END IF;
    FOR v_leg IN SELECT value FROM jsonb_array_elements(p_price) LOOP
        IF jsonb_typeof(v_leg) <> 'object' OR EXISTS (SELECT 1 FROM jsonb_object_keys(v_leg) k
                                                      WHERE k NOT IN ('asset_code', 'amount')) THEN
            PERFORM _wallet_invalid_argument(format('price[%s]', v_i), 'must be an object {asset_code, amount}');
        END IF;
        IF jsonb_typeof(v_leg->'asset_code') IS DISTINCT FROM 'string' THEN
            PERFORM _wallet_invalid_argument(format('price[%s].asset_code', v_i), 'is required (a string)');
        END IF;
        IF jsonb_typeof(v_leg->'amount') IS DISTINCT FROM 'number'
           OR (v_leg->>'amount')::numeric <> trunc((v_leg->>'amount')::numeric)
           OR (v_leg->>'amount')::numeric NOT BETWEEN 1 AND _wallet_max_amount() THEN
            PERFORM _wallet_invalid_argument(format('price[%s].amount', v_i),
                format('must be an integer from 1 to %s', _wallet_max_amount()));
        END IF;
        v_i := v_i + 1;
    END LOOP;
    IF (SELECT count(DISTINCT l->>'asset_code') FROM jsonb_array_elements(p_price) l) < jsonb_array_length(p_price) THEN
        PERFORM _wallet_invalid_argument('price', 'lists an asset more than once');
    END IF;
    SELECT jsonb_agg(jsonb_build_object('asset_code', l->>'asset_code', 'amount', (l->>'amount')::numeric::bigint)
                     ORDER BY l->>'asset_code')
      INTO v_result
      FROM jsonb_array_elements(p_price) l;
    RETURN v_result;
END;
$$;
