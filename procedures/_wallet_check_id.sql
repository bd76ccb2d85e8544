-- _wallet_check_id: check that an id-like argument is a non-empty string of at most 128 characters.
-- Arguments: p_field (name reported in the error), p_value, p_required (NULL allowed when false).
-- Returns: nothing. Raises: WL006.
CREATE OR REPLACE FUNCTION _wallet_check_id(p_field text, p_value text, p_required boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_value IS NULL THEN
        IF p_required THEN
            PERFORM _wallet_invalid_argument(p_field, 'is required');
        END IF;
    ELSIF length(p_value) = 0 OR length(p_value) > 128 THEN
        PERFORM _wallet_invalid_argument(p_field, 'must be a non-empty string of at most 128 characters');
    END IF;
END;
$$;
