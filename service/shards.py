"""Scale-out: N shard databases behind one PL/Proxy database (`wallet-service shards init`).

A shard is an ordinary wallet database (every migration, every function) that holds some players: players are
spread by hashtext(user_id) over a power-of-two number of partitions (PL/Proxy routes a call to partition
hashtext(user_id) & (partitions - 1)), and partition p lives on shard p mod N. Each shard records its name and
partitions (shard_identity, sql/0008.shards.sql), so `wallet_verify()` can check that each of its players is
at home there.

The proxy database holds no ledger: for every public function of a shard it has one of the same name and
signature that routes the call (proxy/proxy.sql holds the routing helpers and the functions that need more
than routing; the rest are generated here from the shards' catalog by the rules of ROUTES, so a function
added later without a rule makes `shards init` fail rather than go unrouted). It also has one read-only view
per ledger table, the union of every shard's rows, for support staff and tests (`SELECT count(*) FROM
transactions` reads all shards; writes are the shards' own business).

`init` is re-runnable: it migrates every shard (upgrades after new migrations), keeps each shard's recorded
partitions, and re-installs the proxy's functions, types and views in one transaction (its event tables
keep their rows).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from service import schema

log = logging.getLogger(__name__)

CLUSTER = "wallets"  # the PL/Proxy cluster (a foreign server of the plproxy wrapper)
DEFAULT_PARTITIONS = 64

# How the proxy routes each public function of a shard:
#   posting     claim the key (p_reference_id) for the player in the key directory, then on the player's shard
#   user        on the shard of p_user_id
#   reference   on the shard of the player the directory gives p_reference_id (lookups, captures, voids)
#   reverse     on the shard of the original's player, the reversal's own key claimed for that player
#   catalog     on partition 0's shard: API keys live there, once
#   all_concat  on every shard, every row
#   all_sum     on every shard, the sum of the (integer) results
#   all_common  on every shard, the rows every shard returned (migrations: applied everywhere)
#   written     written out in proxy/proxy.sql (verify, seed, events, batches)
#   none        not on the proxy (wallet_grant_role: roles belong to each cluster; `shards init` and
#               `migrate --app-login` on each shard grant them)
ROUTES: dict[str, str] = {
    "wallet_topup": "posting",
    "wallet_bonus": "posting",
    "wallet_spend": "posting",
    "wallet_purchase": "posting",
    "wallet_hold": "posting",
    "wallet_reverse": "reverse",
    "wallet_balances": "user",
    "wallet_history": "user",
    "wallet_transaction": "reference",
    "wallet_hold_status": "reference",
    "wallet_capture": "reference",
    "wallet_void": "reference",
    "wallet_authenticate": "catalog",
    "wallet_key_create": "catalog",
    "wallet_key_list": "catalog",
    "wallet_key_revoke": "catalog",
    "wallet_chain_heads": "all_concat",
    "wallet_expire_holds": "all_sum",
    "wallet_migrations": "all_common",
    "wallet_verify": "written",
    "wallet_verify_anchor": "written",
    "wallet_seed": "written",
    "wallet_events": "written",
    "wallet_events_sequence": "written",
    "wallet_post_batch": "written",
    "wallet_grant_role": "none",
}

# Pure helpers the proxy's own functions call, copied from a shard so that their rules and messages are the
# shards' (the argument checks of events and batches).
COPIED_HELPERS = (
    "_wallet_max_id_length",
    "_wallet_max_page",
    "_wallet_max_batch",
    "_wallet_printable",
    "_wallet_invalid_argument",
    "_wallet_check_id",
    "_wallet_check_events_call",
    "_wallet_check_batch_call",
)

# Public functions of the proxy that wallet_app may not execute (as on one server, _wallet_secure).
OWNER_ONLY = ("wallet_seed", "wallet_key_create", "wallet_key_list", "wallet_key_revoke")


class ShardError(Exception):
    """A layout `shards init` refuses (with a message for the operator)."""


@dataclass(frozen=True)
class Shard:
    name: str
    url: str
    partitions: list[int]


def proxy_sql() -> str:
    return (schema.resource_dir("proxy") / "proxy.sql").read_text()


def conninfo(url: str) -> str:
    """What the proxy connects to a shard with: the URL without user and password (PL/Proxy then connects as
    the role calling the proxy, so every shard checks the caller's own rights)."""
    params = conninfo_to_dict(url)
    params.pop("user", None)
    params.pop("password", None)
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def layout(shard_urls: Sequence[str], partitions: int) -> list[Shard]:
    """Partition p on shard p mod N, the shards named s0, s1, ... in the order given."""
    count = len(shard_urls)
    if count == 0:
        raise ShardError("give at least one --shard")
    if partitions < count or partitions & (partitions - 1):
        raise ShardError(f"--partitions must be a power of two and at least the number of shards ({count})")
    if len(set(shard_urls)) != count:
        raise ShardError("the same shard is given twice")
    return [Shard(f"s{i}", url, [p for p in range(partitions) if p % count == i]) for i, url in enumerate(shard_urls)]


# ---------------------------------------------------------------- shards


def prepare_shard(shard: Shard, partition_count: int) -> Shard:
    """Migrate a shard and record its identity, or keep the one it has (a re-run, or partitions moved by hand
    when a shard was split: README, "Adding a shard")."""
    schema.migrate(shard.url)
    with psycopg.connect(shard.url, autocommit=True) as conn:
        row = conn.execute("SELECT name, partition_count, partitions FROM shard_identity").fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO shard_identity (name, partition_count, partitions) VALUES (%s, %s, %s)",
                (shard.name, partition_count, shard.partitions),
            )
            return shard
    name, count, parts = row
    if count != partition_count:
        raise ShardError(f"shard {shard.url!r} has {count} partitions recorded, not {partition_count}")
    return Shard(name, shard.url, sorted(parts))


