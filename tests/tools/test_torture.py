"""The torture tool: a short run with every kind of fault must end with zero violations, and its checks must
catch what they claim to catch (a lost acknowledgement, a wrong balance, a server that does not flush)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import psycopg
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from service.app import API, create_app
from tools import torture

WALLET_SERVICE = Path(sys.executable).parent / "wallet-service"


def test_short_torture_run_has_faults_and_no_violations(tmp_path):
    report = tmp_path / "report.json"
    run = subprocess.run(
        [
            str(WALLET_SERVICE),
            "torture",
            "--duration",
            "25",
            "--clients",
            "12",
            "--hot-players",
            "3",
            "--cold-players",
            "60",
            "--seed",
            "7",
            "--kill-service-every",
            "8",
            "--kill-postgres-every",
            "10",
            "--terminate-backends-every",
            "2",
            "--report",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(run.stdout[-5000:], run.stderr[-5000:])
    summary = json.loads(report.read_text())
    assert run.returncode == 0, summary["violation_examples"]
    assert summary["violations"] == 0
    assert "violations:            0" in run.stdout
    faults = summary["faults"]
    assert faults["service kill -9"] >= 1 and faults["postgres kill -9"] >= 1
    assert faults["pg_terminate_backend"] >= 1 and summary["terminated_sessions"] >= 1
    assert summary["crash_recoveries"] >= faults["postgres kill -9"], "every postmaster kill meant WAL replay"
    assert summary["service_starts"] == 1 + faults["service kill -9"]
    # the workload did what it is for: acknowledged postings, refusals, retries, replays and conflicts
    assert summary["acknowledged"] > 500
    assert summary["refused_insufficient_funds"] > 0
    assert summary["retried_keys"] > 0 and summary["overlapping_sends"] > 0
    assert summary["replays_checked"] > 0 and summary["conflicts_checked"] > 0
    assert summary["durability"]["fsync"] == "on"
    assert summary["durability"]["synchronous_commit_in_wallet_transaction"] != "off"


def test_durability_check_refuses_a_server_without_fsync(db_url):
    # the test suite's own server runs with fsync off (pytest-postgresql starts it with -F)
    settings, problems = torture.check_durability(db_url, "probe_player")
    assert settings["fsync"] == "off"
    assert any(p.startswith("fsync is off") for p in problems)


def test_durability_check_sees_synchronous_commit_off(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        dbname = conn.info.dbname
        conn.execute(f'ALTER DATABASE "{dbname}" SET synchronous_commit = off')
    settings, problems = torture.check_durability(db_url, "probe_player")
    assert settings["synchronous_commit_in_wallet_transaction"] == "off"
    assert any("synchronous_commit_in_wallet_transaction is off" in p for p in problems)
    assert any(p.startswith("durability override") for p in problems)


def test_durability_check_sees_a_wallet_function_that_turns_synchronous_commit_off(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("ALTER FUNCTION wallet_topup(text, text, bigint, text, text, jsonb) SET synchronous_commit = off")
    _, problems = torture.check_durability(db_url, "probe_player")
    assert any("wallet_topup: synchronous_commit=off" in p for p in problems)


class _FakeService:
    def __init__(self, base: str):
        self.base = base


async def _check(db_url: str, run_id: str, ops: list[torture.Op]) -> tuple[torture.Stats, torture.Resolution]:
    """Run the tool's final check over hand-made client records, against the real API on db_url."""
    server = TestServer(create_app(db_url))
    await server.start_server()
    try:
        stats = torture.Stats()
        workload = torture.Workload(
            torture.Options(), random.Random(0), run_id, _FakeService(str(server.make_url(API))), stats
        )
        workload.ops = {op.key: op for op in ops}
        pg = torture.Postgres(Path("/nonexistent"))
        pg.url = db_url
        async with ClientSession() as session:
            resolution = await torture.check(workload, stats, session, pg, run_id)
        return stats, resolution
    finally:
        await server.close()


def _post(conn, op: torture.Op) -> dict:
    row = conn.execute(
        f"SELECT transaction_id::text, balance FROM wallet_{op.kind}(%s, %s, %s, %s, %s)",
        (op.user_id, op.asset_code, op.amount, op.key, op.value),
    ).fetchone()
    return {
        "transaction_id": row[0],
        "user_id": op.user_id,
        "asset_code": op.asset_code,
        "amount": op.amount,
        "balance": row[1],
        "transaction_type": op.type,
    }


