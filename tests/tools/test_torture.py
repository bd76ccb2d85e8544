"""The torture tool: a short run with every kind of fault must end with zero violations, and each of its checks
must catch what it claims to catch: every test below feeds one fault (a lost acknowledgement, a wrong
balance, a bad replay, a server that does not flush, ...) and expects the checker to report it."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
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
from tools.torture.records import AMBIGUOUS, Op, Stats
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
    secret = create_key(db_url, ["read", "topup", "bonus", "spend"], f"torture-test-{uuid.uuid4().hex[:8]}")
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
    assert any(v.startswith("r3-c0-2: committed {") and "sent {" in v for v in stats.violations)


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
    assert len(stats.violations) == 1 and stats.violations[0].startswith("r8-hot0: the API reports")


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
TX = dict(transaction_id=OTHER_ID, type="TOPUP", user_id="rx-hot0", asset_code="GOLD_COINS", amount=100)
WALLET = ("rx-hot0", "GOLD_COINS")


@pytest.mark.parametrize(
    ("tx", "balances", "expected"),
    [
        (
            dict(TX, entry_id=1, signed=100, balance_after=100, legs=1, duplicates=2),
            {WALLET: 100},
            "2 transactions hold",
        ),
        (dict(TX, entry_id=1, signed=100, balance_after=100, legs=2), {WALLET: 100}, "2 player legs"),
        (dict(TX, entry_id=1, signed=-100, balance_after=-100, legs=1), {WALLET: 100}, "player leg -100, expected 100"),
        (dict(TX, type="SPEND", entry_id=1, signed=-100, balance_after=0, legs=1), {WALLET: 0}, "would be -100"),
        (dict(TX, entry_id=1, signed=100, balance_after=90, legs=1), {WALLET: 100}, "balance_after 90, the model"),
        (
            dict(TX, entry_id=1, signed=100, balance_after=100, legs=1),
            {WALLET: 100, ("rx-cold0", "DIAMONDS"): -1},
            "negative balance -1",
        ),
        (dict(TX, entry_id=1, signed=100, balance_after=100, legs=1), {}, "has transactions but no wallet"),
    ],
)
def test_ledger_checks_report_what_the_constraints_should_have_prevented(tx, balances, expected):
    op = _acked(Op("rx-c0-1", "topup", "rx-hot0", "GOLD_COINS", 100, "stripe"), {})
    stats = Stats()
    txs = {op.key: tx}
    checks.check_committed({op.key: op}, txs, "rx", stats)
    checks.check_model({op.key: op}, txs, balances, "rx", stats)
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
        ("topup", (422, "INSUFFICIENT_FUNDS", {}), "INSUFFICIENT_FUNDS for a topup"),
        ("spend", (422, "BALANCE_LIMIT_EXCEEDED", {}), "BALANCE_LIMIT_EXCEEDED for a spend"),
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