def check_layout(shards: Sequence[Shard], partition_count: int) -> None:
    seen: dict[int, str] = {}
    for shard in shards:
        for p in shard.partitions:
            if p in seen:
                raise ShardError(f"partition {p} is recorded on both {seen[p]} and {shard.name}")
            seen[p] = shard.name
    missing = sorted(set(range(partition_count)) - set(seen))
    if missing:
        raise ShardError(f"no shard holds partition(s) {missing}")
    if len({s.name for s in shards}) != len(shards):
        raise ShardError("two shards have the same name")


# ---------------------------------------------------------------- the proxy


@dataclass(frozen=True)
class Function:
    name: str
    arguments: str  # pg_get_function_arguments: with defaults
    result: str  # pg_get_function_result
    returns_set: bool
    return_kind: str  # b base, c composite, e enum, d domain, p pseudo (record: RETURNS TABLE)
    return_type: str
    inputs: list[tuple[str, str]]  # (name, type) of the input arguments
    table: list[tuple[str, str]]  # (name, type) of RETURNS TABLE columns


CATALOG = """
SELECT p.proname::text, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), p.proretset,
       t.typtype::text, format_type(p.prorettype, NULL),
       ARRAY(SELECT ARRAY[p.proargnames[i + 1], format_type(p.proargtypes[i], NULL)]
               FROM generate_series(0, p.pronargs - 1) i ORDER BY i),
       ARRAY(SELECT ARRAY[p.proargnames[i], format_type(p.proallargtypes[i], NULL)]
               FROM generate_series(1, coalesce(cardinality(p.proallargtypes), 0)) i
              WHERE p.proargmodes[i] = 't' ORDER BY i)
  FROM pg_proc p JOIN pg_type t ON t.oid = p.prorettype
 WHERE p.pronamespace = 'public'::regnamespace AND p.proname ~ '^wallet_' AND p.proname !~ '^wallet_shard_'
 ORDER BY 1
"""


