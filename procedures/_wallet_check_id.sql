-- _wallet_check_id: check that an id-like argument is a non-empty string of at most _wallet_max_id_length()
-- characters, all printable (_wallet_printable): the rules of the wallet_ref domain, checked here so that a
-- caller gets WL006 naming the field.
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
    ELSIF length(p_value) NOT BETWEEN 1 AND _wallet_max_id_length() THEN
        PERFORM _wallet_invalid_argument(p_field,
            format('must be a non-empty string of at most %s characters', _wallet_max_id_length()));
    ELSIF NOT _wallet_printable(p_value) THEN
        PERFORM _wallet_invalid_argument(p_field,
            'must not contain control, invisible formatting (zero-width, bidi) or private-use characters');
    END IF;
END;
$$;
