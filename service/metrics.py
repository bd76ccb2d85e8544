"""Prometheus metrics: the instruments, the helpers the request path calls, and GET /metrics.

Every label takes its values from a small fixed set: a route's name (its operationId; `unmatched` for a
request no route matched), an HTTP status the service answers with, a wallet function's name, a SQLSTATE, a
transaction type and an asset code from the database's own rows, an error code of the contract. Never a
path, an id or anything else a client chooses: each label value is a series kept forever.

app[METRICS] off: no instrument is touched on the request path, and GET /metrics is 404 NOT_FOUND.

With several worker processes (`serve --workers N`), service.metrics_dir.prepare() has set
PROMETHEUS_MULTIPROC_DIR before this module's first import: each process then writes its values to files
there, and GET /metrics (whichever worker answers it) merges the files of every process, the exited ones
too (their counters still count; their pool gauges, `livesum`, are dropped by metrics_dir.worker_exited).
The pool gauges are set when a worker answers a scrape and, in multiprocess mode, every
POOL_GAUGE_SECONDS by each worker (pool_gauges_ctx): a scrape reads every worker's pool, not only its own."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator

import prometheus_client
from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from psycopg_pool import AsyncConnectionPool

from service.appkeys import METRICS, POOL

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = prometheus_client.CONTENT_TYPE_PLAIN_0_0_4  # the text format every Prometheus reads
UNMATCHED = "unmatched"  # the route label of a request no route matched (404, 405, a malformed request)
POOL_GAUGE_SECONDS = 1.0

# no `_created` series next to every counter and histogram (twice the series, and useless to a rate())
prometheus_client.disable_created_metrics()

# from 1 ms (a balance read) to the 8 s wallet deadline and beyond
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "wallet_http_requests_total",
    "HTTP requests answered, by route (the operationId; unmatched: no route) and status",
    ("route", "status"),
)
HTTP_SECONDS = Histogram(
    "wallet_http_request_duration_seconds",
    "Time from the request's arrival at the middlewares to its answer, by route",
    ("route",),
    buckets=LATENCY_BUCKETS,
)
HTTP_ERRORS = Counter(
    "wallet_http_errors_total",
    "Error answers by the contract's error code (error.code of the body)",
    ("code",),
)
DB_SECONDS = Histogram(
    "wallet_db_call_duration_seconds",
    "Database calls by wallet function: the per-wallet gate, the wait for a pooled connection, the "
    "statement and its retries; failed calls too (function other: a statement calling no wallet function)",
    ("function",),
    buckets=LATENCY_BUCKETS,
)
DB_RETRIES = Counter(
    "wallet_db_retries_total",
    "Statements retried after a transient failure, by SQLSTATE (55P03 lock timeout, 40001, 40P01; a lost "
    "connection: 08xxx, 57P0x or the exception's class)",
    ("sqlstate",),
)
POOL_SIZE = Gauge(
    "wallet_db_pool_connections", "Connections the pools hold (busy or idle)", multiprocess_mode="livesum"
)
POOL_AVAILABLE = Gauge(
    "wallet_db_pool_available_connections", "Idle connections in the pools", multiprocess_mode="livesum"
)
POOL_WAITING = Gauge(
    "wallet_db_pool_waiting_requests", "Calls waiting for a pooled connection", multiprocess_mode="livesum"
)
POOL_MAX = Gauge("wallet_db_pool_max_connections", "The pools' maximum size", multiprocess_mode="livesum")
POSTINGS = Counter(
    "wallet_postings_total",
    "New postings (replays not counted), one per asset leg, by transaction type and asset",
    ("type", "asset"),
)
EVENTS_DELIVERED = Counter("wallet_events_delivered_total", "Events written to event-stream (SSE) clients")

# the children of each label tuple, looked up once (labels() takes a lock and checks its arguments)
_requests: dict[tuple[str, int], Counter] = {}
_request_seconds: dict[str, Histogram] = {}
_errors: dict[str, Counter] = {}
_db_seconds: dict[str, Histogram] = {}
_retries: dict[str, Counter] = {}
_postings: dict[tuple[str, str], Counter] = {}

_WALLET_FUNCTION = re.compile(r"\bFROM\s+(wallet_\w+)\s*\(", re.IGNORECASE)
_functions: dict[str, str] = {}  # SQL text (the handlers' constants) -> the function it calls
_MAX_FUNCTIONS = 256


def request_done(route: str, status: int, seconds: float, error: str | None) -> None:
    """One answered request: its route's name (UNMATCHED if none), status, duration, error code if any."""
    key = (route, status)
    counter = _requests.get(key)
    if counter is None:
        counter = _requests[key] = HTTP_REQUESTS.labels(route, str(status))
    counter.inc()
    histogram = _request_seconds.get(route)
    if histogram is None:
        histogram = _request_seconds[route] = HTTP_SECONDS.labels(route)
    histogram.observe(seconds)
    if error is not None:
        errors = _errors.get(error)
        if errors is None:
            errors = _errors[error] = HTTP_ERRORS.labels(error)
        errors.inc()


