"""Each limit is written once per side: the SQL constants (migration sql/0003) and service/limits.py agree,
and no other SQL function or Python module spells a limit out again."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

from service.limits import HISTORY_MAX_LIMIT, MAX_AMOUNT, MAX_ID_LENGTH

ROOT = Path(__file__).resolve().parents[2]


def test_sql_constants_equal_the_python_limits(conn: psycopg.Connection) -> None:
    row = conn.execute("SELECT _wallet_max_amount(), _wallet_max_id_length(), _wallet_max_page()").fetchone()
    assert row == (MAX_AMOUNT, MAX_ID_LENGTH, HISTORY_MAX_LIMIT)


def test_the_domains_enforce_the_constants(conn: psycopg.Connection) -> None:
    ok = "SELECT %s::bigint::wallet_amount, 0::bigint::wallet_balance, repeat('x', %s)::wallet_ref"
    conn.execute(ok, (MAX_AMOUNT, MAX_ID_LENGTH))
    for bad in (
        f"SELECT {MAX_AMOUNT + 1}::bigint::wallet_amount",
        "SELECT 0::bigint::wallet_amount",
        f"SELECT {MAX_AMOUNT + 1}::bigint::wallet_balance",
        "SELECT (-1)::bigint::wallet_balance",
        f"SELECT repeat('x', {MAX_ID_LENGTH + 1})::wallet_ref",
        "SELECT ''::wallet_ref",
    ):
        try:
            conn.execute(bad)
        except psycopg.errors.CheckViolation:
            continue
        raise AssertionError(f"{bad} was accepted")


# the values of the limits, as they could be spelled out
SPELLED = re.compile(r"9007199254740991|2\s*\*\*\s*53|2\^53|\b128\b")


def test_no_function_or_module_spells_a_limit_out_again() -> None:
    offenders = []
    for path in [*(ROOT / "procedures").glob("*.sql"), *(ROOT / "service").glob("*.py")]:
        if path.name == "limits.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("--")[0] if path.suffix == ".sql" else line.split("#")[0]
            if SPELLED.search(code):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "use service/limits.py or the SQL constants instead:\n" + "\n".join(offenders)
