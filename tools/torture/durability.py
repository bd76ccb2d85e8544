"""Durability is checked, not assumed: an acknowledged commit must be flushed to disk."""

from __future__ import annotations

import time

import psycopg

DURABILITY_SETTINGS = ("fsync", "synchronous_commit", "full_page_writes", "wal_level")


def _one(conn: psycopg.Connection, query: str) -> str:
    row = conn.execute(query).fetchone()
    assert row is not None, query
    return str(row[0])


def check_durability(url: str, probe_user: str) -> tuple[dict[str, str], list[str]]:
    """The server's durability settings, and what is wrong with them (empty when an acknowledged commit is
    flushed to disk). synchronous_commit is read three ways: server-wide, from per-role/per-database and
    per-function overrides, and inside a transaction that has just posted through wallet_topup (where a
    function's SET LOCAL would show)."""
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
