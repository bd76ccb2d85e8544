"""Database failures through the one error middleware: the registry, bounded retries, 503s, no leaks."""

from __future__ import annotations

import asyncio
import logging
import socket

import psycopg
import pytest
from aiohttp import web

from service.app import create_app
from service.database import fetch
from tests.api.helpers import error_of, snapshot, topup_body, violations


def raising_app(app_url: str, retries: int) -> web.Application:
    """The real app plus one test-only route that calls a function raising the SQLSTATE it is given (a route
    service/auth.py does not know: it needs the admin scope)."""
    app = create_app(app_url, retries=retries, pool_min_size=1, pool_max_size=4)

    async def boom(request: web.Request) -> web.Response:
        await fetch(request, "SELECT test_raise(%(state)s)", {"state": request.match_info["state"]})
        return web.json_response({})

    app.router.add_get("/api/v1/_raise/{state}", boom)
    return app


@pytest.fixture
def raise_fn(conn):
    """test_raise(state): writes a row to test_calls (rolled back with the error), counts the attempt in the
    sequence test_attempts (sequences are not rolled back), then raises that SQLSTATE with a JSON DETAIL.
    SECURITY DEFINER, like the wallet functions: the app's login has no right on the tables."""
    conn.execute("CREATE TABLE test_calls (n int)")
    conn.execute("CREATE SEQUENCE test_attempts")
    conn.execute("""
        CREATE FUNCTION test_raise(p_state text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
        BEGIN
            INSERT INTO test_calls VALUES (1);
            PERFORM nextval('test_attempts');
            RAISE EXCEPTION 'SELECT secret FROM table_x failed' USING ERRCODE = p_state,
                DETAIL = '{"required": 5, "available": 1, "transaction_id": "t", "field": "f", "message": "m"}';
        END $$""")
    return lambda: conn.execute("SELECT count(*) FROM test_calls").fetchone()[0]


@pytest.mark.parametrize("state", ["40001", "40P01", "55P03"])
async def test_transient_conflicts_are_retried_a_bounded_number_of_times(
    aiohttp_client, app_url, auth_headers, conn, raise_fn, state
):
    client = await aiohttp_client(raising_app(app_url, retries=2), headers=auth_headers)
    r = await client.get(f"/api/v1/_raise/{state}")
    assert r.status == 503
    assert r.headers["Retry-After"] == "1"
    assert (await error_of(r))["code"] == "CONCURRENCY_CONFLICT"
    assert raise_fn() == 0  # every attempt rolled back what it wrote
    attempts = conn.execute("SELECT pg_sequence_last_value('test_attempts')").fetchone()[0]
    assert attempts == 3, f"{state}: {attempts} attempts, expected the first and 2 retries"


async def test_retry_count_follows_config(aiohttp_client, app_url, auth_headers, conn):
    conn.execute("""
        CREATE FUNCTION test_raise(p_state text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
        BEGIN
            PERFORM nextval('test_attempts');
            RAISE EXCEPTION 'conflict' USING ERRCODE = p_state;
        END $$""")
    conn.execute("CREATE SEQUENCE test_attempts")  # sequences are not rolled back
    for retries in (0, 3):
        client = await aiohttp_client(raising_app(app_url, retries=retries), headers=auth_headers)
        start = conn.execute("SELECT coalesce(pg_sequence_last_value('test_attempts'), 0)").fetchone()[0]
        r = await client.get("/api/v1/_raise/40001")
        assert r.status == 503
        end = conn.execute("SELECT pg_sequence_last_value('test_attempts')").fetchone()[0]
        assert end - start == retries + 1


