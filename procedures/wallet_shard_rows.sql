-- wallet_shard_rows: every row of one ledger table of this shard as JSON, for the PL/Proxy database's
-- read-only views (one per table, the union of every shard's rows: support staff read the whole ledger on the
-- proxy as they would on one server). Runs with the caller's rights: a role without SELECT on the table
-- (wallet_app) gets permission denied.
-- Arguments: p_table (a table of the public schema). Returns: SETOF jsonb, one object per row.
-- Raises: WL006 for a name that is no such table (raised here, as _wallet_invalid_argument would: the caller
--   may execute no private helper).
CREATE OR REPLACE FUNCTION wallet_shard_rows(p_table text)
RETURNS SETOF jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class c
                    WHERE c.relname = p_table AND c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
                      AND c.relname !~ '^_?yoyo') THEN
        RAISE EXCEPTION 'invalid argument table: must be the name of a ledger table'
            USING ERRCODE = 'WL006', COLUMN = 'table',
                  DETAIL = json_build_object('field', 'table', 'message', 'must be the name of a ledger table')::text;
    END IF;
    RETURN QUERY EXECUTE format('SELECT to_jsonb(t) FROM public.%I t', p_table);
END;
$$;
