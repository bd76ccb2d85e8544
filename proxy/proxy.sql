-- The PL/Proxy database: what `wallet-service shards init` installs besides the cluster definition and the
-- generated wrappers (service/shards.py). Every public function of a shard has a function of the same name and
-- signature here; most are generated from the shards' catalog and routed by the rules in service/shards.py,
-- through the helpers below. The ones written out here need more than routing: the key directory
-- (postings, reversals, lookups by reference id), the event feed, verify, seed and batches.
-- Re-run in one transaction by every `shards init`.

-- ---------------------------------------------------------------- calls to the shards (PL/Proxy)
-- PL/Proxy connects to a shard as the role calling here (current_user), so each shard checks the caller's own
-- rights. Every call returns its errors as data (wallet_shard_call and friends): PL/Proxy would rewrite a
-- remote error's fields and drop its connection to the shard.

-- one function on the partition of p_hash (hashtext(player) or hashtext(reference id); 0: partition 0)
CREATE FUNCTION _wallet_px_call(p_hash integer, p_function text, p_names text[], p_args text[],
                                p_reserved_key text, p_reserved_owner text)
RETURNS TABLE (result jsonb, sqlstate text, message text, detail text, field text)
LANGUAGE plproxy AS $$
    CLUSTER 'wallets';
    RUN ON p_hash;
    SELECT * FROM wallet_shard_call(p_function, p_names, p_args, p_reserved_key, p_reserved_owner);
$$;

-- one function on every shard, in parallel: one row per shard
CREATE FUNCTION _wallet_px_call_all(p_function text, p_names text[], p_args text[])
RETURNS TABLE (result jsonb, sqlstate text, message text, detail text, field text)
LANGUAGE plproxy AS $$
    CLUSTER 'wallets';
    RUN ON ALL;
    SELECT * FROM wallet_shard_call(p_function, p_names, p_args, NULL, NULL);
$$;

-- the key directory: claim each key for its player on the shard of the key's partition
CREATE FUNCTION _wallet_px_claim(p_reference_ids text[], p_user_ids text[])
RETURNS TABLE (reference_id text, user_id text)
LANGUAGE plproxy AS $$
    CLUSTER 'wallets';
    SPLIT p_reference_ids, p_user_ids;
    RUN ON hashtext(p_reference_ids);
    SELECT * FROM wallet_shard_claim(p_reference_ids, p_user_ids);
$$;

