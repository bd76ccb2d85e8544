"""A wallet locked by someone else costs only that wallet's requests: they end 503 CONCURRENCY_CONFLICT
(Retry-After) within 10 s, while other players' reads and writes and /health go on (service/database.py:
the per-wallet gate, the deadline, retries on the same connection; statement_timeout on the pool)."""

from __future__ import annotations

import asyncio
import statistics
import time

import psycopg
import pytest
from aiohttp import web

from service import database
from service.app import create_app
from service.database import WalletBusy, WalletGates, fetch, session_options
from service.limits import STATEMENT_TIMEOUT_MS, WALLET_CONCURRENCY, WALLET_QUEUE_LIMIT
from tests.api.helpers import error_of, snapshot, topup_body, violations

CONTRACT_SECONDS = 10.0  # "503 CONCURRENCY_CONFLICT after lock_timeout and the retries, within 10 s in all"


@pytest.fixture
def secret(conn) -> str:
    """An admin API key's secret (service/auth.py)."""
    return conn.execute("SELECT secret FROM wallet_key_create('isolation-tests', '{admin}')").fetchone()[0]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


async def test_a_stuck_wallet_costs_only_its_own_requests(aiohttp_client, db_url, home_db_url, conn, secret):
    # the service's defaults: pool of 10, 3 retries
    app = create_app(db_url, retries=3, pool_min_size=2, pool_max_size=10)
    client = await aiohttp_client(app, headers={"Authorization": f"Bearer {secret}"})
    assert (await client.get("/api/v1/wallets/user_bob/balance")).status == 200  # the pool is open
    alice_before = conn.execute(
        "SELECT balance FROM wallets WHERE user_id = 'user_alice' AND asset_code = 'GOLD_COINS'"
    ).fetchone()[0]

    # a psql session holds alice's GOLD_COINS wallet
    holder = await psycopg.AsyncConnection.connect(home_db_url("user_alice"))
    await holder.execute("SELECT 1 FROM wallets WHERE user_id = 'user_alice' AND asset_code = 'GOLD_COINS' FOR UPDATE")
    try:

        async def on_the_stuck_wallet(i: int) -> tuple[int, dict, str | None, float]:
            started = time.monotonic()
            r = await client.post("/api/v1/wallets/topup", json=topup_body(reference_id=f"stuck_{i}", amount=1))
            error = await error_of(r) if r.status >= 400 else {}
            return r.status, error, r.headers.get("Retry-After"), time.monotonic() - started

        stuck = [asyncio.ensure_future(on_the_stuck_wallet(i)) for i in range(30)]
        await asyncio.sleep(0.3)  # the 30 are queued on the wallet

        reads: list[float] = []
        others: list[tuple[str, int]] = []

        async def other_player(worker: int) -> None:
            n = 0
            while not all(task.done() for task in stuck):
                n += 1
                started = time.monotonic()
                r = await client.get("/api/v1/wallets/user_bob/balance")
                reads.append(time.monotonic() - started)
                others.append(("balance", r.status))
                r = await client.post(
                    "/api/v1/wallets/topup",
                    json=topup_body(user_id="user_charlie", reference_id=f"other_{worker}_{n}", amount=1),
                )
                others.append(("topup", r.status))
                r = await client.get("/api/v1/health")
                others.append(("health", r.status))
                await asyncio.sleep(0.02)

        await asyncio.gather(*(other_player(w) for w in range(4)))
        outcomes = await asyncio.gather(*stuck)
    finally:
        await holder.rollback()
        await holder.close()

    failed = [(what, status) for what, status in others if status not in (200, 201)]
    conflicts = sum(status == 503 and error.get("code") == "CONCURRENCY_CONFLICT" for status, error, *_ in outcomes)
    print(  # the numbers of this run, whatever the assertions below say
        f"\nstuck wallet: {conflicts} of 30 requests 503 CONCURRENCY_CONFLICT, the slowest in "
        f"{max(o[3] for o in outcomes):.2f} s; other players: {len(others)} requests, {len(failed)} failed; "
        f"balance reads p95 {p95(reads) * 1000:.0f} ms, max {max(reads) * 1000:.0f} ms over {len(reads)}"
    )
    for status, error, retry_after, seconds in outcomes:
        assert status == 503 and error["code"] == "CONCURRENCY_CONFLICT", (status, error)
        assert retry_after == "1"
        assert seconds < CONTRACT_SECONDS, seconds
    assert failed == [], failed[:10]
    assert len(reads) >= 10

    # nothing written on the stuck wallet
    alice_after = conn.execute(
        "SELECT balance FROM wallets WHERE user_id = 'user_alice' AND asset_code = 'GOLD_COINS'"
    ).fetchone()[0]
    assert alice_after == alice_before
    assert conn.execute("SELECT count(*) FROM transactions WHERE reference_id LIKE 'stuck_%'").fetchone()[0] == 0
    assert violations(conn) == []


