"""PL/pgSQL lint: plpgsql_check statically checks every wallet function (and every trigger function
against its table) in a migrated database.

Policy: every finding fails the test (an error: a misspelt column, a wrong type that cannot be cast,
a missing transition table, a RETURN missing...; or a warning: `warning`, `warning extra`,
`performance`, `security`), except the warnings listed in ACCEPTED, each with the reason it stays.
`plpgsql_check` is installed from Debian (postgresql-<server version>-plpgsql-check) when this machine
lacks it.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.conftest import ensure_extension_package

PROCEDURES = Path(__file__).resolve().parents[2] / "procedures"

# Every PL/pgSQL function of the schema whose name mentions wallet; a trigger function (which can only be
# checked against a relation) once per table it is a trigger of, with that table's transition tables.
FUNCTIONS = """
SELECT p.oid::regprocedure::text AS signature, p.proname,
       t.tgrelid::regclass::text AS relation, t.tgoldtable AS oldtable, t.tgnewtable AS newtable,
       p.prorettype = 'trigger'::regtype AS is_trigger
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_language l ON l.oid = p.prolang
  LEFT JOIN LATERAL (SELECT DISTINCT ON (tg.tgrelid) tg.tgrelid, tg.tgoldtable, tg.tgnewtable FROM pg_trigger tg
                      WHERE tg.tgfoid = p.oid AND NOT tg.tgisinternal
                      ORDER BY tg.tgrelid, tg.tgnewtable IS NULL, tg.tgoldtable IS NULL, tg.tgname) t ON true
 WHERE n.nspname = 'public' AND l.lanname = 'plpgsql' AND p.proname LIKE '%%wallet%%'
 ORDER BY p.proname, relation
"""

SQL_FUNCTIONS = """
SELECT p.proname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE l.lanname = 'sql' AND p.proname LIKE '%%wallet%%'
"""

CHECK = """
SELECT level, lineno, sqlstate, message, detail, hint, query
  FROM plpgsql_check_function_tb(%(signature)s::regprocedure, coalesce(%(relation)s::regclass, 0),
                                 fatal_errors => false, other_warnings => true, extra_warnings => true,
                                 performance_warnings => true, security_warnings => true,
                                 oldtable => %(oldtable)s, newtable => %(newtable)s)
"""


def ensure_plpgsql_check() -> None:
    """Install Debian's plpgsql_check for the test server's PostgreSQL version if it is missing."""
    ensure_extension_package("plpgsql_check", "plpgsql-check")


@pytest.fixture
def lint(conn: psycopg.Connection) -> psycopg.Connection:
    """This test's database with the plpgsql_check extension created."""
    ensure_plpgsql_check()
    conn.execute("CREATE EXTENSION IF NOT EXISTS plpgsql_check")
    return conn


def functions(conn: psycopg.Connection) -> list[dict]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(FUNCTIONS).fetchall()


def findings(conn: psycopg.Connection, function: dict) -> list[dict]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(CHECK, function).fetchall()


def describe(function: dict, finding: dict) -> str:
    where = f"{function['signature']} line {finding['lineno']}"
    text = f"{where}: {finding['level']} {finding['sqlstate']} {finding['message']}"
    for key in ("detail", "hint", "query"):
        if finding[key]:
            text += f"\n    {key}: {finding[key]}"
    return text


# (function, warning message) -> why the warning stays
ACCEPTED = {
    ("_wallet_replay", "routine is marked as VOLATILE, should be STABLE"): (
        "it runs right after INSERT ... ON CONFLICT waited for a concurrent holder of the key, and must see "
        "that holder's entries: VOLATILE guarantees a fresh snapshot for each of its statements"
    ),
}


def test_every_wallet_function_passes_plpgsql_check(lint: psycopg.Connection) -> None:
    problems = []
    for function in functions(lint):
        for finding in findings(lint, function):
            accepted = (function["proname"], finding["message"]) in ACCEPTED
            if finding["level"] == "error" or not accepted:
                problems.append(describe(function, finding))
    assert not problems, f"plpgsql_check findings in {len(problems)} place(s):\n" + "\n".join(problems)


def test_every_accepted_warning_still_occurs(lint: psycopg.Connection) -> None:
    seen = {(f["proname"], finding["message"]) for f in functions(lint) for finding in findings(lint, f)}
    assert set(ACCEPTED) <= seen, f"no longer reported, drop from ACCEPTED: {sorted(set(ACCEPTED) - seen)}"


def test_the_lint_covers_every_function_and_trigger_function(lint: psycopg.Connection) -> None:
    checked = functions(lint)
    names = {f["proname"] for f in checked}
    # (a LANGUAGE sql function is checked by PostgreSQL itself when it is created: check_function_bodies)
    sql_language = {name for (name,) in lint.execute(SQL_FUNCTIONS).fetchall()}
    assert {p.stem for p in PROCEDURES.glob("*.sql")} - sql_language <= names, "every procedures/ file is linted"
    triggers = {(f["proname"], f["relation"]) for f in checked if f["is_trigger"]}
    assert triggers == {
        ("_wallet_reject_ledger_change", "ledger_entries"),
        ("_wallet_reject_ledger_change", "transactions"),
        ("_wallet_reject_ledger_change", "holds"),
        ("_wallet_check_new_entries", "ledger_entries"),
        ("_wallet_check_stored_balance", "wallets"),
        ("_wallet_check_transaction_has_entries", "transactions"),
        ("_wallet_check_hold_change", "holds"),
        ("_wallet_reject_ledger_change", "events"),
        ("_wallet_reject_ledger_change", "event_inbox"),
        ("_wallet_check_inbox_delete", "event_inbox"),
        ("_wallet_enqueue_event", "transactions"),
        ("_wallet_check_home", "wallets"),
        ("_wallet_reject_ledger_change", "wallets"),
        ("_wallet_reject_ledger_change", "assets"),
    }, "every trigger function is checked against every table it is a trigger of"
    new_entries = next(f for f in checked if f["proname"] == "_wallet_check_new_entries")
    assert new_entries["newtable"] == "new_entries", "the statement trigger's transition table is passed on"
    inbox_delete = next(f for f in checked if f["proname"] == "_wallet_check_inbox_delete")
    assert inbox_delete["oldtable"] == "gone", "and an old transition table too"


def test_the_lint_reports_a_broken_function_as_an_error(lint: psycopg.Connection) -> None:
    lint.execute("""
        CREATE FUNCTION _wallet_lint_probe() RETURNS bigint LANGUAGE plpgsql AS $$
        BEGIN
            RETURN (SELECT w.no_such_column FROM wallets w LIMIT 1);
        END;
        $$""")
    probe = next(f for f in functions(lint) if f["proname"] == "_wallet_lint_probe")
    levels = [(f["level"], f["sqlstate"]) for f in findings(lint, probe)]
    assert ("error", "42703") in levels, levels
