-- _wallet_refusal: the error one of the ledger's checks raises, as data instead (wallet_post_batch answers
-- each refused operation with exactly the error its single function raises, from the same raising function).
-- Arguments: p_check (which raising function: check_item, claim_key, require_asset, require_player,
--   insufficient_funds, balance_limit_exceeded), p_args (its arguments as a JSON object; see below).
-- Returns: one row (o_sqlstate, o_message, o_detail, o_field): the error's SQLSTATE, primary message, DETAIL
--   as jsonb and COLUMN; all NULL when the check raised nothing.
-- Raises: any error that is not a ledger error (WL...), unchanged; an unknown p_check (XX000: a bug).
-- The check runs in a subtransaction that writes nothing, so it takes no transaction id.
CREATE OR REPLACE FUNCTION _wallet_refusal(p_check text, p_args jsonb, OUT o_sqlstate text, OUT o_message text,
                                           OUT o_detail jsonb, OUT o_field text)
LANGUAGE plpgsql AS $$
DECLARE
    v_detail text;
BEGIN
    CASE p_check
        WHEN 'check_item' THEN
            PERFORM _wallet_check_batch_item(p_args -> 'item');
        WHEN 'claim_key' THEN
            PERFORM _wallet_claim_key(p_args ->> 'reference_id');
        WHEN 'require_asset' THEN
            PERFORM _wallet_require_asset(p_args ->> 'asset_code');
        WHEN 'require_player' THEN
            PERFORM _wallet_require_player(p_args ->> 'user_id');
        WHEN 'insufficient_funds' THEN
            PERFORM _wallet_insufficient_funds(p_args ->> 'user_id', p_args ->> 'asset_code',
                                               (p_args ->> 'required')::bigint, (p_args ->> 'available')::bigint,
                                               (p_args ->> 'held')::bigint, 'spend');
        WHEN 'balance_limit_exceeded' THEN
            PERFORM _wallet_balance_limit_exceeded(p_args ->> 'user_id', p_args ->> 'asset_code',
                                                   (p_args ->> 'balance')::bigint, (p_args ->> 'amount')::bigint);
    END CASE;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS o_sqlstate = RETURNED_SQLSTATE, o_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, o_field = COLUMN_NAME;
    IF o_sqlstate !~ '^WL' THEN
        RAISE;
    END IF;
    o_detail := nullif(v_detail, '')::jsonb;
    o_field := nullif(o_field, '');
END;
$$;
