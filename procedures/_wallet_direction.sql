-- _wallet_direction: which way a transaction type moves credits.
-- Arguments: p_type.
-- Returns: one row (sign, system_kind): sign +1 when the player is credited, -1 when debited, and the kind of
--   system wallet on the other side. No row for REVERSAL, whose direction is its original's, reversed.
CREATE OR REPLACE FUNCTION _wallet_direction(p_type transaction_type)
RETURNS TABLE (sign bigint, system_kind wallet_kind)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_type IN ('SPEND', 'PURCHASE', 'CAPTURE') THEN -1 ELSE 1 END::bigint,
           CASE WHEN p_type IN ('SPEND', 'PURCHASE', 'CAPTURE') THEN 'REVENUE'
                WHEN p_type = 'BONUS' THEN 'BONUS_POOL'
                ELSE 'TREASURY' END::wallet_kind
     WHERE p_type <> 'REVERSAL';
$$;