def functions(conn: psycopg.Connection) -> list[Function]:
    return [
        Function(name, args, result, retset, kind, rettype, [tuple(x) for x in inputs], [tuple(x) for x in table])
        for name, args, result, retset, kind, rettype, inputs, table in conn.execute(CATALOG)
    ]


def _text(name: str, type_: str) -> str:
    """An argument as text for wallet_shard_call, which casts it back (timestamps in ISO 8601 whatever the
    proxy session's DateStyle)."""
    if type_.startswith("timestamp"):
        return f"to_jsonb({name}) #>> '{{}}'"
    return f"{name}::text"


def wrapper(fn: Function) -> str:
    """The proxy function of one public shard function (routes other than `written` and `none`)."""
    route = ROUTES[fn.name]
    names = "ARRAY[" + ", ".join(f"'{n}'" for n, _ in fn.inputs) + "]::text[]"
    args = "ARRAY[" + ", ".join(_text(n, t) for n, t in fn.inputs) + "]::text[]"
    call = f"'{fn.name}', {names}, {args}"
    columns = ", ".join(f"{sql.Identifier(n).as_string(None)} {t}" for n, t in fn.table)
    if route.startswith("all_"):
        runs = f"_wallet_px_run_all({call})"
        if route == "all_sum":
            body = f"RETURN (SELECT sum((r -> 0 ->> 'value')::bigint) FROM {runs} r)::{fn.return_type};"
        elif route == "all_concat":
            body = f"RETURN QUERY SELECT x.* FROM {runs} r, jsonb_to_recordset(r) AS x ({columns});"
        else:  # all_common
            every = ", ".join(f"x.{sql.Identifier(n).as_string(None)}" for n, _ in fn.table)
            body = (
                f"RETURN QUERY WITH s AS MATERIALIZED (SELECT r FROM {runs} r) "
                f"SELECT {every} FROM s, jsonb_to_recordset(s.r) AS x ({columns}) "
                f"GROUP BY {every} HAVING count(*) = (SELECT count(*) FROM s) ORDER BY {every};"
            )
        return _function(fn, body)
    inputs = {n for n, _ in fn.inputs}
    if route == "posting":
        result = f"_wallet_px_posting(p_user_id, p_reference_id, {call})"
    elif route == "user":
        result = f"_wallet_px_by_user(p_user_id, {call})"
    elif route == "reference":
        result = f"_wallet_px_by_reference(p_reference_id, {call})"
    elif route == "reverse":
        result = f"_wallet_px_reverse(p_reference_id, p_original_reference_id, {call})"
    elif route == "catalog":
        result = f"_wallet_px_run(0, {call})"
    else:
        raise ShardError(f"unknown route {route!r} of {fn.name}")
    for needed in ("p_user_id", "p_reference_id", "p_original_reference_id"):
        if needed in result and needed not in inputs:
            raise ShardError(f"{fn.name} is routed as {route} but has no argument {needed}")
    if fn.table:
        ret = f"RETURN QUERY SELECT x.* FROM jsonb_to_recordset(v_result) AS x ({columns});"
    elif fn.return_kind == "c" and fn.returns_set:
        ret = f"RETURN QUERY SELECT * FROM jsonb_populate_recordset(NULL::{fn.return_type}, v_result);"
    elif fn.return_kind == "c":
        ret = f"RETURN jsonb_populate_record(NULL::{fn.return_type}, v_result -> 0);"
    elif fn.returns_set:
        ret = f"RETURN QUERY SELECT (x ->> 'value')::{fn.return_type} FROM jsonb_array_elements(v_result) x;"
    else:
        ret = f"RETURN (v_result -> 0 ->> 'value')::{fn.return_type};"
    return _function(fn, f"v_result := {result};\n    {ret}")


