"""GET /metrics: the instruments move as requests flow, exactly; no label carries what a client chose; the
switch off leaves every instrument alone and answers 404; several processes writing into one
PROMETHEUS_MULTIPROC_DIR are summed by the scrape of any of them; the Grafana dashboard names only metrics
that exist.

In this process prometheus_client keeps one registry for every app the tests build: each test compares a
scrape after its requests with one before them. Multiprocess mode is only ever turned on in subprocesses
(prometheus_client picks it when first imported)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from service import metrics, metrics_dir
from service.app import create_app
from service.database import fetch
from tests.api.helpers import error_of, topup_body
from tools.launcher import free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"

Sample = tuple[str, tuple[tuple[str, str], ...]]


def parse(text: str) -> dict[Sample, float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[Sample, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: dict[Sample, float], after: dict[Sample, float], name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def scrape(client) -> dict[Sample, float]:
    r = await client.get("/metrics")  # no Authorization header: /metrics is open
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(await r.text())


@pytest.fixture
async def client(aiohttp_client, app_url):
    """A client that sends no key of its own: the tests pass auth headers where a route needs them."""
    return await aiohttp_client(create_app(app_url, pool_min_size=1, pool_max_size=7))


async def test_requests_are_counted_by_route_and_status_with_their_latency(client, auth_headers):
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get("/api/v1/health")).status == 200
    for _ in range(2):
        assert (await client.get("/api/v1/wallets/user_alice/balance", headers=auth_headers)).status == 200
    assert (await client.get("/api/v1/wallets/nobody/balance", headers=auth_headers)).status == 404
    after = await scrape(client)
    assert delta(before, after, "wallet_http_requests_total", route="health", status="200") == 3
    assert delta(before, after, "wallet_http_requests_total", route="getBalance", status="200") == 2
    assert delta(before, after, "wallet_http_requests_total", route="getBalance", status="404") == 1
    assert delta(before, after, "wallet_http_requests_total", route="metrics", status="200") == 1  # the 1st scrape
    assert delta(before, after, "wallet_http_request_duration_seconds_count", route="health") == 3
    assert delta(before, after, "wallet_http_request_duration_seconds_count", route="getBalance") == 3
    assert delta(before, after, "wallet_http_request_duration_seconds_sum", route="getBalance") > 0
    assert delta(before, after, "wallet_http_errors_total", code="WALLET_NOT_FOUND") == 1
    # database calls by wallet function: 3 balance reads; the health checks' SELECT 1 is `other`
    assert delta(before, after, "wallet_db_call_duration_seconds_count", function="wallet_balances") == 3
    assert delta(before, after, "wallet_db_call_duration_seconds_count", function="other") == 3
    # the pool gauges: this app's pool, read when the scrape is answered
    assert value(after, "wallet_db_pool_max_connections") == 7
    assert 1 <= value(after, "wallet_db_pool_connections") <= 7
    assert 0 <= value(after, "wallet_db_pool_available_connections") <= value(after, "wallet_db_pool_connections")
    assert value(after, "wallet_db_pool_waiting_requests") == 0


async def test_postings_are_counted_per_leg_by_type_and_asset_replays_not(client, auth_headers):
    async def post(path: str, body: dict | None = None, status: int = 201) -> dict:
        r = await client.post(f"/api/v1{path}", json=body, headers=auth_headers)
        assert r.status == status, await r.text()
        return await r.json()

    before = await scrape(client)
    topup = topup_body(reference_id="m-topup")
    await post("/wallets/topup", topup)
    await post("/wallets/topup", topup, status=200)  # a replay: no posting
    await post("/wallets/bonus", topup_body(reference_id="m-bonus", asset_code="DIAMONDS", bonus_type="B"))
    await post("/wallets/spend", topup_body(reference_id="m-spend", amount=10, item_id="sword"))
    price = [{"asset_code": "GOLD_COINS", "amount": 100}, {"asset_code": "DIAMONDS", "amount": 5}]
    buy = {"user_id": "user_alice", "reference_id": "m-buy", "item_id": "bundle", "price": price}
    await post("/wallets/purchase", buy)
    await post("/wallets/purchase", buy, status=200)
    refund = {"reference_id": "m-refund", "original_reference_id": "m-buy", "reason": "undelivered"}
    await post("/wallets/reverse", refund)
    await post("/wallets/reverse", refund, status=200)
    await post("/wallets/hold", topup_body(reference_id="m-hold", amount=30))  # a hold posts nothing
    await post("/holds/m-hold/capture")
    await post("/holds/m-hold/capture", status=200)
    after = await scrape(client)
    moved = {
        labels: after[(name, labels)] - before.get((name, labels), 0.0)
        for name, labels in after
        if name == "wallet_postings_total" and after[(name, labels)] != before.get((name, labels), 0.0)
    }
    assert {tuple(v for _, v in labels): n for labels, n in moved.items()} == {
        ("GOLD_COINS", "TOPUP"): 1,
        ("DIAMONDS", "BONUS"): 1,
        ("GOLD_COINS", "SPEND"): 1,
        ("GOLD_COINS", "PURCHASE"): 1,
        ("DIAMONDS", "PURCHASE"): 1,
        ("GOLD_COINS", "REVERSAL"): 1,
        ("DIAMONDS", "REVERSAL"): 1,
        ("GOLD_COINS", "CAPTURE"): 1,
    }
    assert delta(before, after, "wallet_http_requests_total", route="topup", status="201") == 1
    assert delta(before, after, "wallet_http_requests_total", route="topup", status="200") == 1


async def test_error_answers_are_counted_by_code(client, auth_headers):
    before = await scrape(client)
    assert (await client.get("/api/v1/wallets/user_alice/balance")).status == 401  # no key
    assert (await client.get("/api/v1/wallets/user_alice/balance")).status == 401
    assert (await client.post("/api/v1/health")).status == 405
    r = await client.post("/api/v1/wallets/topup", json={"user_id": "user_alice"}, headers=auth_headers)
    assert (await error_of(r))["code"] == "VALIDATION_ERROR"
    spend = topup_body(reference_id="m-broke", amount=10**9, item_id="castle")
    r = await client.post("/api/v1/wallets/spend", json=spend, headers=auth_headers)
    assert (await error_of(r))["code"] == "INSUFFICIENT_FUNDS"
    after = await scrape(client)
    assert delta(before, after, "wallet_http_errors_total", code="UNAUTHENTICATED") == 2
    assert delta(before, after, "wallet_http_errors_total", code="METHOD_NOT_ALLOWED") == 1
    assert delta(before, after, "wallet_http_errors_total", code="VALIDATION_ERROR") == 1
    assert delta(before, after, "wallet_http_errors_total", code="INSUFFICIENT_FUNDS") == 1
    assert delta(before, after, "wallet_http_requests_total", route="getBalance", status="401") == 2
    assert delta(before, after, "wallet_http_requests_total", route="unmatched", status="405") == 1
    assert delta(before, after, "wallet_http_requests_total", route="spend", status="422") == 1


@pytest.fixture
def raise_55p03(conn) -> None:
    """test_lock_timeout(): raises SQLSTATE 55P03 (a lock timeout) every time it is called."""
    conn.execute(
        """CREATE FUNCTION test_lock_timeout() RETURNS void LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'lock timeout' USING ERRCODE = '55P03'; END $$"""
    )
    conn.execute("GRANT EXECUTE ON FUNCTION test_lock_timeout() TO PUBLIC")


async def test_retries_are_counted_by_sqlstate(aiohttp_client, app_url, auth_headers, raise_55p03):
    app = create_app(app_url, retries=2, pool_min_size=1, pool_max_size=4)

    async def locked(request: web.Request) -> web.Response:
        await fetch(request, "SELECT test_lock_timeout()")
        return web.json_response({})

    app.router.add_get("/api/v1/_locked", locked)
    client = await aiohttp_client(app, headers=auth_headers)
    before = await scrape(client)
    r = await client.get("/api/v1/_locked")
    assert (await error_of(r))["code"] == "CONCURRENCY_CONFLICT"
    after = await scrape(client)
    assert delta(before, after, "wallet_db_retries_total", sqlstate="55P03") == 2  # 3 attempts, 2 retries
    assert delta(before, after, "wallet_http_errors_total", code="CONCURRENCY_CONFLICT") == 1
    assert delta(before, after, "wallet_db_call_duration_seconds_count", function="other") == 1  # one call


async def test_events_delivered_are_counted(aiohttp_client, app_url):
    on = create_app(app_url, pool_min_size=1, pool_max_size=2)
    off = create_app(app_url, pool_min_size=1, pool_max_size=2, metrics_on=False)
    client = await aiohttp_client(on)
    before = await scrape(client)
    metrics.events_delivered(on, 3)
    metrics.events_delivered(on, 1)
    metrics.events_delivered(off, 5)  # metrics off: not counted
    after = await scrape(client)
    assert delta(before, after, "wallet_events_delivered_total") == 4


async def test_no_label_carries_a_path_or_an_id(client, auth_headers):
    """Random paths (404), random ids in a route's path and random request ids: the series stay few, and no
    label value holds anything the client sent."""
    before = await scrape(client)
    tokens = [uuid.uuid4().hex for _ in range(40)]
    for token in tokens[:20]:
        assert (await client.get(f"/{token}/x", headers={"X-Request-Id": token})).status == 404
    for token in tokens[20:]:
        r = await client.get(f"/api/v1/wallets/{token}/balance", headers=auth_headers)
        assert r.status == 404
    after = await scrape(client)
    new_series = set(after) - set(before)
    assert len(new_series) <= 10, sorted(new_series)  # at most a few (route, status) pairs were new
    label_values = {v for _, labels in after for _, v in labels}
    assert not any(token in v for token in tokens for v in label_values)
    assert not any("/" in v for v in label_values)
    assert delta(before, after, "wallet_http_requests_total", route="unmatched", status="404") == 20
    assert delta(before, after, "wallet_http_requests_total", route="getBalance", status="404") == 20


async def test_metrics_off_touches_nothing_and_answers_404(aiohttp_client, app_url, auth_headers):
    client = await aiohttp_client(create_app(app_url, pool_min_size=1, pool_max_size=2, metrics_on=False))
    before = parse(metrics.render().decode())
    r = await client.get("/metrics")
    assert r.status == 404
    assert await r.json() == {"error": {"code": "NOT_FOUND", "message": "no such route", "details": {}}}
    assert (await client.get("/api/v1/health")).status == 200
    assert (await client.get("/api/v1/nope")).status == 404
    r = await client.post("/api/v1/wallets/topup", json=topup_body(reference_id="off-1"), headers=auth_headers)
    assert r.status == 201
    after = parse(metrics.render().decode())
    wallet = {k: v for k, v in after.items() if k[0].startswith("wallet_")}
    assert wallet == {k: v for k, v in before.items() if k[0].startswith("wallet_")}


# ---------------------------------------------------------------- several processes


SERVE = """
import sys
from service import listener, metrics
from service.app import create_app

