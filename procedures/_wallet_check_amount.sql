-- _wallet_check_amount: raise WL006 naming the field unless an amount is an integer from 1 to 2^53-1.
-- Arguments: p_field (its name in the error), p_value, p_required (false: NULL is allowed, meaning "default").
-- Raises: WL006 invalid argument.
CREATE OR REPLACE FUNCTION _wallet_check_amount(p_field text, p_value bigint, p_required boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF (p_value IS NULL AND p_required) OR p_value NOT BETWEEN 1 AND _wallet_max_amount() THEN
        PERFORM _wallet_invalid_argument(p_field, format('must be an integer from 1 to %s, not %s',
                                                         _wallet_max_amount(), coalesce(p_value::text, 'null')));
    END IF;
END;
$$;