def _function(fn: Function, body: str) -> str:
    return (
        f"CREATE FUNCTION public.{fn.name}({fn.arguments})\nRETURNS {fn.result}\nLANGUAGE plpgsql AS $wrapper$\n"
        f"-- generated by wallet-service shards init (service/shards.py): route {ROUTES[fn.name]}\n"
        f"DECLARE\n    v_result jsonb;\nBEGIN\n    {body}\nEND;\n$wrapper$;\n"
    )


# the types shards init copies to the proxy (and drops there before a re-run): enums and standalone composite
# types of the public schema, not an extension's
OUR_TYPES = """(t.typtype = 'e'
            OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c'))
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
                                                   AND d.deptype = 'e')"""

TYPES = """
SELECT t.typname::text, t.typtype::text,
       ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
       ARRAY(SELECT ARRAY[a.attname::text,
                          format_type(CASE WHEN at.typtype = 'd' THEN at.typbasetype ELSE a.atttypid END, NULL)]
               FROM pg_attribute a JOIN pg_type at ON at.oid = a.atttypid
              WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
  FROM pg_type t
 WHERE t.typnamespace = 'public'::regnamespace
   AND {OUR_TYPES}
 ORDER BY t.typtype DESC, 1
"""

TABLES = """
SELECT c.relname::text,
       ARRAY(SELECT ARRAY[a.attname::text,
                          format_type(CASE WHEN at.typtype = 'd' THEN at.typbasetype ELSE a.atttypid END, NULL)]
               FROM pg_attribute a JOIN pg_type at ON at.oid = a.atttypid
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
  FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relname !~ '^_?yoyo'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                               AND d.deptype = 'e')
 ORDER BY 1
"""

PROXY_TABLES = ("proxy_events", "proxy_event_positions", "proxy_shards")


def proxy_install_sql(shard_conn: psycopg.Connection) -> list[str]:
    """Every statement that (re)creates the proxy's types, helpers, functions and views, from a shard's
    catalog (the cluster definition and grants come after)."""
    statements = []
    for name, kind, labels, attributes in shard_conn.execute(TYPES):
        ident = sql.Identifier(name).as_string(None)
        if kind == "e":
            statements.append(f"CREATE TYPE {ident} AS ENUM ({', '.join(sql.quote(x) for x in labels)})")
        else:
            attrs = ", ".join(f"{sql.Identifier(a).as_string(None)} {t}" for a, t in attributes)
            statements.append(f"CREATE TYPE {ident} AS ({attrs})")
    for helper in COPIED_HELPERS:
        row = shard_conn.execute(
            "SELECT pg_get_functiondef(p.oid) FROM pg_proc p "
            "WHERE p.proname = %s AND p.pronamespace = 'public'::regnamespace",
            (helper,),
        ).fetchone()
        if row is None:
            raise ShardError(f"the shard lacks {helper}(): is it migrated?")
        statements.append(row[0])
    statements.append(proxy_sql())
    for fn in functions(shard_conn):
        route = ROUTES.get(fn.name)
        if route is None:
            raise ShardError(f"no proxy route for {fn.name}(): add it to service/shards.py ROUTES")
        if route not in ("written", "none"):
            statements.append(wrapper(fn))
    for table, columns in shard_conn.execute(TABLES):
        ident = sql.Identifier(table).as_string(None)
        cols = ", ".join(f"{sql.Identifier(a).as_string(None)} {t}" for a, t in columns)
        statements.append(
            f"CREATE VIEW {ident} AS SELECT x.* FROM _wallet_px_rows({sql.quote(table)}) r, "
            f"jsonb_to_record(r) AS x ({cols})"
        )
    return statements


DROP_OURS = """
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.oid::regclass AS name FROM pg_class c
              WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'v' LOOP
        EXECUTE format('DROP VIEW %s CASCADE', r.name);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS name FROM pg_proc p
              WHERE p.pronamespace = 'public'::regnamespace AND p.proname ~ '^_?wallet_' LOOP
        EXECUTE format('DROP FUNCTION %s CASCADE', r.name);
    END LOOP;
    FOR r IN SELECT t.oid::regtype AS name FROM pg_type t
              WHERE t.typnamespace = 'public'::regnamespace
                AND {OUR_TYPES} LOOP
        EXECUTE format('DROP TYPE %s CASCADE', r.name);
    END LOOP;
END;
$$
"""

