-- _wallet_posting_description: the description a top-up, bonus, spend or initial balance records.
-- Arguments: p_type, and the operation field of the type. Returns: e.g. 'Top-up via stripe', 'Bonus: DAILY'.
CREATE OR REPLACE FUNCTION _wallet_posting_description(p_type transaction_type, p_payment_method text,
                                                       p_bonus_type text, p_item_id text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE p_type
           WHEN 'TOPUP' THEN 'Top-up' || coalesce(' via ' || p_payment_method, '')
           WHEN 'BONUS' THEN 'Bonus: ' || p_bonus_type
           WHEN 'SPEND' THEN 'Purchase: ' || p_item_id
           ELSE 'Initial balance'
       END;