def function_of(sql: str) -> str:
    """The wallet function a statement calls (`SELECT * FROM wallet_topup(...)`: wallet_topup), else other."""
    name = _functions.get(sql)
    if name is None:
        match = _WALLET_FUNCTION.search(sql)
        name = match.group(1).lower() if match else "other"
        if len(_functions) < _MAX_FUNCTIONS:  # the statements are constants; a bound all the same
            _functions[sql] = name
    return name


def db_call_done(sql: str, seconds: float) -> None:
    function = function_of(sql)
    histogram = _db_seconds.get(function)
    if histogram is None:
        histogram = _db_seconds[function] = DB_SECONDS.labels(function)
    histogram.observe(seconds)


def retried(sqlstate: str) -> None:
    counter = _retries.get(sqlstate)
    if counter is None:
        counter = _retries[sqlstate] = DB_RETRIES.labels(sqlstate)
    counter.inc()


def posted(app: web.Application, transaction_type: str, asset_code: str) -> None:
    """A new posting's leg in one asset (a replay is no posting)."""
    if not app[METRICS]:
        return
    key = (transaction_type, asset_code)
    counter = _postings.get(key)
    if counter is None:
        counter = _postings[key] = POSTINGS.labels(transaction_type, asset_code)
    counter.inc()


def events_delivered(app: web.Application, count: int) -> None:
    """Count `count` events written to SSE clients (service/events.py calls it)."""
    if app[METRICS] and count > 0:
        EVENTS_DELIVERED.inc(count)


def update_pool_gauges(pool: AsyncConnectionPool) -> None:
    stats = pool.get_stats()
    POOL_SIZE.set(stats.get("pool_size", 0))
    POOL_AVAILABLE.set(stats.get("pool_available", 0))
    POOL_WAITING.set(stats.get("requests_waiting", 0))
    POOL_MAX.set(stats.get("pool_max", 0))


# as prometheus_client decided when it was first imported (it picks how values are stored then)
_MULTIPROCESS = bool(os.environ.get(MULTIPROC_ENV))


def multiprocess() -> bool:
    """Values go to files in PROMETHEUS_MULTIPROC_DIR, shared with the other workers."""
    return _MULTIPROCESS


async def pool_gauges_ctx(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context (after the pool's): in multiprocess mode, this worker's pool gauges are written
    every POOL_GAUGE_SECONDS, so that a scrape answered by any worker sums every worker's pool. In one
    process the scrape reads the pool itself and no task runs."""
    task = None
    if app[METRICS] and multiprocess():

        async def refresh() -> None:
            while True:
                update_pool_gauges(app[POOL])
                await asyncio.sleep(POOL_GAUGE_SECONDS)

        task = asyncio.get_running_loop().create_task(refresh(), name="metrics pool gauges")
    yield
    if task is not None:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


def render() -> bytes:
    """The text format of every instrument: of every process in multiprocess mode, else of this one."""
    if multiprocess():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


async def handler(request: web.Request) -> web.Response:
    """GET /metrics, open (no API key), outside /api/v1: the Prometheus text format."""
    if not request.app[METRICS]:
        raise web.HTTPNotFound()
    update_pool_gauges(request.app[POOL])
    # multiprocess: a few small files per process to read and merge, off the event loop
    body = await asyncio.to_thread(render) if multiprocess() else render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
