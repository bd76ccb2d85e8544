-- _wallet_require_asset: raise the error for an asset code that names no asset.
-- Arguments: p_asset_code (NULL passes: whether it is required is the caller's rule).
-- Returns: nothing. Raises: WL003 asset not found.
CREATE OR REPLACE FUNCTION _wallet_require_asset(p_asset_code text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_asset_code IS NOT NULL AND NOT EXISTS (SELECT 1 FROM assets a WHERE a.code = p_asset_code) THEN
        RAISE EXCEPTION 'asset % not found', p_asset_code
            USING ERRCODE = 'WL003', DETAIL = json_build_object('asset_code', p_asset_code)::text;
    END IF;
END;
$$;
