"""GET /api/v1/events: a Server-Sent Events stream of committed transactions, and the per-process hub that
wakes the streams.

The database numbers events (wallet_events_sequence, procedures/): every committed transaction gets the next
id, 1, 2, 3... without gaps, and only once it is committed, so "the events after the last id I saw" misses
nothing, even when transactions commit out of the order they started in. A stream is a loop over
wallet_events (one statement, through service.database.fetch): read a page after its position, write it,
repeat while pages are full; once caught up, wait for the hub's wake-up or the heartbeat.

The hub (one per app, so one per worker process) holds one dedicated connection that LISTENs on
wallet_events and, while anyone streams, runs the sequencer every TICK_SECONDS (so postings made from psql
or by other workers get numbered too); every NOTIFY, its own or another process's, wakes the local streams.
The NOTIFY is only a wake-up: the events themselves are always read from the table, so a lost notification
costs at most a TICK_SECONDS delay, never an event.

Memory per stream is one page: a write waits (aiohttp drains the socket every 64 KiB) until the client reads,
so a client that stops reading stops only its own stream, and one stuck in a write for WRITE_TIMEOUT_SECONDS
is disconnected (it resumes with Last-Event-ID). At most MAX_STREAMS streams per process (503 beyond: half the
listener's connection cap), at most one read per TICK_SECONDS per caught-up stream (and one per heartbeat when
idle), and at most half the pool reading for streams at once, so streams never starve the API of connections.
At shutdown every stream ends at once (on_shutdown): an endless response must not hold SIGTERM for the server's
30 s grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
from aiohttp import web
from multidict import MultiMapping
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from service import metrics
from service.api_errors import RETRY_AFTER_SECONDS, ApiError
from service.appkeys import POOL, REQUEST_ID
from service.database import fetch
from service.handlers import iso
from service.limits import HISTORY_MAX_LIMIT, MAX_CONNECTIONS
from service.middleware import REQUEST_ID_HEADER, SERVER_HEADER
from service.validation import FieldErrors

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0  # a comment line on a stream with no event for this long (keeps proxies from cutting it)
TICK_SECONDS = 0.2  # the hub numbers waiting transactions this often; a caught-up stream reads at most this often
# open streams per process; beyond, 503 SERVICE_UNAVAILABLE with Retry-After. Half the listener's connection cap:
# a stream holds its connection busy for good, and streams must never take every connection from the API
MAX_STREAMS = MAX_CONNECTIONS // 2
WRITE_TIMEOUT_SECONDS = 30.0  # a client that takes longer than this to accept one page (or heartbeat) is dropped
SHUTDOWN_GRACE_SECONDS = 1.0  # at shutdown, streams still busy after this (a write, a read) are cut off
DISCONNECT_CHECK_SECONDS = 1.0  # how often an idle stream notices that its client went away
RECONNECT_SECONDS = 1.0  # the hub's pause before it reconnects its LISTEN connection
HUB_IDLE_SECONDS = 30.0  # the hub keeps its connection this long after the last stream ended
PAGE = HISTORY_MAX_LIMIT  # events per read: wallet_events' largest page (_wallet_max_page())
CHANNEL = "wallet_events"  # what wallet_events_sequence() NOTIFYs
LAST_EVENT_ID = "Last-Event-ID"
QUERY_PARAMETERS = frozenset({"user_id", "last_event_id"})
MAX_EVENT_ID = 2**63 - 1  # PostgreSQL's bigint
HEARTBEAT = b": heartbeat\n\n"

READ = (
    "SELECT event_id, transaction_id, reference_id, type, user_id, legs, created_at "
    "FROM wallet_events(p_after => %(after)s::bigint, p_user_id => %(user_id)s, p_limit => %(limit)s::int)"
)


class SlowClient(Exception):
    """The client did not accept a write within WRITE_TIMEOUT_SECONDS."""


# ---------------------------------------------------------------- the request


def _event_id(problems: FieldErrors, field: str, raw: str | None) -> int | None:
    if raw is None:
        return None
    if raw.isascii() and raw.isdigit() and len(raw) <= len(str(MAX_EVENT_ID)) and int(raw) <= MAX_EVENT_ID:
        return int(raw)
    problems.add(field, "must be a non-negative integer: the id of the last event received")
    return None


def _once(problems: FieldErrors, values: list[str], field: str) -> str | None:
    if len(values) > 1:
        problems.add(field, "must be given once")
        return None
    return values[0] if values else None


def stream_query(query: MultiMapping[str], headers: MultiMapping[str]) -> tuple[int, str | None]:
    """(the last event id the client has, the player to follow or None): the Last-Event-ID header (what an
    EventSource sends when it reconnects) wins over the last_event_id query parameter (what a browser can
    send on its first connect); neither: 0, from the first event. 400 VALIDATION_ERROR naming each bad one."""
    problems = FieldErrors()
    problems.unknown(list(query), QUERY_PARAMETERS, "query parameter")
    user_id = problems.ident("user_id", _once(problems, query.getall("user_id", []), "user_id"), required=False)
    from_query = _event_id(
        problems, "last_event_id", _once(problems, query.getall("last_event_id", []), "last_event_id")
    )
    from_header = _event_id(problems, LAST_EVENT_ID, _once(problems, headers.getall(LAST_EVENT_ID, []), LAST_EVENT_ID))
    problems.raise_any()
    after = from_header if from_header is not None else from_query
    return after or 0, user_id


def frame(row: dict[str, Any]) -> bytes:
    """One event as SSE: id, event type, and its JSON on one data line (json.dumps escapes every line break)."""
    data = {
        "transaction_id": str(row["transaction_id"]),
        "reference_id": row["reference_id"],
        "type": row["type"],
        "user_id": row["user_id"],
        "legs": row["legs"],
        "created_at": iso(row["created_at"]),
    }
    return f"id: {row['event_id']}\nevent: transaction\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


# ---------------------------------------------------------------- the hub


class Hub:
    """One app's event streams and the task that wakes them (see the module's docstring)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        self.streams: dict[int, web.Request] = {}  # by id(): a request is a mapping, so not hashable
        self.closing = False
        self.listening = asyncio.Event()  # set while the LISTEN connection is up (tests wait for it)
        self._signal = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reads = asyncio.Semaphore(max(1, pool.max_size // 2))

    def signal(self) -> asyncio.Event:
        """The event the next wake() sets: take it before reading, so a wake-up during the read is not lost."""
        return self._signal

    def wake(self) -> None:
        self._signal.set()
        self._signal = asyncio.Event()

    @contextlib.contextmanager
    def admit(self, request: web.Request) -> Iterator[None]:
        """Count the stream in for the block; 503 SERVICE_UNAVAILABLE when MAX_STREAMS are open, or at shutdown."""
        if self.closing or len(self.streams) >= MAX_STREAMS:
            why = "the service is shutting down" if self.closing else f"{MAX_STREAMS} event streams are open already"
            raise ApiError(
                503,
                "SERVICE_UNAVAILABLE",
                f"no event stream available: {why}; retry after Retry-After seconds",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
        self.streams[id(request)] = request
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="wallet-event-hub")
        try:
            yield
        finally:
            del self.streams[id(request)]

    async def read(self, request: web.Request, after: int, user_id: str | None) -> list[dict[str, Any]]:
        """One page of events after `after` (one call of wallet_events, which numbers what waits first)."""
        async with self._reads:
            return await fetch(request, READ, {"after": after, "user_id": user_id, "limit": PAGE})

    async def _run(self) -> None:
        """While anyone streams: LISTEN, number what waits every TICK_SECONDS, wake the streams on each
        NOTIFY; reconnect when the connection drops. Ends HUB_IDLE_SECONDS after the last stream."""
        loop = asyncio.get_running_loop()
        idle_since: float | None = None
        conninfo, pool_kwargs = self._pool.conninfo, self._pool.kwargs  # the pool's connection settings
        assert isinstance(conninfo, str) and isinstance(pool_kwargs, dict)
        kwargs = {**pool_kwargs, "autocommit": True, "application_name": "wallet-service events"}
        while not self.closing:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, **kwargs) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    log.info("event hub listening on %s", CHANNEL)
                    self.wake()  # whatever was numbered while nobody listened
                    while not self.closing:
                        if self.streams:
                            idle_since = None
                        elif idle_since is None:
                            idle_since = loop.time()
                        elif loop.time() - idle_since > HUB_IDLE_SECONDS:
                            if self._task is asyncio.current_task():
                                self._task = None  # a stream admitted from now on starts a new hub task
                            log.info("event hub idle: closing its connection")
                            return
                        cur = await conn.execute("SELECT wallet_events_sequence()")
                        row = await cur.fetchone()
                        if row and row[0]:
                            self.wake()
                        deadline = loop.time() + TICK_SECONDS
                        while not self.closing and (remaining := deadline - loop.time()) > 0:
                            async for _note in conn.notifies(timeout=remaining, stop_after=1):
                                self.wake()
            except psycopg.Error as exc:
                if self.closing:
                    return
                log.warning(
                    "event hub lost its database connection (%s: %s); reconnecting in %g s",
                    exc.sqlstate or type(exc).__name__,
                    exc,
                    RECONNECT_SECONDS,
                )
            except Exception:  # a bug: logged, and the hub carries on (streams also read on every heartbeat)
                log.exception("event hub failed; restarting in %g s", RECONNECT_SECONDS)
            finally:
                self.listening.clear()
            await asyncio.sleep(RECONNECT_SECONDS)

    async def shutdown(self) -> None:
        """End every stream: tell them, wake them, then cut off those still busy after SHUTDOWN_GRACE_SECONDS."""
        self.closing = True
        self.wake()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_GRACE_SECONDS
        while self.streams and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for request in list(self.streams.values()):
            if request.transport is not None:
                request.transport.abort()  # a write or a read in progress then fails, and the stream ends

    async def stop(self) -> None:
        self.closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


HUB = web.AppKey("event_hub", Hub)


async def _on_shutdown(app: web.Application) -> None:
    await app[HUB].shutdown()


async def hub_ctx(app: web.Application) -> AsyncIterator[None]:
    """The app's hub (after the pool in app.cleanup_ctx: it stops before the pool closes); its streams end in
    on_shutdown, before aiohttp waits for in-flight handlers."""
    hub = Hub(app[POOL])
    app[HUB] = hub
    try:
        app.on_shutdown.append(_on_shutdown)
    except RuntimeError:  # frozen already (a sub-application): streams then end when the server gives up on them
        log.warning("event streams will not end promptly at shutdown: the app's on_shutdown is frozen")
    yield
    await hub.stop()


# ---------------------------------------------------------------- the stream


def _gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


async def _write(response: web.StreamResponse, data: bytes) -> None:
    """Write and wait until the client takes it (aiohttp drains every 64 KiB): SlowClient past the timeout."""
    try:
        async with asyncio.timeout(WRITE_TIMEOUT_SECONDS):
            await response.write(data)
    except TimeoutError:
        raise SlowClient from None


async def _follow(
    request: web.Request,
    response: web.StreamResponse,
    hub: Hub,
    position: int,
    user_id: str | None,
    rows: list[dict[str, Any]],
    wake: asyncio.Event,
) -> None:
    """Write pages until the end: the client goes away, or the service shuts down."""
    loop = asyncio.get_running_loop()
    last_read = last_write = loop.time()
    while not hub.closing:
        if rows:
            await _write(response, b"".join(frame(row) for row in rows))
            metrics.events_delivered(request.app, len(rows))
            position = rows[-1]["event_id"]
            last_write = loop.time()
        if len(rows) < PAGE:
            # caught up: until a wake-up or a heartbeat (after which it reads anyway: a stream never depends on
            # the hub alone), or the end
            while not wake.is_set():
                if hub.closing or _gone(request):
                    return
                heartbeat_in = last_write + HEARTBEAT_SECONDS - loop.time()
                if heartbeat_in <= 0:
                    await _write(response, HEARTBEAT)
                    last_write = loop.time()
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(heartbeat_in, DISCONNECT_CHECK_SECONDS)):
                        await wake.wait()
            # a burst of wake-ups costs one read per TICK_SECONDS
            await asyncio.sleep(max(0.0, last_read + TICK_SECONDS - loop.time()))
        if hub.closing:
            return
        wake = hub.signal()
        last_read = loop.time()
        rows = await hub.read(request, position, user_id)


