"""The torture tool: a short run with every kind of fault must end with zero violations, and each of its checks
must catch what it claims to catch: every test below feeds one fault (a lost acknowledgement, a wrong
balance, a bad replay, a server that does not flush, ...) and expects the checker to report it."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler, Middleware

from service.app import API, create_app
from tests.access import app_login_url, bearer, create_key
from tools.torture import check as checks
from tools.torture.durability import check_durability
from tools.torture.options import Options
from tools.torture.records import AMBIGUOUS, CONFLICT, NEW, REPLAY, Batch, BatchItem, Op, Stats
from tools.torture.run import SCOPES
from tools.torture.workload import Workload

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
    # and the economy operations: two-asset purchases, reversals (several at once on one original, some refused
    # for exceeding it), holds captured, voided, and left to expire while captures were still tried
    kinds = summary["operations_by_kind"]
    assert all(kinds.get(k, 0) > 0 for k in ("purchase", "reverse", "hold", "capture", "void")), kinds
    e = summary["economy"]
    assert e["purchases_acknowledged"] > 0 and e["reversals_acknowledged"] > 0, e
    assert e["originals_reversed_concurrently"] > 0 and e["reversals_refused_exceeding_original"] > 0, e
    assert e["holds_acknowledged"] > 0 and e["captures_acknowledged"] > 0 and e["voids_acknowledged"] > 0, e
    assert e["holds_expired"] > 0 and e["captures_refused_expired"] > 0 and e["captures_tried_after_expiry"] > 0, e
    # and the batches: answered item by item (postings, refusals, invalid operations), retried as a whole, keys
    # sent again in the same batch and from earlier postings (replays and conflicts), postings in request order
    b = summary["batches"]
    assert b["answered"] > 0 and b["retried"] > 0 and b["items"] > b["operations"] > 0, b
    assert b["operations_acknowledged"] > 0 and b["operations_refused"] > b["invalid_operations_refused"] > 0, b
    assert (
        min(b[k] for k in ("replays_in_batch", "conflicts_in_batch", "replays_of_earlier", "conflicts_of_earlier")) > 0
    )
    assert b["postings_checked_in_order"] > 0, b


def test_short_sharded_torture_run_has_faults_and_no_violations(tmp_path):
    """The same workload and checks through a PL/Proxy database in front of 2 shards (Debian's PostgreSQL, one
    cluster): the service, the postmaster (all three databases at once) and sessions of every database killed."""
    report = tmp_path / "report.json"
    run = subprocess.run(
        [
            str(WALLET_SERVICE),
            "torture",
            "--shards",
            "2",
            "--duration",
            "20",
            "--clients",
            "12",
            "--hot-players",
            "3",
            "--cold-players",
            "60",
            "--seed",
            "11",
            "--kill-service-every",
            "7",
            "--kill-postgres-every",
            "8",
            "--terminate-backends-every",
            "1",
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
    assert summary["shards"] == 2 and all(n > 0 for n in summary["players_by_shard"].values())
    assert len(summary["players_by_shard"]) == 2
    faults = summary["faults"]
    assert faults["service kill -9"] >= 1 and faults["postgres kill -9"] >= 1
    assert faults["pg_terminate_backend"] >= 1 and summary["terminated_sessions"] >= 1
    assert summary["crash_recoveries"] >= faults["postgres kill -9"], "every postmaster kill meant WAL replay"
    assert summary["service_starts"] == 1 + faults["service kill -9"]
    # sessions of the proxy's database and of the shards' (PL/Proxy's connections) were terminated
    by_db = summary["terminated_sessions_by_database"]
    assert by_db.get("wallet_proxy", 0) > 0 and by_db.get("wallet_s0", 0) + by_db.get("wallet_s1", 0) > 0, by_db
    assert summary["durability"]["fsync"] == "on"
    assert summary["durability"]["synchronous_commit_in_wallet_transaction"] == "on"
    # while the cluster was down the service on the proxy answered 503 (GET /health and a balance read), and
    # answered from the ledger again once it was back
    probes = summary["outage_probes"]
    assert probes.get("health 503 while down", 0) >= 1, probes
    assert sum(n for k, n in probes.items() if k.startswith("balance 503") and k.endswith("while down")), probes
    assert summary["recovery_seconds"], summary
    assert summary["acknowledged"] > 300 and summary["refused_insufficient_funds"] > 0
    assert summary["replays_checked"] > 0 and summary["conflicts_checked"] > 0
    kinds = summary["operations_by_kind"]
    assert all(kinds.get(k, 0) > 0 for k in ("purchase", "reverse", "hold", "capture", "void")), kinds
    assert summary["batches"]["operations_acknowledged"] > 0


def test_durability_check_refuses_a_server_without_fsync(db_url):
    # the test suite's own server runs with fsync off (pytest-postgresql starts it with -F)
    settings, problems = check_durability(db_url, "probe_player")
    assert settings["fsync"] == "off"
    assert any(p.startswith("fsync is off") for p in problems)


def test_durability_check_sees_synchronous_commit_off(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        dbname = conn.info.dbname
        conn.execute(f'ALTER DATABASE "{dbname}" SET synchronous_commit = off')
    settings, problems = check_durability(db_url, "probe_player")
    assert settings["synchronous_commit_in_wallet_transaction"] == "off"
    assert any("synchronous_commit_in_wallet_transaction is off" in p for p in problems)
    assert any(p.startswith("durability override") for p in problems)


def test_durability_check_sees_a_wallet_function_that_turns_synchronous_commit_off(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "ALTER FUNCTION wallet_topup(text, text, bigint, text, text, jsonb, text) SET synchronous_commit = off"
        )
    _, problems = check_durability(db_url, "probe_player")
    assert any("wallet_topup: synchronous_commit=off" in p for p in problems)


# ---------------------------------------------------------------------------------------------- helpers


@asynccontextmanager
async def _api(db_url: str, middleware: Middleware | None = None) -> AsyncIterator[tuple[str, ClientSession]]:
    """The real API on db_url's database, connecting as the login holding only wallet_app (its base URL), and a
    client session sending an API key; `middleware`, outermost, may falsify what the API answers."""
    app = create_app(app_login_url(db_url))
    if middleware is not None:
        app.middlewares.insert(0, web.middleware(middleware))
    server = TestServer(app)
    await server.start_server()
    secret = create_key(db_url, SCOPES, f"torture-test-{uuid.uuid4().hex[:8]}")
    try:
        async with ClientSession(headers=bearer(secret)) as session:
            yield str(server.make_url(API)), session
    finally:
        await server.close()


async def _check(
    db_url: str, run_id: str, ops: list[Op], middleware: Middleware | None = None
) -> tuple[Stats, checks.Resolution]:
    """Run the tool's final check over hand-made client records, against the real API on db_url."""
    stats = Stats()
    async with _api(db_url, middleware) as (base, session):
        resolution = await checks.check({op.key: op for op in ops}, stats, session, base, db_url, run_id)
    return stats, resolution


