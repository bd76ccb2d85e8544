"""Durability is checked, not assumed: an acknowledged commit must be flushed to disk."""

from __future__ import annotations

import time

import psycopg

DURABILITY_SETTINGS = ("fsync", "synchronous_commit", "full_page_writes", "wal_level")


def _one(conn: psycopg.Connection, query: str) -> str:
    row = conn.execute(query).fetchone()
    assert row is not None, query
    return str(row[0])


def check_durability(url: str, probe_user: str, rollback: bool = False) -> tuple[dict[str, str], list[str]]:
    """The server's durability settings, and what is wrong with them (empty when an acknowledged commit is
    flushed to disk). synchronous_commit is read three ways: server-wide, from per-role/per-database and
    per-function overrides, and inside a transaction that has just posted through wallet_topup (where a
    function's SET LOCAL would show). rollback: that posting is rolled back, not committed."""
    problems: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        settings = {name: _one(conn, f"SHOW {name}") for name in DURABILITY_SETTINGS}
        overrides = conn.execute(
            "SELECT coalesce(d.datname, '*') || '/' || coalesce(r.rolname, '*') || ': ' || s.cfg"
            "  FROM pg_db_role_setting rs CROSS JOIN LATERAL unnest(rs.setconfig) s(cfg)"
            "  LEFT JOIN pg_database d ON d.oid = rs.setdatabase LEFT JOIN pg_roles r ON r.oid = rs.setrole"
            " WHERE s.cfg ~* '^(fsync|synchronous_commit)=' "
        ).fetchall()
        functions = conn.execute(
            "SELECT p.proname || ': ' || c FROM pg_proc p CROSS JOIN LATERAL unnest(p.proconfig) c"
            " WHERE c ~* '^(fsync|synchronous_commit)='"
        ).fetchall()
        with conn.transaction():
            conn.execute(
                "SELECT * FROM wallet_topup(%s, 'GOLD_COINS', 1, %s, 'durability-probe')",
                (probe_user, f"{probe_user}-{time.time_ns()}"),
            )
            settings["synchronous_commit_in_wallet_transaction"] = _one(
                conn, "SELECT current_setting('synchronous_commit')"
            )
            if rollback:
                raise psycopg.Rollback()
    if settings["fsync"] != "on":
        problems.append(f"fsync is {settings['fsync']}: a committed transaction may be lost in a crash")
    if settings["full_page_writes"] != "on":
        problems.append("full_page_writes is off: a crash may leave torn pages")
    for name in ("synchronous_commit", "synchronous_commit_in_wallet_transaction"):
        if settings[name] == "off":
            problems.append(f"{name} is off: an acknowledged transaction may be lost in a crash")
    for (row,) in overrides + functions:
        if row.lower().endswith("=off"):
            problems.append(f"durability override: {row}")
    return settings, problems


def home_player(url: str, prefix: str) -> str:
    """A player named prefix-N that lives on the shard at url (its partition is one of the shard's)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for n in range(10_000):
            row = conn.execute("SELECT _wallet_home(%s)", (f"{prefix}-{n}",)).fetchone()
            if row is not None and row[0]:
                return f"{prefix}-{n}"
    raise RuntimeError(f"no player {prefix}-N lives on {url}")


def check_durability_sharded(
    proxy_url: str, shard_urls: list[str], probe_user: str
) -> tuple[dict[str, str], list[str]]:
    """check_durability() through the PL/Proxy database (its server's settings, the cluster's overrides, the
    proxy's functions; a probe posted through the proxy, which runs on a shard in a session of its own), then on
    each shard (its functions' overrides, and synchronous_commit inside a wallet transaction there: the
    probe, of a player at home on that shard, rolled back). synchronous_commit_in_wallet_transaction is then
    the shards' (the proxy's own, as synchronous_commit_in_proxy_transaction)."""
    settings, problems = check_durability(proxy_url, probe_user)
    settings["synchronous_commit_in_proxy_transaction"] = settings.pop("synchronous_commit_in_wallet_transaction")
    in_shards: list[str] = []
    for n, url in enumerate(shard_urls):
        shard_settings, shard_problems = check_durability(url, home_player(url, f"{probe_user}-s{n}"), rollback=True)
        problems += [f"s{n}: {problem}" for problem in shard_problems]
        in_shards.append(shard_settings["synchronous_commit_in_wallet_transaction"])
        for name in DURABILITY_SETTINGS:
            if shard_settings[name] != settings[name]:  # (one cluster: cannot differ)
                problems.append(f"s{n}: {name} is {shard_settings[name]}, the proxy's {settings[name]}")
    settings["synchronous_commit_in_wallet_transaction"] = ",".join(sorted(set(in_shards)))
    return settings, problems