def _acked(op: torture.Op, body: dict) -> torture.Op:
    op.answers.append((201, None, body))
    op.acks.append(body)
    op.ack_statuses.append(201)
    op.final = True
    return op


async def test_checker_accepts_an_honest_history(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        a = torture.Op("r1-c0-1", "topup", "r1-hot0", "GOLD_COINS", 100, "stripe")
        b = torture.Op("r1-c0-2", "spend", "r1-hot0", "GOLD_COINS", 30, "sword")
        _acked(a, _post(conn, a))
        _acked(b, _post(conn, b))
        lost_in_flight = torture.Op("r1-c0-3", "bonus", "r1-hot0", "GOLD_COINS", 5, "DAILY")
        _post(conn, lost_in_flight)  # committed, but the client never heard back
        lost_in_flight.answers.append((torture.AMBIGUOUS, "timeout", None))
        never_arrived = torture.Op("r1-c0-4", "bonus", "r1-hot0", "GOLD_COINS", 7, "DAILY")
        never_arrived.answers.append((torture.AMBIGUOUS, "ClientConnectorError", None))
    stats, resolution = await _check(db_url, "r1", [a, b, lost_in_flight, never_arrived])
    assert stats.violations == []
    assert (resolution.unknown, resolution.unknown_committed, resolution.unknown_not_committed) == (2, 1, 1)


async def test_checker_reports_a_lost_acknowledged_transaction(db_url):
    ghost = _acked(
        torture.Op("r2-c0-1", "topup", "r2-hot0", "GOLD_COINS", 100, "stripe"),
        {
            "transaction_id": "00000000-0000-0000-0000-000000000000",
            "user_id": "r2-hot0",
            "asset_code": "GOLD_COINS",
            "amount": 100,
            "balance": 100,
            "transaction_type": "TOPUP",
        },
    )
    stats, _ = await _check(db_url, "r2", [ghost])
    assert any("not in the ledger (lost)" in v for v in stats.violations)


async def test_checker_reports_a_wrong_acknowledged_balance_and_an_unsent_transaction(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        a = torture.Op("r3-c0-1", "topup", "r3-hot0", "GOLD_COINS", 100, "stripe")
        body = _post(conn, a)
        _acked(a, dict(body, balance=99))
        _post(conn, torture.Op("r3-c9-9", "bonus", "r3-hot0", "GOLD_COINS", 1, "DAILY"))  # nobody sent it
    stats, _ = await _check(db_url, "r3", [a])
    assert any("r3-c0-1: acknowledged" in v and "the ledger holds" in v for v in stats.violations)
    assert any("r3-c9-9: committed but never sent" in v for v in stats.violations)


async def test_checker_reports_a_refusal_that_committed_anyway(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        a = torture.Op("r4-c0-1", "topup", "r4-hot0", "GOLD_COINS", 100, "stripe")
        _post(conn, a)
    # the client was told "insufficient funds" (a definitive answer, no attempt in flight): yet it is there
    a.answers.append(
        (
            422,
            "INSUFFICIENT_FUNDS",
            {"error": {"code": "INSUFFICIENT_FUNDS", "message": "", "details": {"required": 100, "available": 0}}},
        )
    )
    a.final = True
    stats, _ = await _check(db_url, "r4", [a])
    assert any("r4-c0-1: answered" in v and "but committed" in v for v in stats.violations)


async def test_checker_reports_a_refusal_quoting_a_balance_the_wallet_never_had(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        a = torture.Op("r5-c0-1", "topup", "r5-hot0", "GOLD_COINS", 100, "stripe")
        _acked(a, _post(conn, a))
    refused = torture.Op("r5-c0-2", "spend", "r5-hot0", "GOLD_COINS", 500, "sword")
    refused.answers.append(
        (
            422,
            "INSUFFICIENT_FUNDS",
            {"error": {"code": "INSUFFICIENT_FUNDS", "message": "", "details": {"required": 500, "available": 42}}},
        )
    )
    refused.final = True
    stats, _ = await _check(db_url, "r5", [a, refused])
    assert any("r5-c0-2: refused with" in v for v in stats.violations)