def _post(conn: psycopg.Connection, op: Op) -> dict[str, Any]:
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


def _acked(op: Op, body: dict[str, Any]) -> Op:
    op.answers.append((201, None, body))
    op.acks.append(body)
    op.ack_statuses.append(201)
    op.final = True
    return op


def _posted_and_acked(db_url: str, op: Op) -> Op:
    with psycopg.connect(db_url, autocommit=True) as conn:
        return _acked(op, _post(conn, op))


class _FixedRandom(random.Random):
    """random() always returns `value` (replay_or_conflict draws once: below 0.4 it sends a conflict)."""

    def __init__(self, value: float):
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def _workload(run_id: str, base: str, stats: Stats, draw: float = 0.9) -> Workload:
    # a generous timeout: the test server shares a busy machine, and a timed-out replay is not checked
    return Workload(Options(request_timeout=30), _FixedRandom(draw), run_id, base, stats)


def _rewrite_json(response: web.StreamResponse, change: Callable[[dict[str, Any]], None]) -> web.Response:
    assert isinstance(response, web.Response) and isinstance(response.body, bytes)
    body = json.loads(response.body)
    change(body)
    return web.json_response(
        body,
        status=response.status,
        headers={k: v for k, v in response.headers.items() if k.lower() not in ("content-type", "content-length")},
    )


OTHER_ID = "00000000-0000-0000-0000-000000000000"


# ---------------------------------------------------------------------------------------------- final check


