-- _wallet_require_player: raise the error for a player who has no wallet at all (in any asset).
-- Arguments: p_user_id.
-- Returns: nothing. Raises: WL002 wallet not found.
CREATE OR REPLACE FUNCTION _wallet_require_player(p_user_id text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM wallets w WHERE w.user_id = p_user_id) THEN
        RAISE EXCEPTION 'player % has no wallet', p_user_id
            USING ERRCODE = 'WL002', DETAIL = json_build_object('user_id', p_user_id)::text;
    END IF;
END;
$$;
