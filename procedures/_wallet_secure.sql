-- _wallet_secure: give every wallet object to wallet_owner and grant exactly the rights of the roles
-- (wallet-service migrate calls it after re-applying the functions, in the same transaction, so a new
-- function is never executable by PUBLIC, not even for a moment).
--   wallet_owner    owns every table, view, sequence, type and wallet function
--   wallet_app      EXECUTE on the public wallet_* functions, except those that mint or manage access
--                   (wallet_seed, wallet_shard_seed, wallet_key_create/list/revoke, wallet_grant_role); no table
--                   privilege at all
--   wallet_support  wallet_app's rights plus SELECT on every table and view
--   PUBLIC          nothing
-- Arguments: none. Returns: nothing. Raises: whatever ALTER ... OWNER raises for a caller that is neither
--   a superuser nor a member of wallet_owner.
CREATE OR REPLACE FUNCTION _wallet_secure()
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.oid::regclass AS name, c.relkind
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'p')
           AND c.relname !~ '^_?yoyo'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                                       AND d.deptype = 'e')  -- an extension's (pgTAP...)
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO wallet_owner', r.name);  -- with its identity sequences
        EXECUTE format('REVOKE ALL ON TABLE %s FROM PUBLIC, wallet_app', r.name);
        EXECUTE format('GRANT SELECT ON TABLE %s TO wallet_support', r.name);
    END LOOP;

    FOR r IN
        SELECT t.oid::regtype AS name, t.typtype
          FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'c')
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
                                                       AND d.deptype = 'e')
           AND (t.typtype <> 'c' OR NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c'))
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO wallet_owner',
                       CASE r.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, r.name);
    END LOOP;

    FOR r IN
        SELECT p.oid::regprocedure AS name, p.proname
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'public' AND p.proname ~ '^_?wallet_'
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO wallet_owner', r.name);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, wallet_app, wallet_support', r.name);
        IF r.proname ~ '^wallet_' AND r.proname NOT IN ('wallet_seed', 'wallet_shard_seed', 'wallet_key_create',
                                                         'wallet_key_list', 'wallet_key_revoke', 'wallet_grant_role') THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO wallet_app', r.name);
        END IF;
    END LOOP;

    -- wallet_migrations (SECURITY DEFINER, so running as wallet_owner) reads yoyo's record of migrations
    GRANT SELECT ON TABLE _yoyo_migration TO wallet_owner;
END;
$$;
