-- wallet_shard_call: run one public wallet_* function on this shard for the PL/Proxy database, and return
-- its rows, or its error, as data. PL/Proxy rewrites a remote error (prefixes the message, turns the JSON
-- DETAIL into text, drops the column field) and drops its connection to the shard after every one: an error
-- returned as data keeps the connection, and the proxy re-raises it with every field as it was.
-- Runs with the caller's rights (SECURITY INVOKER: the proxy connects as the role that called it), so it can
-- run nothing the caller could not run directly: a role without EXECUTE on the function gets its 42501 back,
-- as data. (Hence it calls no private helper: wallet_app may execute none.)
-- The statement it runs:
--   SELECT coalesce(jsonb_agg(to_jsonb(r) - 'ordinality' ORDER BY r.ordinality), '[]')
--     FROM ROWS FROM (public.f(p_a => $1[1]::type, ...)) WITH ORDINALITY r
-- each argument cast from text to its declared type; function and argument names are checked against the
-- catalog and quoted, types come from the catalog, values are parameters: nothing the caller sends becomes
-- SQL. A function returning a scalar: "... r (value, ordinality)", so each row is {"value": ...}; one
-- returning a table of one column: that column's name instead of value.
-- Arguments: p_function (a public function's name: wallet_... but not wallet_shard_...), p_names and p_args
--   (its arguments by name, as text), p_reserved_key and p_reserved_owner (the proxy's key directory says
--   that key belongs to that player, not to the caller's player: the call runs only if the key is taken on
--   this shard, where the function itself then answers WL004 exactly as on one server; else WL004 at once,
--   see wallet_shard_reserved).
-- Returns: one row: result (a JSON array of the function's rows, each an object by column name) and NULL
--   error fields; or result NULL and sqlstate, message, detail, field of the error.
-- Raises: WL006 for an unknown function or argument name (a bug of the proxy, not of the caller).
CREATE OR REPLACE FUNCTION wallet_shard_call(p_function text, p_names text[], p_args text[],
                                             p_reserved_key text DEFAULT NULL, p_reserved_owner text DEFAULT NULL)
RETURNS TABLE (result jsonb, sqlstate text, message text, detail text, field text)
LANGUAGE plpgsql AS $$
DECLARE
    v_argument_names text[];
    v_types oid[];
    v_modes "char"[];
    v_inputs smallint;
    v_returns oid;
    v_arguments text[] := ARRAY[]::text[];
    v_position integer;
    v_problem text;
    v_field_name text := 'function';
    v_call text;
    v_result jsonb;
    v_state text;
    v_message text;
    v_detail text;
    v_field text;
BEGIN
    SELECT p.proargnames, p.proargtypes::oid[], p.proargmodes, p.pronargs, p.prorettype
      INTO v_argument_names, v_types, v_modes, v_inputs, v_returns
      FROM pg_proc p
     WHERE p.proname = p_function::name AND p.pronamespace = 'public'::regnamespace AND p.prokind = 'f'
       AND p_function ~ '^wallet_' AND p_function !~ '^wallet_shard_';  -- (proname = name: pg_proc's index)
    IF NOT FOUND THEN
        v_problem := format('%s is no public wallet function', coalesce(p_function, 'NULL'));
    END IF;
    FOR i IN 1 .. coalesce(cardinality(p_names), 0) LOOP
        EXIT WHEN v_problem IS NOT NULL;
        v_position := array_position(v_argument_names, p_names[i]);
        IF v_position IS NULL OR v_position > v_inputs THEN
            v_problem := format('%s has no argument %s', p_function, coalesce(p_names[i], 'NULL'));
            v_field_name := 'arguments';
        ELSE  -- (proargtypes, an oidvector, is indexed from 0)
            v_arguments := v_arguments || format('%I => $1[%s]::%s', p_names[i], i,
                                                 format_type(v_types[v_position - 1], NULL));
        END IF;
    END LOOP;
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'invalid argument %: %', v_field_name, v_problem
            USING ERRCODE = 'WL006', COLUMN = v_field_name,
                  DETAIL = json_build_object('field', v_field_name, 'message', v_problem)::text;
    END IF;
    v_call := format('SELECT coalesce(jsonb_agg(to_jsonb(r) - %L ORDER BY r.ordinality), %L) '
                     'FROM ROWS FROM (public.%I(%s)) WITH ORDINALITY r%s',
                     'ordinality', '[]', p_function, array_to_string(v_arguments, ', '),
                     CASE WHEN (SELECT t.typtype::text FROM pg_type t WHERE t.oid = v_returns) IN ('b', 'e', 'd')
                          THEN format(' (%I, ordinality)', coalesce(
                                   (SELECT v_argument_names[i] FROM generate_subscripts(v_modes, 1) i
                                     WHERE v_modes[i] IN ('o'::"char", 't'::"char")), 'value'))
                          ELSE '' END);
    BEGIN
        IF p_reserved_key IS NOT NULL THEN
            PERFORM wallet_shard_reserved(p_reserved_key, p_reserved_owner);
        END IF;
        EXECUTE v_call INTO v_result USING p_args;
        RETURN QUERY SELECT v_result, NULL::text, NULL::text, NULL::text, NULL::text;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL, v_field = COLUMN_NAME;
        RETURN QUERY SELECT NULL::jsonb, v_state, v_message, nullif(v_detail, ''), nullif(v_field, '');
    END;
END;
$$;
