"""Each limit is written once per side: the SQL constants (migration sql/0003) and service/limits.py agree,
and no other SQL function or Python module spells a limit out again."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg

from service.limits import (
    DEFAULT_HOLD_SECONDS,
    HISTORY_MAX_LIMIT,
    MAX_AMOUNT,
    MAX_BATCH_SIZE,
    MAX_HOLD_SECONDS,
    MAX_ID_LENGTH,
    MAX_PRICE_LEGS,
)

ROOT = Path(__file__).resolve().parents[2]


def test_sql_constants_equal_the_python_limits(conn: psycopg.Connection) -> None:
    row = conn.execute("SELECT _wallet_max_amount(), _wallet_max_id_length(), _wallet_max_page()").fetchone()
    assert row == (MAX_AMOUNT, MAX_ID_LENGTH, HISTORY_MAX_LIMIT)
    row = conn.execute(
        "SELECT _wallet_max_hold_seconds(), _wallet_default_hold_seconds(), _wallet_max_price_legs()"
    ).fetchone()
    assert row == (MAX_HOLD_SECONDS, DEFAULT_HOLD_SECONDS, MAX_PRICE_LEGS)
    assert 1 <= DEFAULT_HOLD_SECONDS <= MAX_HOLD_SECONDS
    assert conn.execute("SELECT _wallet_max_batch()").fetchone() == (MAX_BATCH_SIZE,)


def test_the_functions_enforce_the_economy_constants(conn: psycopg.Connection) -> None:
    """A hold of MAX_HOLD_SECONDS is accepted and one second more refused; a price of MAX_PRICE_LEGS legs
    is checked and one leg more refused (WL006 naming the field), whatever the numbers are."""
    conn.execute(
        "SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 1, 'limits_hold', p_expires_in => %s)", (MAX_HOLD_SECONDS,)
    )
    seconds = conn.execute(
        "SELECT extract(epoch FROM expires_at - created_at) FROM holds WHERE reference_id = 'limits_hold'"
    ).fetchone()[0]
    assert seconds == MAX_HOLD_SECONDS
    conn.execute("SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 1, 'limits_default')")
    seconds = conn.execute(
        "SELECT extract(epoch FROM expires_at - created_at) FROM holds WHERE reference_id = 'limits_default'"
    ).fetchone()[0]
    assert seconds == DEFAULT_HOLD_SECONDS
    try:
        conn.execute(
            "SELECT * FROM wallet_hold('user_bob', 'GOLD_COINS', 1, 'limits_long', p_expires_in => %s)",
            (MAX_HOLD_SECONDS + 1,),
        )
        raise AssertionError("a hold longer than MAX_HOLD_SECONDS was accepted")
    except psycopg.Error as error:
        assert (error.sqlstate, error.diag.column_name) == ("WL006", "expires_in")
    legs = [{"asset_code": f"ASSET_{i}", "amount": 1} for i in range(MAX_PRICE_LEGS + 1)]
    checked = conn.execute("SELECT _wallet_price_legs(%s::jsonb)", (json.dumps(legs[:MAX_PRICE_LEGS]),)).fetchone()[0]
    assert len(checked) == MAX_PRICE_LEGS
    try:
        conn.execute("SELECT _wallet_price_legs(%s::jsonb)", (json.dumps(legs),))
        raise AssertionError("a price of more than MAX_PRICE_LEGS legs was accepted")
    except psycopg.Error as error:
        assert (error.sqlstate, error.diag.column_name) == ("WL006", "price")


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
SPELLED = re.compile(r"9007199254740991|2\s*\*\*\s*53|2\^53|\b128\b|\b86400\b|24\s*\*\s*60\s*\*\s*60")


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
