"""Shared helpers of the HTTP API tests."""

from __future__ import annotations

import psycopg


def snapshot(conn: psycopg.Connection) -> tuple:
    """What a failed request must leave untouched: row counts and every wallet's balance."""
    return (
        conn.execute("SELECT count(*) FROM transactions").fetchone()[0],
        conn.execute("SELECT count(*) FROM ledger_entries").fetchone()[0],
        conn.execute("SELECT count(*), coalesce(sum(balance), 0) FROM wallets").fetchone(),
    )


def violations(conn: psycopg.Connection) -> list:
    return conn.execute("SELECT * FROM wallet_verify()").fetchall()


def topup_body(**overrides) -> dict:
    body = {"user_id": "user_alice", "asset_code": "GOLD_COINS", "amount": 5000, "reference_id": "topup_t1"}
    body.update(overrides)
    return body


async def error_of(response) -> dict:
    body = await response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]