@pytest.mark.parametrize(
    "state,status,code",
    [
        ("WL001", 422, "INSUFFICIENT_FUNDS"),
        ("WL002", 404, "WALLET_NOT_FOUND"),
        ("WL003", 404, "ASSET_NOT_FOUND"),
        ("WL004", 409, "IDEMPOTENCY_CONFLICT"),
        ("WL005", 404, "TRANSACTION_NOT_FOUND"),
        ("WL006", 400, "VALIDATION_ERROR"),
        ("WL007", 422, "BALANCE_LIMIT_EXCEEDED"),
        ("WL008", 500, "INTERNAL_ERROR"),
        ("22012", 500, "INTERNAL_ERROR"),
        ("P0001", 500, "INTERNAL_ERROR"),
        ("57P01", 503, "SERVICE_UNAVAILABLE"),
    ],
)
async def test_registry_maps_every_sqlstate(aiohttp_client, app_url, auth_headers, raise_fn, state, status, code):
    client = await aiohttp_client(raising_app(app_url, retries=0), headers=auth_headers)
    r = await client.get(f"/api/v1/_raise/{state}")
    assert r.status == status
    error = await error_of(r)
    assert error["code"] == code
    if status == 500:
        assert error["message"] == "internal error" and error["details"] == {}
        assert "secret" not in await r.text() and "Traceback" not in await r.text()
    if code == "INSUFFICIENT_FUNDS":
        assert error["details"] == {"required": 5, "available": 1}
    if code == "IDEMPOTENCY_CONFLICT":
        assert error["details"]["transaction_id"] == "t"
    if code == "VALIDATION_ERROR":
        assert error["details"] == {"errors": [{"field": "f", "message": "m"}]}


async def test_lock_held_past_lock_timeout_is_503_then_nothing_written(
    aiohttp_client, app_url, auth_headers, home_db_url, conn
):
    client = await aiohttp_client(
        create_app(app_url, retries=0, pool_min_size=1, pool_max_size=4), headers=auth_headers
    )
    before = snapshot(conn)
    with psycopg.connect(home_db_url("user_alice")) as holder:  # a transaction that keeps alice's wallet locked
        holder.execute("SELECT 1 FROM wallets WHERE user_id = 'user_alice' AND asset_code = 'GOLD_COINS' FOR UPDATE")
        r = await client.post("/api/v1/wallets/spend", json=topup_body(amount=1, item_id="i"))
        assert r.status == 503 and r.headers["Retry-After"] == "1"
        assert (await error_of(r))["code"] == "CONCURRENCY_CONFLICT"
        holder.rollback()
    assert snapshot(conn) == before and violations(conn) == []


async def test_lock_released_during_retries_succeeds(aiohttp_client, app_url, auth_headers, home_db_url):
    client = await aiohttp_client(
        create_app(app_url, retries=2, pool_min_size=1, pool_max_size=4), headers=auth_headers
    )
    holder = await psycopg.AsyncConnection.connect(home_db_url("user_alice"))
    await holder.execute("SELECT 1 FROM wallets WHERE user_id = 'user_alice' AND asset_code = 'GOLD_COINS' FOR UPDATE")
    retried = asyncio.Event()

    class OnRetry(logging.Handler):  # service.database logs each retry before it waits and tries again
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("retrying after 55P03"):
                retried.set()

    handler, logger = OnRetry(), logging.getLogger("service.database")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        request = asyncio.ensure_future(client.post("/api/v1/wallets/spend", json=topup_body(amount=1, item_id="i")))
        # release only once the first attempt has given up waiting on the lock (lock_timeout) and is retried
        await asyncio.wait_for(retried.wait(), timeout=60)
        assert not request.done()
        await holder.rollback()
        r = await request
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        await holder.close()
    assert r.status == 201


async def test_unreachable_database_is_service_unavailable(aiohttp_client, auth_headers):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(
        f"postgresql://postgres@127.0.0.1:{port}/nope?connect_timeout=1",
        pool_min_size=1,
        pool_max_size=2,
        pool_timeout=0.5,
    )
    client = await aiohttp_client(app, headers=auth_headers)  # a well-formed key: it must be looked up
    r = await client.get("/api/v1/wallets/user_alice/balance")
    assert r.status == 503
    assert (await error_of(r))["code"] == "SERVICE_UNAVAILABLE"
    health = await client.get("/api/v1/health")
    assert health.status == 503
    assert (await health.json())["status"] == "unhealthy"


async def test_lost_connections_are_replaced_transparently(aiohttp_client, app_url, auth_headers, conn):
    client = await aiohttp_client(
        create_app(app_url, retries=3, pool_min_size=2, pool_max_size=2), headers=auth_headers
    )
    assert (await client.get("/api/v1/wallets/user_alice/balance")).status == 200
    # kill every connection of the app's pool, as a database restart would
    killed = conn.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = 'wallet-service'"
    ).fetchone()[0]
    assert killed >= 1
    health = await client.get("/api/v1/health")
    assert health.status == 200 and (await health.json())["status"] == "healthy"
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = 'wallet-service'"
    )
    r = await client.post("/api/v1/wallets/topup", json=topup_body())
    assert r.status == 201
    assert (await client.get("/api/v1/wallets/user_alice/balance")).status == 200