async def test_checker_accepts_an_honest_history(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        a = Op("r1-c0-1", "topup", "r1-hot0", "GOLD_COINS", 100, "stripe")
        b = Op("r1-c0-2", "spend", "r1-hot0", "GOLD_COINS", 30, "sword")
        _acked(a, _post(conn, a))
        _acked(b, _post(conn, b))
        lost_in_flight = Op("r1-c0-3", "bonus", "r1-hot0", "GOLD_COINS", 5, "DAILY")
        _post(conn, lost_in_flight)  # committed, but the client never heard back
        lost_in_flight.answers.append((AMBIGUOUS, "timeout", None))
        never_arrived = Op("r1-c0-4", "bonus", "r1-hot0", "GOLD_COINS", 7, "DAILY")
        never_arrived.answers.append((AMBIGUOUS, "ClientConnectorError", None))
    stats, resolution = await _check(db_url, "r1", [a, b, lost_in_flight, never_arrived])
    assert stats.violations == []
    assert (resolution.unknown, resolution.unknown_committed, resolution.unknown_not_committed) == (2, 1, 1)


async def test_checker_reports_a_lost_acknowledged_transaction(db_url):
    ghost = _acked(
        Op("r2-c0-1", "topup", "r2-hot0", "GOLD_COINS", 100, "stripe"),
        {
            "transaction_id": OTHER_ID,
            "user_id": "r2-hot0",
            "asset_code": "GOLD_COINS",
            "amount": 100,
            "balance": 100,
            "transaction_type": "TOPUP",
        },
    )
    stats, _ = await _check(db_url, "r2", [ghost])
    assert any("not in the ledger (lost)" in v for v in stats.violations)


async def test_checker_reports_a_wrong_acknowledged_balance(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        a = Op("r3-c0-1", "topup", "r3-hot0", "GOLD_COINS", 100, "stripe")
        _acked(a, dict(_post(conn, a), balance=99))
    stats, _ = await _check(db_url, "r3", [a])
    assert [v for v in stats.violations if v.startswith("r3-c0-1: acknowledged {")] and len(stats.violations) == 1


async def test_checker_reports_a_transaction_that_no_client_sent(db_url):
    a = _posted_and_acked(db_url, Op("r3-c0-1", "topup", "r3-hot0", "GOLD_COINS", 100, "stripe"))
    with psycopg.connect(db_url, autocommit=True) as conn:
        _post(conn, Op("r3-c9-9", "bonus", "r3-cold0", "GOLD_COINS", 1, "DAILY"))  # nobody sent it
    stats, _ = await _check(db_url, "r3", [a])
    assert any("r3-c9-9: committed but never sent" in v for v in stats.violations)


async def test_checker_reports_a_transaction_committed_other_than_sent(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        committed = Op("r3-c0-2", "topup", "r3-hot0", "GOLD_COINS", 100, "stripe")
        body = _post(conn, committed)
    # the client's record of that key says 90: what was committed is not what was sent
    sent = _acked(Op("r3-c0-2", "topup", "r3-hot0", "GOLD_COINS", 90, "stripe"), dict(body, amount=90))
    stats, _ = await _check(db_url, "r3", [sent])
    assert any(v.startswith("r3-c0-2: committed legs (('GOLD_COINS', 100),), sent") for v in stats.violations)


async def test_checker_reports_a_refusal_that_committed_anyway(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        a = Op("r4-c0-1", "topup", "r4-hot0", "GOLD_COINS", 100, "stripe")
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
    a = _posted_and_acked(db_url, Op("r5-c0-1", "topup", "r5-hot0", "GOLD_COINS", 100, "stripe"))
    refused = Op("r5-c0-2", "spend", "r5-hot0", "GOLD_COINS", 500, "sword")
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


def _lookup_answers(status: int, body: dict[str, Any]) -> Middleware:
    """An API whose GET /transactions/{reference_id} answers `status` and `body`, whatever the ledger holds."""

    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "GET" and request.path.startswith(f"{API}/transactions/"):
            return web.json_response(body, status=status)
        return await handler(request)

    return middleware


@pytest.mark.parametrize(
    ("committed", "status", "body", "expected"),
    [
        # committed, but the lookup says there is no such transaction
        (True, 404, {"error": {"code": "TRANSACTION_NOT_FOUND", "message": "", "details": {}}}, "lookup says None"),
        # committed, but the lookup names another transaction
        (True, 200, {"transaction_id": OTHER_ID, "amount": 100}, "lookup answered"),
        # committed, but the lookup quotes another amount
        (True, 200, {"transaction_id": None, "amount": 101}, "lookup answered"),
        # never committed, but the lookup finds it
        (False, 200, {"transaction_id": OTHER_ID, "amount": 100}, "the ledger says None"),
    ],
)
async def test_checker_reports_a_lookup_that_disagrees_with_the_ledger(db_url, committed, status, body, expected):
    op = Op("r6-c0-1", "topup", "r6-hot0", "GOLD_COINS", 100, "stripe")
    if committed:
        with psycopg.connect(db_url, autocommit=True) as conn:
            txid = _post(conn, op)["transaction_id"]
        body = {k: (txid if v is None else v) for k, v in body.items()}
    op.answers.append((AMBIGUOUS, "timeout", None))  # the client never learned the outcome: looked up
    stats, resolution = await _check(db_url, "r6", [op], _lookup_answers(status, body))
    assert resolution.unknown == 1
    assert [v for v in stats.violations if v.startswith("r6-c0-1: ")] and all(
        expected in v for v in stats.violations
    ), stats.violations


async def test_checker_reports_a_balance_the_model_does_not_explain(db_url):
    a = _posted_and_acked(db_url, Op("r7-c0-1", "topup", "r7-hot0", "GOLD_COINS", 100, "stripe"))
    with psycopg.connect(db_url, autocommit=True) as conn:
        # money the run never sent (another reference id, so not a transaction of the run), after its own
        conn.execute("SELECT wallet_bonus('r7-hot0', 'GOLD_COINS', 5, 'elsewhere-1', 'GIFT')")
    stats, _ = await _check(db_url, "r7", [a])
    assert stats.violations == ["('r7-hot0', 'GOLD_COINS'): balance 105, the model says 100"]


async def test_checker_reports_an_api_balance_that_disagrees_with_the_ledger(db_url):
    a = _posted_and_acked(db_url, Op("r8-c0-1", "topup", "r8-hot0", "GOLD_COINS", 100, "stripe"))

    async def one_more(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.path.endswith("/balance"):

            def change(body: dict[str, Any]) -> None:
                for balance in body["balances"]:
                    balance["balance"] += 1

            return _rewrite_json(response, change)
        return response

    stats, _ = await _check(db_url, "r8", [a], one_more)
    # (the balance disagrees with the ledger, and with held + available)
    assert stats.violations and all(v.startswith("r8-hot0: the API reports") for v in stats.violations)


# ---------------------------------------------------------------------------------------------- economy


def _superuser(db_url: str, sql: str, args: tuple = ()) -> None:
    """A change no wallet function would make, as the superuser with the guarding triggers off for it."""
    with psycopg.connect(db_url, autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(sql, args)


def _economy(workload: Workload, run_id: str) -> dict[str, Op]:
    """An honest history's records: top-ups, a purchase, a spend partly refunded twice (the second time
    refused: too much), a purchase reversed whole, a hold captured in part, one voided, one left to expire."""
    user = f"{run_id}-hot0"

    def op(n: int, kind: str, *args: Any, **kw: Any) -> Op:
        return workload.register(Op(f"{run_id}-c0-{n}", kind, user, *args, **kw))

    ops: dict[str, Op] = {}
    for o in (
        op(1, "topup", "GOLD_COINS", 1000, "stripe"),
        op(2, "topup", "DIAMONDS", 1000, "stripe"),
        op(3, "purchase", None, None, "bundle_1", legs=(("GOLD_COINS", 100), ("DIAMONDS", 5))),
        op(4, "spend", "GOLD_COINS", 50, "sword"),
    ):
        ops[o.key] = o
    spend, purchase = ops[f"{run_id}-c0-4"], ops[f"{run_id}-c0-3"]
    ops.update(
        {
            o.key: o
            for o in (
                op(5, "reverse", "GOLD_COINS", 20, "refund", original=spend),
                op(6, "reverse", "GOLD_COINS", 40, "refund", original=spend),  # 20 + 40 > 50: refused
                op(7, "reverse", None, None, "refund", original=purchase),
                op(8, "hold", "GOLD_COINS", 100, None, expires_in=60),
                op(9, "hold", "DIAMONDS", 50, "gem", expires_in=60),
                op(10, "hold", "GOLD_COINS", 10, None, expires_in=1),
            )
        }
    )
    return ops


def _action(workload: Workload, hold: Op, kind: str, amount: int | None = None, after_expiry: bool = False) -> Op:
    return workload.register(
        Op(hold.key, kind, hold.user_id, hold.asset_code, amount, None, hold=hold, after_expiry=after_expiry)
    )


async def _run_economy(db_url: str, run_id: str) -> tuple[Stats, dict[str, Op]]:
    """The honest history of _economy, sent through the real API, judged as the torture judges."""
    stats = Stats()
    async with _api(db_url) as (base, session):
        workload = _workload(run_id, base, stats)
        ops = _economy(workload, run_id)
        for op in ops.values():
            await workload.execute(session, op)
        captured, voided, left = (ops[f"{run_id}-c0-{n}"] for n in (8, 9, 10))
        await workload.execute(session, _action(workload, captured, "capture", 30))
        await workload.execute(session, _action(workload, captured, "capture", 30))  # a replay
        await workload.execute(session, _action(workload, voided, "void"))
        expires_at = left.expires_at()
        assert expires_at is not None
        await asyncio.sleep(max(expires_at.timestamp() - time.time(), 0) + 0.05)
        await workload.execute(session, _action(workload, left, "capture", after_expiry=True))
        await workload.execute(session, _action(workload, left, "void", after_expiry=True))
    return stats, ops


async def test_checker_accepts_an_honest_economy_history(db_url):
    stats, ops = await _run_economy(db_url, "e1")
    assert stats.violations == []
    answers = {op.key: [a[:2] for a in op.answers] for op in ops.values()}
    assert answers["e1-c0-6"] == [(422, "REVERSAL_EXCEEDS_ORIGINAL")]
    left = ops["e1-c0-10"]
    assert [a.answers[0][:2] for a in left.actions] == [(409, "HOLD_EXPIRED"), (200, None)]
    # a reversal committed, but its client never heard back: resolved by its reference id
    lost = Op("e1-c9-1", "reverse", "e1-hot0", "GOLD_COINS", 5, "refund", original=ops["e1-c0-4"])
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SELECT * FROM wallet_reverse('e1-c9-1', 'e1-c0-4', 'refund', 5)")
    lost.answers.append((AMBIGUOUS, "timeout", None))
    ops[lost.key] = lost
    stats, resolution = await _check(db_url, "e1", list(ops.values()))
    assert stats.violations == []
    assert (resolution.unknown, resolution.unknown_committed) == (1, 1)
    assert resolution.holds == {"CAPTURED": 1, "VOIDED": 1, "EXPIRED": 1}


async def test_checker_reports_a_capture_after_expiry(db_url):
    _, ops = await _run_economy(db_url, "e2")
    # the captured hold's expiry moved to before its capture: as if captured past expires_at
    _superuser(
        db_url, "UPDATE holds SET expires_at = created_at + interval '1 microsecond' WHERE reference_id = 'e2-c0-8'"
    )
    stats, _ = await _check(db_url, "e2", list(ops.values()))
    assert any(v.startswith("e2-c0-8: captured at ") and "after the hold expired" in v for v in stats.violations)
    assert any(v.startswith("wallet_verify: hold_capture_mismatch") for v in stats.violations)


async def test_checker_reports_reversals_exceeding_their_original(db_url):
    _, ops = await _run_economy(db_url, "e3")
    # the spend of 50 (20 refunded) says 200 while another 100 is refunded, then 50 again: 120 of 50 taken back
    spend = ops["e3-c0-4"]
    _superuser(db_url, "UPDATE transactions SET amount = 200 WHERE reference_id = 'e3-c0-4'")
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT transaction_id::text, balance FROM wallet_reverse('e3-c0-11', 'e3-c0-4', 'x', 100)"
        ).fetchone()
    _superuser(db_url, "UPDATE transactions SET amount = 50 WHERE reference_id = 'e3-c0-4'")
    extra = Op("e3-c0-11", "reverse", "e3-hot0", "GOLD_COINS", 100, "x", original=spend)
    _acked(
        extra,
        {
            "transaction_id": row[0],
            "user_id": "e3-hot0",
            "transaction_type": "REVERSAL",
            "original_reference_id": spend.key,
            "legs": [{"asset_code": "GOLD_COINS", "amount": 100, "balance": row[1]}],
        },
    )
    stats, _ = await _check(db_url, "e3", [*ops.values(), extra])
    assert "e3-c0-4: reversals took back 120 GOLD_COINS, it moved {'GOLD_COINS': 50}" in stats.violations
    assert any(v.startswith("wallet_verify: reversal_exceeds_original") for v in stats.violations)


async def test_checker_reports_a_lost_capture_and_a_hold_in_another_state(db_url):
    _, ops = await _run_economy(db_url, "e4")
    voided = ops["e4-c0-9"]
    # the client heard "captured" for the voided hold: no such capture exists
    capture = Op(voided.key, "capture", voided.user_id, "DIAMONDS", None, None, hold=voided)
    _acked(
        capture,
        {
            "transaction_id": OTHER_ID,
            "user_id": voided.user_id,
            "asset_code": "DIAMONDS",
            "amount": 50,
            "balance": 0,
            "transaction_type": "CAPTURE",
            "hold_reference_id": voided.key,
        },
    )
    voided.actions.append(capture)
    stats, _ = await _check(db_url, "e4", list(ops.values()))
    assert any(v.startswith("e4-c0-9: capture acknowledged {") and "(lost)" in v for v in stats.violations)
    assert any(v.startswith("e4-c0-9: capture acknowledged {") and "the hold is" in v for v in stats.violations)


async def test_checker_reports_a_hold_lookup_that_disagrees(db_url):
    _, ops = await _run_economy(db_url, "e5")

    async def voided(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.method == "GET" and request.path == f"{API}/holds/e5-c0-8":
            return _rewrite_json(response, _set("status", "VOIDED"))
        return response

    stats, _ = await _check(db_url, "e5", list(ops.values()), voided)
    assert [v for v in stats.violations if not v.startswith("e5-c0-8: the API says {")] == []
    assert stats.violations


def test_available_check_reports_a_hold_above_what_was_available():
    stats = Stats()
    t = [T0 + timedelta(seconds=n) for n in range(4)]
    txs = {"ry-c0-1": dict(TX, user_id="ry-hot0", created_at=t[0], entries=[(1, "GOLD_COINS", 100, 100)])}
    hold = dict(
        user_id="ry-hot0",
        asset_code="GOLD_COINS",
        amount=60,
        status="VOIDED",
        created_at=t[1],
        expires_at=t[3],
        closed_at=t[2],
    )
    # two holds of 60 on 100 at once: the second reserved what was not available
    checks.check_available(txs, {"ry-c0-2": hold, "ry-c0-3": dict(hold, created_at=t[1] + timedelta(1e-6))}, stats)
    assert len(stats.violations) == 1 and stats.violations[0].startswith("('ry-hot0', 'GOLD_COINS'): available -20")
    # one after the other (the first voided before the second): fine
    stats = Stats()
    checks.check_available(txs, {"ry-c0-2": hold, "ry-c0-3": dict(hold, created_at=t[2])}, stats)
    assert stats.violations == []


async def test_checker_reports_what_wallet_verify_finds(db_url):
    a = _posted_and_acked(db_url, Op("r9-c0-1", "topup", "r9-hot0", "GOLD_COINS", 100, "stripe"))
    with psycopg.connect(db_url, autocommit=True) as conn:
        # another player's stored balance drifts from its ledger (the guarding triggers off for this)
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "UPDATE wallets SET balance = balance + 1 WHERE user_id = 'user_bob' AND asset_code = 'GOLD_COINS'"
        )
    stats, _ = await _check(db_url, "r9", [a])
    assert stats.violations and all(v.startswith("wallet_verify: ") for v in stats.violations)


# checks of ledger shapes the database's own constraints prevent: fed to the check functions as data
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TX = dict(transaction_id=OTHER_ID, type="TOPUP", user_id="rx-hot0", original=None, created_at=T0)
WALLET = ("rx-hot0", "GOLD_COINS")
ENTRY = (1, "GOLD_COINS", 100, 100)  # (entry id, asset, signed amount, balance_after)


@pytest.mark.parametrize(
    ("tx", "balances", "expected"),
    [
        (dict(TX, entries=[ENTRY], duplicates=2), {WALLET: 100}, "2 transactions hold"),
        (dict(TX, entries=[ENTRY, (2, "GOLD_COINS", 100, 200)]), {WALLET: 200}, "committed legs"),
        (dict(TX, entries=[ENTRY, (2, "DIAMONDS", 100, 100)]), {WALLET: 100}, "committed legs"),
        (dict(TX, entries=[(1, "GOLD_COINS", -100, -100)]), {WALLET: 100}, "go the wrong way"),
        (dict(TX, type="SPEND", entries=[(1, "GOLD_COINS", -100, 0)]), {WALLET: 0}, "would be -100"),
        (dict(TX, entries=[(1, "GOLD_COINS", 100, 90)]), {WALLET: 100}, "balance_after 90, the model"),
        (dict(TX, entries=[ENTRY]), {WALLET: 100, ("rx-cold0", "DIAMONDS"): -1}, "negative balance -1"),
        (dict(TX, entries=[ENTRY]), {}, "has transactions but no wallet"),
    ],
)
def test_ledger_checks_report_what_the_constraints_should_have_prevented(tx, balances, expected):
    op = _acked(Op("rx-c0-1", "topup", "rx-hot0", "GOLD_COINS", 100, "stripe"), {})
    stats = Stats()
    txs = {op.key: tx}
    checks.check_committed({op.key: op}, txs, {}, "rx", stats)
    checks.check_model(txs, balances, "rx", stats)
    assert any(expected in v for v in stats.violations), stats.violations


def test_verify_check_reports_a_negative_stored_balance():
    stats = Stats()
    checks.check_verify([], 2, stats)
    assert stats.violations == ["2 wallets with a negative balance"]


# ---------------------------------------------------------------------------------------------- answers


def _ack_body(op: Op, **changes: Any) -> dict[str, Any]:
    body = {
        "transaction_id": OTHER_ID,
        "user_id": op.user_id,
        "asset_code": op.asset_code,
        "amount": op.amount,
        "balance": 100,
        "transaction_type": op.type,
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        ({"transaction_id": "11111111-1111-1111-1111-111111111111"}, "acknowledged as 1111"),
        ({"balance": 7}, "acknowledged balance 7 and 100"),
    ],
)
def test_judge_reports_disagreeing_acknowledgements_of_one_key(second, expected):
    stats = Stats()
    workload = _workload("ra", "http://unused", stats)
    op = Op("ra-c0-1", "topup", "ra-hot0", "GOLD_COINS", 100, "stripe")
    assert workload.judge(op, (201, None, _ack_body(op)))
    assert stats.violations == []
    assert workload.judge(op, (200, None, _ack_body(op, **second)))
    assert len(stats.violations) == 1 and expected in stats.violations[0], stats.violations


@pytest.mark.parametrize(
    ("kind", "answer", "expected"),
    [
        ("topup", (201, None, {"amount": 99}), "acknowledged {"),
        ("topup", (201, None, {"balance": -1}), "acknowledged balance -1"),
        ("topup", (201, None, {"balance": "100"}), "acknowledged balance '100'"),
        ("topup", (422, "INSUFFICIENT_FUNDS", {}), "unexpected answer 422 INSUFFICIENT_FUNDS {} to a topup"),
        ("spend", (422, "BALANCE_LIMIT_EXCEEDED", {}), "unexpected answer 422 BALANCE_LIMIT_EXCEEDED {} to a spend"),
        ("topup", (404, "WALLET_NOT_FOUND", {}), "unexpected answer 404"),
        ("spend", (400, "VALIDATION_ERROR", {}), "unexpected answer 400"),
    ],
)
def test_judge_reports_a_wrong_answer(kind, answer, expected):
    stats = Stats()
    op = Op("rb-c0-1", kind, "rb-hot0", "GOLD_COINS", 100, "x")
    status, code, changes = answer
    body = _ack_body(op, **changes) if status in (200, 201) else changes
    assert _workload("rb", "http://unused", stats).judge(op, (status, code, body))
    assert len(stats.violations) == 1 and expected in stats.violations[0], stats.violations


def _economy_op(kind: str, expires_in: float = 60.0, after_expiry: bool = False) -> Op:
    """A purchase, a reversal of a spend, a hold acknowledged to expire in `expires_in` s, or its capture or void."""
    spend = Op("rf-c0-1", "spend", "rf-hot0", "GOLD_COINS", 100, "sword")
    if kind == "purchase":
        return Op("rf-c0-2", kind, "rf-hot0", None, None, "bundle", legs=(("GOLD_COINS", 10), ("DIAMONDS", 2)))
    if kind == "reverse":
        return Op("rf-c0-3", kind, "rf-hot0", "GOLD_COINS", None, "refund", original=spend)
    hold = Op("rf-c0-4", "hold", "rf-hot0", "GOLD_COINS", 100, None, expires_in=1)
    if kind == "hold":
        return hold
    expires_at = (datetime.now(UTC) + timedelta(seconds=expires_in)).isoformat()
    _acked(hold, {"reference_id": hold.key, "status": "HELD", "expires_at": expires_at, "available": 0})
    return Op(hold.key, kind, "rf-hot0", "GOLD_COINS", None, None, hold=hold, after_expiry=after_expiry)


CAPTURED = {
    "transaction_id": OTHER_ID,
    "user_id": "rf-hot0",
    "asset_code": "GOLD_COINS",
    "amount": 100,
    "balance": 0,
    "transaction_type": "CAPTURE",
    "hold_reference_id": "rf-c0-4",
}
HELD = {
    "reference_id": "rf-c0-4",
    "user_id": "rf-hot0",
    "asset_code": "GOLD_COINS",
    "amount": 100,
    "status": "HELD",
    "expires_at": "2030-01-01T00:00:00.000Z",
    "available": 0,
}
BOUGHT = {
    "transaction_id": OTHER_ID,
    "user_id": "rf-hot0",
    "transaction_type": "PURCHASE",
    "item_id": "bundle",
    "legs": [
        {"asset_code": "DIAMONDS", "amount": 2, "balance": 0},
        {"asset_code": "GOLD_COINS", "amount": 10, "balance": 0},
    ],
}
REFUNDED = {
    "transaction_id": OTHER_ID,
    "user_id": "rf-hot0",
    "transaction_type": "REVERSAL",
    "original_reference_id": "rf-c0-1",
    "legs": [{"asset_code": "GOLD_COINS", "amount": 100, "balance": 100}],
}


@pytest.mark.parametrize(
    ("made", "answer", "expected"),
    [
        (("purchase",), (201, None, BOUGHT), None),
        (("purchase",), (201, None, dict(BOUGHT, legs=BOUGHT["legs"][:1])), "purchase acknowledged legs"),
        (("purchase",), (201, None, dict(BOUGHT, item_id="other")), "purchase acknowledged {"),
        (("reverse",), (201, None, REFUNDED), None),
        (("reverse",), (201, None, dict(REFUNDED, original_reference_id="x")), "reverse acknowledged {"),
        (("reverse",), (422, "REVERSAL_EXCEEDS_ORIGINAL", {}), None),
        (("reverse",), (422, "INSUFFICIENT_FUNDS", {}), "unexpected answer 422 INSUFFICIENT_FUNDS"),
        (("reverse",), (422, "NOT_REVERSIBLE", {}), "unexpected answer 422 NOT_REVERSIBLE"),
        (("hold",), (201, None, HELD), None),
        (("hold",), (201, None, dict(HELD, status="CAPTURED")), "hold acknowledged (201) as CAPTURED"),
        (("hold",), (200, None, dict(HELD, status="EXPIRED")), None),  # a replay: the hold as it is now
        (("hold",), (201, None, dict(HELD, available=-1)), "hold acknowledged available -1"),
        (("capture",), (201, None, CAPTURED), None),
        (("capture",), (201, None, dict(CAPTURED, amount=99)), "capture acknowledged {"),
        (("capture", -1, True), (201, None, CAPTURED), "captured although sent only after"),
        (("capture", -1, True), (409, "HOLD_EXPIRED", {}), None),
        (("capture", 60), (409, "HOLD_EXPIRED", {}), "before the hold's expires_at"),
        (("capture",), (409, "HOLD_NOT_ACTIVE", {}), "unexpected answer 409 HOLD_NOT_ACTIVE"),
        (("capture",), (404, "HOLD_NOT_FOUND", {}), "unexpected answer 404 HOLD_NOT_FOUND"),
        (("void",), (200, None, {"reference_id": "rf-c0-4", "status": "VOIDED", "available": 0}), None),
        (("void", -1), (200, None, {"reference_id": "rf-c0-4", "status": "EXPIRED", "available": 0}), None),
        (
            ("void", 60),
            (200, None, {"reference_id": "rf-c0-4", "status": "EXPIRED", "available": 0}),
            "void answered EXPIRED at",
        ),
        (("void",), (409, "HOLD_NOT_ACTIVE", {}), "unexpected answer 409 HOLD_NOT_ACTIVE"),
    ],
)
def test_judge_checks_the_answers_of_economy_operations(made, answer, expected):
    op = _economy_op(*made)  # (now: a hold expires in so many seconds from now)
    stats = Stats()
    assert _workload("rf", "http://unused", stats).judge(op, answer)
    if expected is None:
        assert stats.violations == []
    else:
        assert len(stats.violations) == 1 and expected in stats.violations[0], stats.violations


def _falsify_postings(change: Callable[[dict[str, Any]], None] | None = None, drop_replay_header: bool = False):
    """An API whose POST answers are changed by `change` (and lose Idempotent-Replayed)."""

    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.method != "POST":
            return response
        if drop_replay_header:
            response.headers.popall("Idempotent-Replayed", None)
        return _rewrite_json(response, change) if change else response

    return middleware


@pytest.mark.parametrize("drop", [False, True])
async def test_send_reports_a_200_without_the_replayed_header(db_url, drop):
    op = _posted_and_acked(db_url, Op("rc-c0-1", "topup", "rc-hot0", "GOLD_COINS", 100, "stripe"))
    stats = Stats()
    async with _api(db_url, _falsify_postings(drop_replay_header=drop)) as (base, session):
        answer = await _workload("rc", base, stats).send(session, op, op.body(), 30)
    assert answer[0] == 200  # a replay
    assert stats.violations == (["rc-c0-1: 200 without Idempotent-Replayed: true"] if drop else [])


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        body[key] = value

    return change


@pytest.mark.parametrize(
    ("change", "violation"),
    [
        (None, False),  # an honest replay
        (_set("transaction_id", OTHER_ID), True),  # answered with another transaction
        (_set("amount", 101), True),  # answered with another amount
        (_set("balance", 1), True),  # answered with another balance
    ],
)
async def test_replay_check_reports_a_replay_answering_something_else(db_url, change, violation):
    op = _posted_and_acked(db_url, Op("rd-c0-1", "topup", "rd-hot0", "GOLD_COINS", 100, "stripe"))
    stats = Stats()
    async with _api(db_url, _falsify_postings(change)) as (base, session):
        await _workload("rd", base, stats, draw=0.9).replay_or_conflict(session, op)
    assert (stats.replays_checked, stats.conflicts_checked) == (1, 0)
    assert [v.split(": replay answered")[0] for v in stats.violations] == (["rd-c0-1"] if violation else [])


@pytest.mark.parametrize(
    ("change", "violation"),
    [
        (None, False),  # an honest 409 naming the original transaction
        (lambda body: body["error"]["details"].update(transaction_id=OTHER_ID), True),  # naming another one
    ],
)
async def test_conflict_check_reports_a_409_naming_another_transaction(db_url, change, violation):
    op = _posted_and_acked(db_url, Op("re-c0-1", "topup", "re-hot0", "GOLD_COINS", 100, "stripe"))
    stats = Stats()
    async with _api(db_url, _falsify_postings(change)) as (base, session):
        await _workload("re", base, stats, draw=0.1).replay_or_conflict(session, op)
    assert (stats.replays_checked, stats.conflicts_checked) == (0, 1)
    assert [v.split(": reused for another amount")[0] for v in stats.violations] == (["re-c0-1"] if violation else [])


# ---------------------------------------------------------------------------------------------- batches


def _batch_item(workload: Workload, op: Op, role: str = NEW, in_batch: bool = True, **changes: Any) -> BatchItem:
    """A new operation of a batch (registered; _batch sets its batch number), or op's key sent again (a REPLAY,
    or a CONFLICT: `changes` say what differs), op being an earlier item of the batch or (in_batch False) an
    acknowledged operation."""
    if role == NEW:
        workload.register(op)
    return BatchItem(op, role, {"operation": op.kind, **(op.body(**changes) or {})}, role != NEW and in_batch)


def _batch(workload: Workload, items: list[BatchItem]) -> Batch:
    batch = Batch(len(workload.batches) + 1, items)
    workload.batches.append(batch)
    for item in items:
        if item.role == NEW:
            item.op.batch = batch.number
    return batch


def _honest_batches(workload: Workload, run_id: str) -> tuple[list[Batch], dict[str, Op]]:
    """Two batches: a top-up and a bonus of a hot player, a spend it can afford after them and one it cannot,
    a spend of a player with no wallet, an invalid amount, the top-up's key again in the same batch (a replay)
    and the bonus's (a conflict); then a batch sending acknowledged keys of the first again (the spend's: a
    replay; the top-up's: a conflict) beside a new spend."""
    user, cold = f"{run_id}-hot0", f"{run_id}-cold0"
    n = iter(range(1, 100))

    def op(kind: str, amount: int, value: str, who: str = user) -> Op:
        return Op(f"{run_id}-c0-{next(n)}", kind, who, "GOLD_COINS", amount, value)

    top_up, bonus, spend = op("topup", 100, "stripe"), op("bonus", 20, "DAILY"), op("spend", 70, "sword")
    too_much, nobody = op("spend", 10**6, "castle"), op("spend", 1, "sword", cold)
    invalid = op("topup", 0, "stripe")
    invalid.invalid = "amount"
    first = _batch(
        workload,
        [
            _batch_item(workload, top_up),
            _batch_item(workload, bonus),
            _batch_item(workload, top_up, REPLAY),
            _batch_item(workload, spend),
            _batch_item(workload, too_much),
            _batch_item(workload, bonus, CONFLICT, bonus_type="OTHER"),
            _batch_item(workload, nobody),
            _batch_item(workload, invalid),
        ],
    )
    later = op("spend", 5, "shield")
    second = _batch(
        workload,
        [
            _batch_item(workload, spend, REPLAY, in_batch=False),  # keys of the first batch
            _batch_item(workload, later),
            _batch_item(workload, top_up, CONFLICT, in_batch=False, amount=101),
        ],
    )
    return [first, second], {o.key: o for o in (top_up, bonus, spend, too_much, nobody, invalid, later)}


async def _run_batches(db_url: str, run_id: str, middleware: Middleware | None = None) -> tuple[Stats, dict[str, Op]]:
    """The honest batches of _honest_batches, sent through the real API, judged as the torture judges."""
    stats = Stats()
    async with _api(db_url, middleware) as (base, session):
        workload = _workload(run_id, base, stats)
        (first, second), ops = _honest_batches(workload, run_id)
        await workload.execute_batch(session, first)
        await workload.execute_batch(session, second)
    return stats, ops


async def test_checker_accepts_honest_batches(db_url):
    stats, ops = await _run_batches(db_url, "b1")
    assert stats.violations == []
    answers = {key: [a[:2] for a in op.answers] for key, op in ops.items()}
    assert answers == {
        "b1-c0-1": [(201, None)],
        "b1-c0-2": [(201, None)],
        "b1-c0-3": [(201, None)],
        "b1-c0-4": [(422, "INSUFFICIENT_FUNDS")],
        "b1-c0-5": [(404, "WALLET_NOT_FOUND")],
        "b1-c0-6": [(400, "VALIDATION_ERROR")],
        "b1-c0-7": [(201, None)],
    }
    # each posting continues the one before it, in request order: 100, 120, 50 (the refusal saw 50)
    assert [ops[f"b1-c0-{i}"].acks[0]["balance"] for i in (1, 2, 3)] == [100, 120, 50]
    assert ops["b1-c0-7"].acks[0]["balance"] == 45
    assert (stats.replays_checked, stats.conflicts_checked) == (2, 2)
    assert stats.batches["answered"] == 2 and stats.batches["postings_checked_in_order"] == 4
    stats, resolution = await _check(db_url, "b1", list(ops.values()))
    assert stats.violations == [] and resolution.unknown == 0


async def test_checker_resolves_a_batch_whose_answer_was_lost(db_url):
    (first, _), ops = _honest_batches(_workload("b2", "http://unused", Stats()), "b2")
    with psycopg.connect(db_url, autocommit=True) as conn:  # its first two operations committed, unheard of
        conn.execute("SELECT * FROM wallet_post_batch(%s::jsonb)", (json.dumps(first.request()["operations"][:2]),))
    for item in first.items:
        if item.role == NEW:
            item.op.answers.append((AMBIGUOUS, "timeout", None))
    stats, resolution = await _check(db_url, "b2", [op for op in ops.values() if op.batch == first.number])
    assert stats.violations == []
    assert (resolution.unknown, resolution.unknown_committed, resolution.unknown_not_committed) == (6, 2, 4)


def _rewrite_batch(change: Callable[[list[dict[str, Any]]], object], every: bool = False) -> Middleware:
    """An API whose first POST /wallets/batch answer (every one: `every`) has its results changed by `change`."""
    answered: list[web.Request] = []

    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.path == f"{API}/wallets/batch" and response.status == 200 and (every or not answered):
            answered.append(request)

            def results(body: dict[str, Any]) -> None:
                change(body["results"])

            return _rewrite_json(response, results)
        return response

    return middleware


def _result(n: int, key: str, value: Any) -> Callable[[list[dict[str, Any]]], None]:
    def change(results: list[dict[str, Any]]) -> None:
        if key == "status":
            results[n]["status"] = value
        else:
            results[n]["body"][key] = value

    return change


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # (the first batch's answer is changed) the bonus answered with the balance before the top-up: not
        # applied in request order (and the spend after it does not continue it)
        (
            _result(1, "balance", 20),
            ["b3-c0-2: batch 1 posted bonus 20", "b3-c0-3: batch 1 posted spend 70", "b3-c0-2: acknowledged {"],
        ),
        # the spend answered as another transaction (its replay in the second batch names the real one)
        (_result(3, "transaction_id", OTHER_ID), ["b3-c0-3: acknowledged {", "b3-c0-3: replayed in batch 2"]),
        # the in-batch replay of the top-up answered as a new posting, or with another balance
        (_result(2, "status", 201), ["b3-c0-1: replayed in batch 1 answered 201"]),
        (_result(2, "balance", 7), ["b3-c0-1: replayed in batch 1 answered 200"]),
        # the conflict answered as a replay, or naming another transaction
        (lambda r: r.__setitem__(5, r[2]), ["b3-c0-2: reused in batch 1 for another amount answered 200"]),
        (
            lambda r: r[5]["body"]["error"]["details"].update(transaction_id=OTHER_ID),
            ["b3-c0-2: reused in batch 1 for another amount answered 409"],
        ),
        # the refusal for funds quoting another balance than the batch had left
        (
            lambda r: r[4]["body"]["error"]["details"].update(available=49),
            ["b3-c0-4: batch 1 refused with", "b3-c0-4: refused with"],
        ),
        # the invalid operation answered as posted
        (_result(7, "status", 201), ["b3-c0-6: invalid amount answered 201"]),
    ],
)
async def test_batch_checks_report_a_falsified_answer(db_url, change, expected):
    stats, ops = await _run_batches(db_url, "b3", _rewrite_batch(change))
    final, _ = await _check(db_url, "b3", list(ops.values()))
    violations = stats.violations + final.violations
    assert violations and all(any(v.startswith(e) for v in violations) for e in expected), violations
    assert all(any(v.startswith(e) for e in expected) for v in violations), violations


async def test_batch_checks_report_an_answer_missing_an_operation(db_url):
    stats, ops = await _run_batches(db_url, "b5", _rewrite_batch(lambda results: results.pop(), every=True))
    assert [v.split(" {")[0] for v in stats.violations] == [
        "batch 1 of 8 operations answered 200",
        "batch 2 of 3 operations answered 200",
    ]
    # nothing was judged: every new operation is looked up by its reference id, and found as it was sent
    final, resolution = await _check(db_url, "b5", list(ops.values()))
    assert final.violations == [] and (resolution.unknown, resolution.unknown_committed) == (7, 4)


def test_judge_batch_retries_an_unanswered_batch():
    stats = Stats()
    workload = _workload("b4", "http://unused", stats)
    (first, _), _ops = _honest_batches(workload, "b4")
    assert not workload.judge_batch(first, (AMBIGUOUS, "503 SERVICE_UNAVAILABLE", {}))
    assert not workload.judge_batch(first, (AMBIGUOUS, "timeout", None))
    assert stats.violations == [] and not any(item.op.final for item in first.items)
    # a refusal of the whole request: nothing to retry, and a violation (a valid batch is never refused)
    assert workload.judge_batch(first, (400, "VALIDATION_ERROR", {"error": {"code": "VALIDATION_ERROR"}}))
    assert stats.violations == ["batch 1 of 8 operations answered 400 {'error': {'code': 'VALIDATION_ERROR'}}"]


def test_available_check_orders_the_postings_of_one_batch_by_entry():
    # a batch's postings share one time: a top-up of 100 then a spend of 50, in entry order
    txs = {
        "rz-c0-1": dict(TX, user_id="rz-hot0", created_at=T0, entries=[(7, "GOLD_COINS", 100, 100)]),
        "rz-c0-2": dict(TX, type="SPEND", user_id="rz-hot0", created_at=T0, entries=[(9, "GOLD_COINS", -50, 50)]),
    }
    stats = Stats()
    checks.check_available(txs, {}, stats)
    assert stats.violations == []
    txs["rz-c0-2"]["entries"] = [(5, "GOLD_COINS", -50, 50)]  # the spend's entry first: before the money came
    checks.check_available(txs, {}, stats)
    assert len(stats.violations) == 1 and stats.violations[0].startswith("('rz-hot0', 'GOLD_COINS'): available -50")