app = create_app(sys.argv[1], pool_min_size=1, pool_max_size=3)
if metrics.pool_gauges_ctx not in app.cleanup_ctx:
    app.cleanup_ctx.append(metrics.pool_gauges_ctx)
listener.run(app, "127.0.0.1", int(sys.argv[2]), on_ready=lambda _: print("ready", flush=True))
"""


def get(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=30) as r:
        return r.status, r.read().decode()


@pytest.fixture
def multiproc_env(tmp_path) -> dict[str, str]:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    return {**os.environ, "PYTHONPATH": str(ROOT), metrics_dir.ENV: str(directory)}


@pytest.fixture
def two_workers(app_url, multiproc_env, tmp_path) -> Iterator[list[tuple[subprocess.Popen[str], int]]]:
    """Two service processes, each with its own port, pool (max 3) and metrics files in one directory."""
    procs = []
    try:
        for i in range(2):
            port = free_port()
            with open(tmp_path / f"worker{i}.log", "w") as err:
                proc = subprocess.Popen(
                    [sys.executable, "-c", SERVE, app_url, str(port)],
                    cwd=ROOT,
                    env=multiproc_env,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                )
            procs.append((proc, port))
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", (tmp_path / f"worker{i}.log").read_text()
        yield procs
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(timeout=40)
            if proc.stdout:
                proc.stdout.close()


def test_a_scrape_sums_every_process_of_the_multiprocess_dir(two_workers, multiproc_env):
    (_, port_a), (second, port_b) = two_workers
    for _ in range(3):
        assert get(f"http://127.0.0.1:{port_a}/api/v1/health")[0] == 200
    for _ in range(5):
        assert get(f"http://127.0.0.1:{port_b}/api/v1/health")[0] == 200
    time.sleep(2 * metrics.POOL_GAUGE_SECONDS)  # each worker writes its pool gauges every second
    for port in (port_a, port_b):  # whichever process answers, the scrape sums both
        samples = parse(get(f"http://127.0.0.1:{port}/metrics")[1])
        assert value(samples, "wallet_http_requests_total", route="health", status="200") == 8
        assert value(samples, "wallet_http_request_duration_seconds_count", route="health") == 8
        assert value(samples, "wallet_db_pool_max_connections") == 6  # 3 + 3: both pools
    # the second process exits: its counts stay, its pool no longer counts once the parent says it is gone
    second.terminate()
    second.wait(timeout=40)
    forget = f"from service import metrics_dir; metrics_dir.worker_exited({second.pid})"
    subprocess.run([sys.executable, "-c", forget], cwd=ROOT, env=multiproc_env, check=True)
    samples = parse(get(f"http://127.0.0.1:{port_a}/metrics")[1])
    assert value(samples, "wallet_http_requests_total", route="health", status="200") == 8
    assert value(samples, "wallet_db_pool_max_connections") == 3
    # the 2 earlier scrapes (one by each process); a scrape is counted once answered, after its own text
    assert value(samples, "wallet_http_requests_total", route="metrics", status="200") == 2


def test_prepare_makes_a_private_directory_and_cleanup_removes_it(monkeypatch, tmp_path):
    monkeypatch.delenv(metrics_dir.ENV, raising=False)
    try:
        made = metrics_dir.prepare()
        assert os.environ[metrics_dir.ENV] == str(made)
        assert made.is_dir() and made.stat().st_mode & 0o777 == 0o700 and not any(made.iterdir())
        assert metrics_dir.prepare() == made  # again: still ours
        (made / "counter_123.db").write_bytes(b"")
        assert metrics_dir.prepare() == made  # ours even once the workers wrote into it
    finally:
        metrics_dir.cleanup()
    assert not made.exists() and metrics_dir.ENV not in os.environ
    # an operator's directory: used if it exists and is empty, never removed
    given = tmp_path / "given"
    monkeypatch.setenv(metrics_dir.ENV, str(given))
    with pytest.raises(SystemExit):
        metrics_dir.prepare()  # missing
    given.mkdir()
    assert metrics_dir.prepare() == given
    metrics_dir.cleanup()
    assert given.is_dir()
    (given / "counter_99.db").write_bytes(b"")
    with pytest.raises(SystemExit):
        metrics_dir.prepare()  # an earlier run's files


# ---------------------------------------------------------------- the dashboard


def exposed() -> dict[str, set[str]]:
    """Each instrument of the service: the sample names it can expose."""
    series: dict[str, set[str]] = {}
    for instrument in vars(metrics).values():
        if isinstance(instrument, MetricWrapperBase):
            (family,) = instrument.describe()
            if family.type == "counter":
                series[family.name] = {family.name + "_total"}
            elif family.type == "histogram":
                series[family.name] = {family.name + suffix for suffix in ("_bucket", "_count", "_sum")}
            else:
                series[family.name] = {family.name}
    return series


def test_the_dashboard_names_only_metrics_that_exist_and_shows_every_one():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", []) if "expr" in target]
    assert len(exprs) >= 8
    used = {name for expr in exprs for name in re.findall(r"\bwallet_[a-z_]+", expr)}
    instruments = exposed()
    assert len(instruments) == 11
    assert used <= set().union(*instruments.values()), used - set().union(*instruments.values())
    assert [name for name, series in instruments.items() if not series & used] == []  # every one is shown


async def test_a_request_the_http_parser_refuses_is_counted_and_follows_the_access_log_switch(app_url, caplog):
    """aiohttp's parser refuses it before any middleware runs (service/listener.py answers it): it is still
    counted as route `unmatched`, and logged unless the app's access log is off."""
    import asyncio
    import logging

    from service import listener
    from tests.api.test_hostile_input import listening

    async def malformed(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")
        await writer.drain()
        answer = await reader.read()
        writer.close()
        return answer

    for access_log in (True, False):
        app = create_app(app_url, pool_min_size=1, pool_max_size=2, access_log=access_log)
        async with listening(app) as (port, runner):
            assert isinstance(runner.server, listener._Server) and runner.server.app is app
            before = parse(metrics.prometheus_client.generate_latest().decode())
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="service.access"):
                answer = await malformed(port)
            after = parse(metrics.prometheus_client.generate_latest().decode())
        assert answer.split(b" ", 2)[1] == b"400", answer
        assert delta(before, after, "wallet_http_requests_total", route="unmatched", status="400") == 1
        assert delta(before, after, "wallet_http_errors_total", code="VALIDATION_ERROR") == 1
        lines = [r for r in caplog.records if r.name == "service.access"]
        assert len(lines) == (1 if access_log else 0), [r.getMessage() for r in lines]