ROLES = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wallet_owner') THEN
        CREATE ROLE wallet_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wallet_app') THEN
        CREATE ROLE wallet_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wallet_support') THEN
        CREATE ROLE wallet_support NOLOGIN;
    END IF;
END;
$$
"""

SECURE = """
DO $$
DECLARE
    r record;
BEGIN
    GRANT wallet_app TO wallet_support;
    FOR r IN SELECT c.oid::regclass AS name FROM pg_class c
              WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v') LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO wallet_owner', r.name);
        EXECUTE format('REVOKE ALL ON TABLE %s FROM PUBLIC, wallet_app', r.name);
        EXECUTE format('GRANT SELECT ON TABLE %s TO wallet_support', r.name);
    END LOOP;
    FOR r IN SELECT t.oid::regtype AS name FROM pg_type t
              WHERE t.typnamespace = 'public'::regnamespace
                AND {OUR_TYPES} LOOP
        EXECUTE format('ALTER TYPE %s OWNER TO wallet_owner', r.name);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS name, p.proname FROM pg_proc p
              WHERE p.pronamespace = 'public'::regnamespace AND p.proname ~ '^_?wallet_' LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO wallet_owner', r.name);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', r.name);
        -- the routing helpers too: the proxy's functions run with the caller's rights, and every shard
        -- checks them again (PL/Proxy connects as the caller)
        IF r.proname NOT IN (SELECT unnest(%(owner_only)s::text[])) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO wallet_app', r.name);
        END IF;
    END LOOP;
    EXECUTE format('GRANT USAGE ON FOREIGN SERVER %I TO wallet_app, wallet_owner', %(cluster)s);
