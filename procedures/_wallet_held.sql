-- _wallet_held: what a wallet's active holds reserve at an instant (holds past expires_at do not count).
-- Arguments: p_wallet_id, p_holds_until (the wallet's holds_until: no active hold lasts past it, so when
--   p_now is past it nothing is held and the holds are not read), p_now (the instant: the caller's clock, read
--   once it holds the wallet's lock).
-- Returns: the sum of the amounts of the wallet's HELD holds with expires_at after p_now (0 if none).
CREATE OR REPLACE FUNCTION _wallet_held(p_wallet_id bigint, p_holds_until timestamptz, p_now timestamptz)
RETURNS bigint
LANGUAGE sql STABLE
RETURN CASE WHEN p_holds_until > p_now
            THEN (SELECT coalesce(sum(h.amount), 0)::bigint FROM holds h
                   WHERE h.wallet_id = p_wallet_id AND h.status = 'HELD' AND h.expires_at > p_now)
            ELSE 0 END;