async def stream(request: web.Request) -> web.StreamResponse:
    """GET /events[?user_id=][&last_event_id=] (or the Last-Event-ID header): every event after that id, then
    each new one as it is committed, as Server-Sent Events."""
    after, user_id = stream_query(request.query, request.headers)
    hub = request.app[HUB]
    with hub.admit(request):
        wake = hub.signal()
        # the first page before the response starts: a bad or too-new Last-Event-ID (400) or an unreachable
        # database (503) is an ordinary error answer
        rows = await hub.read(request, after, user_id)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # a proxy (nginx) must not buffer the stream
                # the request middleware sets these once the handler returns, too late for a stream
                REQUEST_ID_HEADER: request[REQUEST_ID],
                "Server": SERVER_HEADER,
            }
        )
        await response.prepare(request)
        try:
            await _follow(request, response, hub, after, user_id, rows, wake)
        except SlowClient:
            log.info(
                "event stream %s: the client took no data for %g s; disconnected",
                request[REQUEST_ID],
                WRITE_TIMEOUT_SECONDS,
            )
            if request.transport is not None:
                request.transport.abort()
        except ConnectionError:
            log.debug("event stream %s: the client went away", request[REQUEST_ID])
        except (psycopg.Error, PoolTimeout, ApiError) as exc:
            # the stream ends; the client reconnects with Last-Event-ID and misses nothing
            log.warning("event stream %s ended: %s: %s", request[REQUEST_ID], type(exc).__name__, exc)
        return response