END;
$$
"""

TYPES, DROP_OURS, SECURE = (q.replace("{OUR_TYPES}", OUR_TYPES) for q in (TYPES, DROP_OURS, SECURE))


def cluster_sql(shards: Sequence[Shard], partition_count: int, owner_login: dict[str, str]) -> list[str]:
    """The PL/Proxy cluster: one option per partition (p0 ... pN-1) with its shard's connection string; user
    mappings: PUBLIC (connect as the caller) and wallet_owner (the event sequencer, SECURITY DEFINER, connects
    as the login shards init was given)."""
    where = {p: conninfo(s.url) for s in shards for p in s.partitions}
    options = ", ".join(
        [f"connection_lifetime {sql.quote('1800')}"] + [f"p{p} {sql.quote(where[p])}" for p in range(partition_count)]
    )
    mapping = ", ".join(f"{k} {sql.quote(v)}" for k, v in owner_login.items())
    return [
        f"DROP SERVER IF EXISTS {CLUSTER} CASCADE",
        f"CREATE SERVER {CLUSTER} FOREIGN DATA WRAPPER plproxy OPTIONS ({options})",
        f"CREATE USER MAPPING FOR PUBLIC SERVER {CLUSTER}",
        f"CREATE USER MAPPING FOR wallet_owner SERVER {CLUSTER}" + (f" OPTIONS ({mapping})" if mapping else ""),
    ]


def owner_login(url: str) -> dict[str, str]:
    params = conninfo_to_dict(url)
    return {k: str(params[k]) for k in ("user", "password") if params.get(k)}


RECORD = """
CREATE TABLE IF NOT EXISTS proxy_shards (
    name       text PRIMARY KEY,
    conninfo   text NOT NULL,
    partitions integer[] NOT NULL,
    partition_count integer NOT NULL
)
"""


# a ledger (one server's or a shard's) has these tables; the proxy re-install drops every wallet function and
# view of its database (CASCADE), which on a ledger would take the triggers that guard it along
LEDGER_MARKERS = ("_yoyo_migration", "transactions", "ledger_entries")


def refuse_a_ledger(conn: psycopg.Connection, proxy_url: str) -> None:
    row = conn.execute(
        "SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_class c "
        "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relname = ANY (%s)",
        (list(LEDGER_MARKERS),),
    ).fetchone()
    if row is not None and row[0]:
        raise ShardError(
            f"--proxy {conninfo(proxy_url)!r} is a ledger database (it has {', '.join(row[0])}), not a proxy: "
            "give an empty database"
        )


def install_proxy(proxy_url: str, shards: Sequence[Shard], partition_count: int) -> None:
    with psycopg.connect(shards[0].url, autocommit=True) as shard_conn:
        statements = proxy_install_sql(shard_conn)
    with psycopg.connect(proxy_url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (schema._MIGRATE_LOCK_KEY,))
        refuse_a_ledger(conn, proxy_url)
        conn.execute(ROLES)
        conn.execute("CREATE EXTENSION IF NOT EXISTS plproxy")
        conn.execute(DROP_OURS)
        for statement in cluster_sql(shards, partition_count, owner_login(shards[0].url)):
            conn.execute(statement)
        for statement in statements:
            conn.execute(statement)
        record(conn, shards, partition_count)
        conn.execute(
            SECURE.replace("%(owner_only)s", sql.quote("{" + ",".join(OWNER_ONLY) + "}")).replace(
                "%(cluster)s", sql.quote(CLUSTER)
            )
        )


def record(conn: psycopg.Connection, shards: Sequence[Shard], partition_count: int) -> None:
    conn.execute(RECORD)
    conn.execute("DELETE FROM proxy_shards")
    for shard in shards:
        conn.execute(
            "INSERT INTO proxy_shards (name, conninfo, partitions, partition_count) VALUES (%s, %s, %s, %s)",
            (shard.name, conninfo(shard.url), shard.partitions, partition_count),
        )


def init(proxy_url: str, shard_urls: Sequence[str], partitions: int = DEFAULT_PARTITIONS) -> list[Shard]:
    """Migrate every shard, record its identity, install the proxy. Re-runnable. Returns the layout."""
    wanted = layout(shard_urls, partitions)
    with psycopg.connect(proxy_url, autocommit=True) as conn:  # before any shard is touched
        refuse_a_ledger(conn, proxy_url)
    shards = [prepare_shard(shard, partitions) for shard in wanted]
    check_layout(shards, partitions)
    install_proxy(proxy_url, shards, partitions)
    log.info("proxy installed over %d shard(s), %d partitions", len(shards), partitions)
    return shards


def attach(proxy_url: str, shard_urls: Sequence[str]) -> None:
    """Point an installed proxy (e.g. a copy of a template proxy database) at these shard databases, in the
    order of its recorded layout (s0, s1, ...); only the cluster definition and the record change."""
    with psycopg.connect(proxy_url, autocommit=True) as conn, conn.transaction():
        rows = conn.execute("SELECT name, partitions, partition_count FROM proxy_shards ORDER BY name").fetchall()
        if len(rows) != len(shard_urls):
            raise ShardError(f"the proxy has {len(rows)} shards recorded, not {len(shard_urls)}")
        ordered = sorted(rows, key=lambda r: int(r[0][1:]))
        shards = [Shard(name, url, parts) for (name, parts, _), url in zip(ordered, shard_urls, strict=True)]
        partition_count = rows[0][2]
        for statement in cluster_sql(shards, partition_count, owner_login(shard_urls[0])):
            conn.execute(statement)
        conn.execute(f"GRANT USAGE ON FOREIGN SERVER {CLUSTER} TO wallet_app, wallet_owner")
        record(conn, shards, partition_count)


def is_proxy(database_url: str) -> bool:
    """Is this database a PL/Proxy database set up by shards init?"""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass('public.proxy_shards') IS NOT NULL").fetchone()
    return bool(row and row[0])
