-- _wallet_require_player: check a read request's player and (optional) asset before reading.
-- Arguments: p_user_id, p_asset_code (NULL: any asset).
-- Returns: nothing. Raises: WL006 bad id, WL003 unknown asset, WL002 player has no wallet at all.
CREATE OR REPLACE FUNCTION _wallet_require_player(p_user_id text, p_asset_code text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM _wallet_check_id('user_id', p_user_id);
    IF p_asset_code IS NOT NULL AND NOT EXISTS (SELECT 1 FROM assets a WHERE a.code = p_asset_code) THEN
        RAISE EXCEPTION 'asset % not found', p_asset_code
            USING ERRCODE = 'WL003', DETAIL = json_build_object('asset_code', p_asset_code)::text;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM wallets w WHERE w.user_id = p_user_id) THEN
        RAISE EXCEPTION 'player % has no wallet', p_user_id
            USING ERRCODE = 'WL002', DETAIL = json_build_object('user_id', p_user_id)::text;
    END IF;
END;
$$;