async def test_a_full_queue_is_refused_at_once(aiohttp_client, db_url, home_db_url, conn, secret):
    app = create_app(db_url, retries=3, pool_min_size=2, pool_max_size=10)
    client = await aiohttp_client(app, headers={"Authorization": f"Bearer {secret}"})
    assert (await client.get("/api/v1/health")).status == 200
    holder = await psycopg.AsyncConnection.connect(home_db_url("user_bob"))
    await holder.execute("SELECT 1 FROM wallets WHERE user_id = 'user_bob' AND asset_code = 'GOLD_COINS' FOR UPDATE")
    before = snapshot(conn)
    try:

        async def post(i: int) -> tuple[int, float]:
            started = time.monotonic()
            body = topup_body(user_id="user_bob", reference_id=f"full_{i}", amount=1)
            r = await client.post("/api/v1/wallets/topup", json=body)
            assert (await error_of(r))["code"] == "CONCURRENCY_CONFLICT"
            return r.status, time.monotonic() - started

        extra = 3
        answers = await asyncio.gather(*(post(i) for i in range(WALLET_CONCURRENCY + WALLET_QUEUE_LIMIT + extra)))
    finally:
        await holder.rollback()
        await holder.close()
    assert {status for status, _ in answers} == {503}
    assert sum(seconds < 1.0 for _, seconds in answers) == extra  # refused without waiting
    assert max(seconds for _, seconds in answers) < CONTRACT_SECONDS
    assert snapshot(conn) == before


# ---------------------------------------------------------------- retries keep their connection


async def test_retries_stay_on_their_connection(aiohttp_client, db_url, conn, secret):
    """Each attempt records its backend pid in a sequence of its own (sequences survive the rollback): a
    retry that went back to the pool would come back on another of its four idle connections."""
    for k in range(1, 5):
        conn.execute(f"CREATE SEQUENCE test_pid_{k}")
    conn.execute("CREATE SEQUENCE test_attempts")
    conn.execute("""
        CREATE FUNCTION test_conflict() RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
            EXECUTE format('SELECT setval(%L, pg_backend_pid())', 'test_pid_' || nextval('test_attempts'));
            RAISE EXCEPTION 'conflict' USING ERRCODE = '40001';
        END $$""")
    app = create_app(db_url, retries=3, pool_min_size=4, pool_max_size=4)

    async def conflict(request: web.Request) -> web.Response:
        await fetch(request, "SELECT test_conflict()", wallet=("user_alice", "GOLD_COINS"))
        return web.json_response({})

    app.router.add_get("/api/v1/_conflict", conflict)
    client = await aiohttp_client(app, headers={"Authorization": f"Bearer {secret}"})
    for _ in range(20):  # the pool has its four connections
        if (
            conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wallet-service'").fetchone()[
                0
            ]
            >= 4
        ):
            break
        await asyncio.sleep(0.1)
    r = await client.get("/api/v1/_conflict")
    assert r.status == 503 and (await error_of(r))["code"] == "CONCURRENCY_CONFLICT"
    pids = [conn.execute(f"SELECT last_value FROM test_pid_{k}").fetchone()[0] for k in range(1, 5)]
    assert len(set(pids)) == 1, pids


# ---------------------------------------------------------------- statement_timeout


def test_session_options_set_the_statement_timeout(db_url):
    with psycopg.connect(db_url, options=session_options(db_url)) as c:
        assert c.execute("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'").fetchone()[0] == str(
            STATEMENT_TIMEOUT_MS
        )
        with pytest.raises(psycopg.errors.QueryCanceled):
            c.execute("SELECT pg_sleep(%s)", (STATEMENT_TIMEOUT_MS / 1000 + 1,))


def test_session_options_keep_the_urls_own_options(db_url):
    url = db_url + "?options=-c%20work_mem%3D7MB"
    with psycopg.connect(url, options=session_options(url)) as c:
        assert c.execute("SHOW work_mem").fetchone()[0] == "7MB"
        assert c.execute("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'").fetchone()[0] == str(
            STATEMENT_TIMEOUT_MS
        )


# ---------------------------------------------------------------- the gate itself


async def test_gate_admits_in_order_and_forgets_idle_wallets():
    gates = WalletGates(concurrency=2, queue_limit=3)
    loop = asyncio.get_running_loop()
    order: list[int] = []
    release = asyncio.Event()

    async def call(i: int) -> None:
        async with gates.slot("w", loop.time() + 5):
            order.append(i)
            await release.wait()

    tasks = [asyncio.ensure_future(call(i)) for i in range(5)]
    await asyncio.sleep(0.05)
    assert order == [0, 1]  # two at once, three waiting
    with pytest.raises(WalletBusy):  # a fourth waiter is one too many
        async with gates.slot("w", loop.time() + 5):
            pass
    async with gates.slot("other", loop.time() + 5):  # another wallet is not held up
        pass
    release.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert len(gates) == 0


async def test_gate_deadline_and_cancellation_free_the_slot():
    gates = WalletGates(concurrency=1, queue_limit=5)
    loop = asyncio.get_running_loop()
    hold = asyncio.Event()

    async def holder() -> None:
        async with gates.slot("w", loop.time() + 5):
            await hold.wait()

    first = asyncio.ensure_future(holder())
    await asyncio.sleep(0.01)
    started = time.monotonic()
    with pytest.raises(WalletBusy):
        async with gates.slot("w", loop.time() + 0.2):
            pass
    assert 0.15 < time.monotonic() - started < 1
    waiting = asyncio.ensure_future(holder())
    await asyncio.sleep(0.01)
    waiting.cancel()
    hold.set()
    await first
    assert len(gates) == 0
    async with gates.slot("w", loop.time() + 0.1):
        pass


def test_gate_constants_leave_room_in_the_pool():
    """Two stuck wallets together hold fewer than the default pool of 10."""
    assert 2 * WALLET_CONCURRENCY < 10
    assert database.WALLET_DEADLINE_SECONDS < CONTRACT_SECONDS - 1
