-- _wallet_invalid_argument: raise the error for one bad argument.
-- Arguments: p_field (the argument's name as callers know it), p_message (what is wrong with it).
-- Returns: never. Raises: WL006, with the field in the error's COLUMN and a JSON DETAIL.
CREATE OR REPLACE FUNCTION _wallet_invalid_argument(p_field text, p_message text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'invalid argument %: %', p_field, p_message
        USING ERRCODE = 'WL006', COLUMN = p_field,
              DETAIL = json_build_object('field', p_field, 'message', p_message)::text;
END;
$$;