-- the key directory: whose is this key (NULL: nobody's)
CREATE FUNCTION _wallet_px_owner(p_reference_id text)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'wallets';
    RUN ON hashtext(p_reference_id);
    SELECT wallet_shard_owner(p_reference_id);
$$;

-- a batch split by player: each partition's operations, in batch order, in one call
CREATE FUNCTION _wallet_px_batch(p_user_ids text[], p_operations jsonb[], p_ordinals integer[], p_actor text)
RETURNS TABLE (result jsonb, sqlstate text, message text, detail text, field text)
LANGUAGE plproxy AS $$
    CLUSTER 'wallets';
    SPLIT p_user_ids, p_operations, p_ordinals;
    RUN ON hashtext(p_user_ids);
    SELECT * FROM wallet_shard_batch(p_user_ids, p_operations, p_ordinals, p_actor);
$$;

CREATE FUNCTION _wallet_px_verify()
RETURNS TABLE (invariant text, subject text, detail text)
LANGUAGE plproxy AS $$
    CLUSTER 'wallets';
    RUN ON ALL;
    SELECT * FROM wallet_shard_verify();
$$;

CREATE FUNCTION _wallet_px_verify_anchor(p_heads jsonb)
RETURNS TABLE (invariant text, subject text, detail text)
LANGUAGE plproxy AS $$
    CLUSTER 'wallets';
    RUN ON ALL;
    SELECT * FROM wallet_shard_verify_anchor(p_heads);
$$;

CREATE FUNCTION _wallet_px_events(p_after jsonb, p_limit integer)
RETURNS TABLE (shard text, event_id bigint, event jsonb)
LANGUAGE plproxy AS $$
    CLUSTER 'wallets';
    RUN ON ALL;
    SELECT * FROM wallet_shard_events(p_after, p_limit);
$$;

CREATE FUNCTION _wallet_px_seed()
RETURNS TABLE (reference_id text, user_id text, posting jsonb)
LANGUAGE plproxy AS $$
    CLUSTER 'wallets';
    RUN ON ALL;
    SELECT * FROM wallet_shard_seed();
$$;

CREATE FUNCTION _wallet_px_call_rows(p_table text)
RETURNS SETOF jsonb
LANGUAGE plproxy AS $$
    CLUSTER 'wallets';
    RUN ON ALL;
    SELECT * FROM wallet_shard_rows(p_table);
$$;

-- ---------------------------------------------------------------- errors

-- _wallet_px_reraise: raise a shard's error here with its SQLSTATE, message, DETAIL and column as they were.
CREATE FUNCTION _wallet_px_reraise(p_state text, p_message text, p_detail text, p_field text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_detail IS NOT NULL AND p_field IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = p_state, MESSAGE = p_message, DETAIL = p_detail, COLUMN = p_field;
    ELSIF p_detail IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = p_state, MESSAGE = p_message, DETAIL = p_detail;
    ELSIF p_field IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = p_state, MESSAGE = p_message, COLUMN = p_field;
    ELSE
        RAISE EXCEPTION USING ERRCODE = p_state, MESSAGE = p_message;
    END IF;
END;
$$;

-- _wallet_px_unreachable: PL/Proxy's own errors are XX000 (internal_error); the ones that say a shard could not
-- be reached or went away become 08006 (connection_failure: the service answers 503 SERVICE_UNAVAILABLE), the
-- rest are raised as they are (a bug here, not the caller's).
CREATE FUNCTION _wallet_px_unreachable(p_message text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_message ~* '(connect|PQconnectPoll|server closed|terminat|timeout|could not send|lost)' THEN
        RAISE EXCEPTION 'a shard is unavailable: %', p_message USING ERRCODE = '08006';
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'XX000', MESSAGE = p_message;
END;
$$;

-- ---------------------------------------------------------------- routing

-- _wallet_px_run: call p_function on p_hash's partition; its result (JSON array of rows), or its error raised.
CREATE FUNCTION _wallet_px_run(p_hash integer, p_function text, p_names text[], p_args text[],
                               p_reserved_key text DEFAULT NULL, p_reserved_owner text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_message text;
BEGIN
    BEGIN
        SELECT * INTO r FROM _wallet_px_call(p_hash, p_function, p_names, p_args, p_reserved_key, p_reserved_owner);
    EXCEPTION WHEN internal_error THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
        PERFORM _wallet_px_unreachable(v_message);
    END;
    IF r.sqlstate IS NOT NULL THEN
        PERFORM _wallet_px_reraise(r.sqlstate, r.message, r.detail, r.field);
    END IF;
    RETURN r.result;
END;
$$;

-- _wallet_px_run_all: call p_function on every shard; one result per shard, or the first error raised.
CREATE FUNCTION _wallet_px_run_all(p_function text, p_names text[], p_args text[])
RETURNS SETOF jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_rows jsonb;
    r jsonb;
    v_message text;
BEGIN
    BEGIN
        SELECT jsonb_agg(to_jsonb(c)) INTO v_rows FROM _wallet_px_call_all(p_function, p_names, p_args) c;
    EXCEPTION WHEN internal_error THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
        PERFORM _wallet_px_unreachable(v_message);
    END;
    FOR r IN SELECT x FROM jsonb_array_elements(v_rows) x WHERE x ->> 'sqlstate' IS NOT NULL LIMIT 1 LOOP
        PERFORM _wallet_px_reraise(r ->> 'sqlstate', r ->> 'message', r ->> 'detail', r ->> 'field');
    END LOOP;
    RETURN QUERY SELECT x -> 'result' FROM jsonb_array_elements(v_rows) x;
END;
$$;

-- _wallet_px_by_user: a call about one player: on the player's shard.
CREATE FUNCTION _wallet_px_by_user(p_user_id text, p_function text, p_names text[], p_args text[])
RETURNS jsonb
LANGUAGE sql AS $$
    SELECT _wallet_px_run(coalesce(hashtext(p_user_id), 0), p_function, p_names, p_args);
$$;

-- _wallet_px_posting: a posting (or hold) of p_user_id under p_reference_id: claim the key in the directory,
-- then post on the player's shard. A key the directory gives to another player goes to that player's shard
-- (wallet_shard_reserved): there the function answers WL004 as one server would, naming the transaction or
-- hold that holds the key; or, when nothing was posted with it, WL004 "reserved". A crash between the claim
-- and the posting leaves the key claimed for the player: the retry with the same key finds it so and posts.
CREATE FUNCTION _wallet_px_posting(p_user_id text, p_reference_id text, p_function text, p_names text[],
                                   p_args text[])
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_owner text;
    v_message text;
BEGIN
    IF p_reference_id IS NOT NULL AND p_user_id IS NOT NULL THEN
        BEGIN
            SELECT c.user_id INTO v_owner FROM _wallet_px_claim(ARRAY[p_reference_id], ARRAY[p_user_id]) c;
        EXCEPTION WHEN internal_error THEN
            GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
            PERFORM _wallet_px_unreachable(v_message);
        END;
    END IF;
    IF v_owner IS NULL OR v_owner = p_user_id THEN
        RETURN _wallet_px_run(coalesce(hashtext(p_user_id), 0), p_function, p_names, p_args);
    END IF;
    RETURN _wallet_px_run(hashtext(v_owner), p_function, p_names, p_args, p_reference_id, v_owner);
END;
$$;

-- _wallet_px_owner_of: the directory's player of a key, with an unreachable shard as 08006.
CREATE FUNCTION _wallet_px_owner_of(p_reference_id text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_message text;
BEGIN
    IF p_reference_id IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN _wallet_px_owner(p_reference_id);
EXCEPTION WHEN internal_error THEN
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
    PERFORM _wallet_px_unreachable(v_message);
END;
$$;

-- _wallet_px_by_reference: a call about the transaction or hold of a key: on its player's shard (the
-- directory says which); a key nobody claimed goes to its own partition's shard, which answers "not found"
-- as one server would.
CREATE FUNCTION _wallet_px_by_reference(p_reference_id text, p_function text, p_names text[], p_args text[])
RETURNS jsonb
LANGUAGE sql AS $$
    SELECT _wallet_px_run(coalesce(hashtext(coalesce(_wallet_px_owner_of(p_reference_id), p_reference_id)), 0),
                          p_function, p_names, p_args);
$$;

-- _wallet_px_reverse: a reversal: on the shard of the original's player, its own key claimed for that player.
CREATE FUNCTION _wallet_px_reverse(p_reference_id text, p_original_reference_id text, p_function text,
                                   p_names text[], p_args text[])
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_owner text := _wallet_px_owner_of(p_original_reference_id);
BEGIN
    IF v_owner IS NULL THEN
        RETURN _wallet_px_run(coalesce(hashtext(p_original_reference_id), 0), p_function, p_names, p_args);
    END IF;
    RETURN _wallet_px_posting(v_owner, p_reference_id, p_function, p_names, p_args);
END;
$$;

-- _wallet_px_rows: every shard's rows of a table (the proxy's read-only views), an unreachable shard as 08006.
CREATE FUNCTION _wallet_px_rows(p_table text)
RETURNS SETOF jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_message text;
BEGIN
    RETURN QUERY SELECT * FROM _wallet_px_call_rows(p_table);
EXCEPTION WHEN internal_error THEN
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
    PERFORM _wallet_px_unreachable(v_message);
END;
$$;

-- ---------------------------------------------------------------- verify

-- wallet_verify: every shard's wallet_verify() (each subject prefixed with its shard's name) plus each shard's
-- own invariants (wallet_shard_verify: its identity, every player at home), plus the layout's: every shard
-- answers with the identity shards init gave it.
CREATE FUNCTION wallet_verify()
RETURNS TABLE (invariant text, subject text, detail text)
LANGUAGE plpgsql AS $$
DECLARE
    v_message text;
BEGIN
    RETURN QUERY SELECT * FROM _wallet_px_verify();
EXCEPTION WHEN internal_error THEN
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
    PERFORM _wallet_px_unreachable(v_message);
END;
$$;

CREATE FUNCTION wallet_verify_anchor(p_heads jsonb)
RETURNS TABLE (invariant text, subject text, detail text)
LANGUAGE plpgsql AS $$
DECLARE
    v_message text;
BEGIN
    RETURN QUERY SELECT * FROM _wallet_px_verify_anchor(p_heads);
EXCEPTION WHEN internal_error THEN
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
    PERFORM _wallet_px_unreachable(v_message);
END;
$$;

-- ---------------------------------------------------------------- seed

-- wallet_seed: every shard seeds its own demo players (wallet_shard_seed), then their keys are claimed in the
-- directory. For the owner only, as on one server (the shards check it).
CREATE FUNCTION wallet_seed()
RETURNS SETOF wallet_posting
LANGUAGE plpgsql AS $$
DECLARE
    v_rows jsonb;
BEGIN
    SELECT coalesce(jsonb_agg(to_jsonb(s)), '[]') INTO v_rows FROM _wallet_px_seed() s;
    PERFORM _wallet_px_claim(ARRAY(SELECT x ->> 'reference_id' FROM jsonb_array_elements(v_rows) x),
                             ARRAY(SELECT x ->> 'user_id' FROM jsonb_array_elements(v_rows) x));
    RETURN QUERY SELECT (jsonb_populate_record(NULL::wallet_posting, x -> 'posting')).*
                   FROM jsonb_array_elements(v_rows) x;
END;
$$;

-- ---------------------------------------------------------------- events

-- The feed through the proxy: every shard numbers its own events (1, 2, 3... per shard); the proxy's
-- sequencer pulls each shard's new events after the position it has reached there and numbers them again,
-- 1, 2, 3... over all shards, in one transaction (proxy_events, proxy_event_positions). A shard's events keep
-- their order; a reader resuming after the last id it saw misses nothing, as on one server.
CREATE TABLE IF NOT EXISTS proxy_events (
    id             bigint PRIMARY KEY,
    shard          text NOT NULL,
    shard_event_id bigint NOT NULL,
    user_id        text NOT NULL,
    event          jsonb NOT NULL,
    CONSTRAINT proxy_events_shard_event_key UNIQUE (shard, shard_event_id)
);
CREATE INDEX IF NOT EXISTS proxy_events_user_id ON proxy_events (user_id, id);
CREATE TABLE IF NOT EXISTS proxy_event_positions (
    shard         text PRIMARY KEY,
    last_event_id bigint NOT NULL
);

-- wallet_events_sequence: as on one server (same arguments, result, lock and NOTIFY), over all shards.
-- SECURITY DEFINER (it writes the proxy's tables): its calls to the shards go as wallet_owner's user mapping.
CREATE FUNCTION wallet_events_sequence(p_max integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_last bigint;
    v_moved integer;
    v_message text;
    v_fetched jsonb;
BEGIN
    IF p_max IS NULL OR p_max NOT BETWEEN 1 AND 10000 THEN
        PERFORM _wallet_invalid_argument('max', 'must be an integer from 1 to 10000');
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' OR current_setting('transaction_read_only') = 'on' THEN
        RETURN 0;
    END IF;
    IF NOT pg_try_advisory_xact_lock(1163284052, 0) THEN
        RETURN 0;
    END IF;
    BEGIN
        SELECT coalesce(jsonb_agg(to_jsonb(f)), '[]') INTO v_fetched
          FROM _wallet_px_events((SELECT coalesce(jsonb_object_agg(p.shard, p.last_event_id), '{}')
                                    FROM proxy_event_positions p),
                                 least(p_max, _wallet_max_page())) f;
    EXCEPTION WHEN internal_error THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
        PERFORM _wallet_px_unreachable(v_message);
    END;
    SELECT coalesce(max(e.id), 0) INTO v_last FROM proxy_events e;
    INSERT INTO proxy_events (id, shard, shard_event_id, user_id, event)
    SELECT v_last + row_number() OVER (ORDER BY (f ->> 'event_id')::bigint, f ->> 'shard'),
           f ->> 'shard', (f ->> 'event_id')::bigint, f -> 'event' ->> 'user_id', f -> 'event'
      FROM jsonb_array_elements(v_fetched) f;
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    IF v_moved = 0 THEN
        RETURN 0;
    END IF;
    INSERT INTO proxy_event_positions AS p (shard, last_event_id)
    SELECT f ->> 'shard', max((f ->> 'event_id')::bigint) FROM jsonb_array_elements(v_fetched) f GROUP BY 1
    ON CONFLICT (shard) DO UPDATE SET last_event_id = excluded.last_event_id;
    PERFORM pg_notify('wallet_events', (v_last + v_moved)::text);
    RETURN v_moved;
END;
$$;

-- wallet_events: as on one server (same arguments, rows, errors), over all shards.
CREATE FUNCTION wallet_events(p_after bigint DEFAULT 0, p_user_id text DEFAULT NULL, p_limit integer DEFAULT NULL)
RETURNS TABLE (event_id bigint, transaction_id uuid, reference_id text, type transaction_type, user_id text,
               legs jsonb, created_at timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_newest bigint;
    v_limit integer := _wallet_check_events_call(p_after, p_user_id, p_limit);
BEGIN

    PERFORM wallet_events_sequence();
    SELECT coalesce(max(e.id), 0) INTO v_newest FROM proxy_events e;
    IF p_after > v_newest THEN
        PERFORM _wallet_invalid_argument('last_event_id',
            format('is past the newest event (%s): it is no event id of this ledger', v_newest));
    END IF;
    RETURN QUERY
        SELECT e.id, (e.event ->> 'transaction_id')::uuid, e.event ->> 'reference_id',
               (e.event ->> 'type')::transaction_type, e.user_id, e.event -> 'legs',
               (e.event ->> 'created_at')::timestamptz
          FROM proxy_events e
         WHERE e.id > p_after AND (p_user_id IS NULL OR e.user_id = p_user_id)
         ORDER BY e.id
         LIMIT v_limit;
END;
$$;

-- ---------------------------------------------------------------- batches

-- wallet_post_batch: as on one server (same arguments, rows, errors), split by player: the keys claimed in
-- the directory first (all in one call per shard), then every partition's operations in one call
-- (wallet_shard_batch), all shards in parallel. An operation whose key the directory gives to another player
-- goes, alone, to that player's shard afterwards (its answer: WL004, as in _wallet_px_posting). Not atomic
-- across shards: an error of the whole call on one shard (e.g. 40001) is raised after the others committed;
-- the same batch again is safe (what committed replays).
CREATE FUNCTION wallet_post_batch(p_operations jsonb, p_actor text DEFAULT NULL)
RETURNS TABLE (ordinal integer, transaction_id uuid, user_id text, asset_code text, amount bigint, balance bigint,
               transaction_type transaction_type, created_at timestamptz, replayed boolean, sqlstate text,
               message text, detail jsonb, field text)
LANGUAGE plpgsql AS $$
DECLARE
    v_items jsonb;
    v_owners jsonb;
    v_results jsonb := '[]';
    v_part jsonb;
    r record;
    v_message text;
BEGIN
    PERFORM _wallet_check_batch_call(p_operations, p_actor);

    -- each operation, its player and key when they are strings
    SELECT jsonb_agg(jsonb_build_object(
               'n', x.n, 'op', x.op,
               'user_id', CASE WHEN jsonb_typeof(x.op -> 'user_id') = 'string' THEN x.op ->> 'user_id' END,
               'reference_id', CASE WHEN jsonb_typeof(x.op -> 'reference_id') = 'string' THEN x.op ->> 'reference_id' END)
           ORDER BY x.n)
      INTO v_items
      FROM jsonb_array_elements(p_operations) WITH ORDINALITY AS x (op, n);

    BEGIN
        SELECT coalesce(jsonb_object_agg(c.reference_id, c.user_id), '{}') INTO v_owners
          FROM _wallet_px_claim(
                   ARRAY(SELECT i ->> 'reference_id' FROM jsonb_array_elements(v_items) i
                          WHERE i ->> 'reference_id' IS NOT NULL AND i ->> 'user_id' IS NOT NULL ORDER BY (i ->> 'n')::int),
                   ARRAY(SELECT i ->> 'user_id' FROM jsonb_array_elements(v_items) i
                          WHERE i ->> 'reference_id' IS NOT NULL AND i ->> 'user_id' IS NOT NULL ORDER BY (i ->> 'n')::int)) c;
        -- every operation whose key is its player's (or that has none, or no player: the shard refuses it)
        FOR r IN
            SELECT b.result, b.sqlstate, b.message, b.detail, b.field
              FROM _wallet_px_batch(
                       ARRAY(SELECT coalesce(i ->> 'user_id', '') FROM jsonb_array_elements(v_items) i
                              WHERE (v_owners ->> (i ->> 'reference_id')) IS NULL
                                 OR v_owners ->> (i ->> 'reference_id') = i ->> 'user_id'
                              ORDER BY (i ->> 'n')::int),
                       ARRAY(SELECT i -> 'op' FROM jsonb_array_elements(v_items) i
                              WHERE (v_owners ->> (i ->> 'reference_id')) IS NULL
                                 OR v_owners ->> (i ->> 'reference_id') = i ->> 'user_id'
                              ORDER BY (i ->> 'n')::int),
                       ARRAY(SELECT (i ->> 'n')::int FROM jsonb_array_elements(v_items) i
                              WHERE (v_owners ->> (i ->> 'reference_id')) IS NULL
                                 OR v_owners ->> (i ->> 'reference_id') = i ->> 'user_id'
                              ORDER BY (i ->> 'n')::int),
                       p_actor) b
        LOOP
            IF r.sqlstate IS NOT NULL THEN
                PERFORM _wallet_px_reraise(r.sqlstate, r.message, r.detail, r.field);
            END IF;
            v_results := v_results || r.result;
        END LOOP;
    EXCEPTION WHEN internal_error THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
        PERFORM _wallet_px_unreachable(v_message);
    END;

    -- the operations whose key is another player's: each alone, on that player's shard
    FOR r IN
        SELECT (i ->> 'n')::int AS n, i -> 'op' AS op, v_owners ->> (i ->> 'reference_id') AS owner,
               i ->> 'reference_id' AS reference_id
          FROM jsonb_array_elements(v_items) i
         WHERE v_owners ->> (i ->> 'reference_id') <> i ->> 'user_id'
         ORDER BY 1
    LOOP
        BEGIN
            v_part := _wallet_px_run(hashtext(r.owner), 'wallet_post_batch', ARRAY['p_operations', 'p_actor'],
                                     ARRAY[jsonb_build_array(r.op)::text, p_actor], r.reference_id, r.owner);
            v_results := v_results || jsonb_build_array((v_part -> 0) || jsonb_build_object('ordinal', r.n));
        EXCEPTION WHEN SQLSTATE 'WL004' THEN
            GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_part = PG_EXCEPTION_DETAIL;
            v_results := v_results || jsonb_build_array(jsonb_build_object(
                'ordinal', r.n, 'sqlstate', 'WL004', 'message', v_message, 'detail', v_part));
        END;
    END LOOP;

    RETURN QUERY
        SELECT x.* FROM jsonb_to_recordset(v_results) AS x (
                   ordinal integer, transaction_id uuid, user_id text, asset_code text, amount bigint, balance bigint,
                   transaction_type transaction_type, created_at timestamptz, replayed boolean, sqlstate text,
                   message text, detail jsonb, field text)
         ORDER BY x.ordinal;
END;
$$;
