-- wallet_migrations: the migrations applied to this database, so that a service holding only wallet_app
-- can tell whether the schema is the one it was built for (it reads no table itself).
-- Arguments: none.
-- Returns: one row per applied migration id (e.g. 0003.limits), in id order.
-- Raises: nothing.
-- Example: SELECT * FROM wallet_migrations();
CREATE OR REPLACE FUNCTION wallet_migrations()
RETURNS TABLE (migration_id text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT m.migration_id::text FROM _yoyo_migration m ORDER BY m.migration_id;
END;
$$;
