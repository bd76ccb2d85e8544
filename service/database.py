"""The one place that talks to the database: one statement per call, bounded retries of transient failures,
and a per-wallet admission gate so that one stuck wallet can never take the whole pool."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Hashable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import psycopg
from aiohttp import web
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from service import metrics
from service.api_errors import DB_ERRORS, RETRY_AFTER_SECONDS, ApiError, connection_lost, retryable
from service.appkeys import METRICS, POOL, RETRIES
from service.limits import STATEMENT_TIMEOUT_MS, WALLET_CONCURRENCY, WALLET_DEADLINE_SECONDS, WALLET_QUEUE_LIMIT

log = logging.getLogger(__name__)

_BACKOFF_SECONDS = 0.02


def session_options(database_url: str) -> str:
    """The libpq `options` of every pooled connection: the URL's own `options`, plus
    `-c statement_timeout=STATEMENT_TIMEOUT_MS` (a runaway statement is cancelled by the server; it is well
    above the 2 s lock_timeout of a posting, so a lock wait still ends as a retryable 55P03).

    service/app.py passes it in the pool's connection kwargs:
    kwargs={"autocommit": True, "application_name": ..., "options": session_options(database_url)}
    (a kwarg replaces the URL's parameter of the same name, hence the URL's own options kept here)."""
    own = conninfo_to_dict(database_url).get("options") or ""
    return f"{own} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip()


class WalletBusy(Exception):
    """No slot for this wallet: its queue is full, or the deadline passed while waiting."""


class _Gate:
    """One wallet's slots: how many calls run, and who waits for a slot, first come first served."""

    __slots__ = ("running", "waiters")

    def __init__(self) -> None:
        self.running = 0
        self.waiters: deque[asyncio.Future[None]] = deque()


class WalletGates:
    """Per-wallet admission: at most `concurrency` database calls of one wallet at once and at most
    `queue_limit` more waiting for a slot (more are refused at once); a freed slot goes to the oldest waiter."""

    def __init__(self, concurrency: int, queue_limit: int) -> None:
        self.concurrency = concurrency
        self.queue_limit = queue_limit
        self._gates: dict[Hashable, _Gate] = {}

    def __len__(self) -> int:
        """How many wallets have a call running or waiting (an idle wallet is forgotten)."""
        return len(self._gates)

    @asynccontextmanager
    async def slot(self, key: Hashable, deadline: float) -> AsyncIterator[None]:
        """Hold one of the wallet's slots for the block; WalletBusy if the queue is full or no slot comes
        before `deadline` (the running loop's time())."""
        gate = self._gates.setdefault(key, _Gate())
        if gate.running < self.concurrency and not gate.waiters:
            gate.running += 1
        else:
            if len(gate.waiters) >= self.queue_limit:
                raise WalletBusy(f"{len(gate.waiters)} requests already wait for this wallet")
            waiter = asyncio.get_running_loop().create_future()
            gate.waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter  # set by _release: the slot is handed over, `running` unchanged
            except BaseException as exc:
                if waiter.done() and not waiter.cancelled():
                    self._release(key, gate)  # handed a slot just as the wait ended: pass it on
                else:
                    waiter.cancel()
                    if waiter in gate.waiters:  # unless a _release skipped it already (it was cancelled)
                        gate.waiters.remove(waiter)
                    self._forget_if_idle(key, gate)
                if isinstance(exc, TimeoutError):
                    raise WalletBusy("no slot for this wallet before the deadline") from None
                raise
        try:
            yield
        finally:
            self._release(key, gate)

    def _release(self, key: Hashable, gate: _Gate) -> None:
        while gate.waiters:
            waiter = gate.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        gate.running -= 1
        self._forget_if_idle(key, gate)

    def _forget_if_idle(self, key: Hashable, gate: _Gate) -> None:
        if gate.running == 0 and not gate.waiters and self._gates.get(key) is gate:
            del self._gates[key]


# one set of gates per connection pool (a service has one pool; the tests build many apps in one process)
_GATES: weakref.WeakKeyDictionary[AsyncConnectionPool, WalletGates] = weakref.WeakKeyDictionary()


def gates_of(pool: AsyncConnectionPool) -> WalletGates:
    gates = _GATES.get(pool)
    if gates is None:
        gates = _GATES[pool] = WalletGates(WALLET_CONCURRENCY, WALLET_QUEUE_LIMIT)
    return gates


def _wallet_busy() -> ApiError:
    """The answer of a lock timeout still failing after the retries: 503 CONCURRENCY_CONFLICT, Retry-After."""
    spec = DB_ERRORS["55P03"]
    return ApiError(
        spec.status, spec.code, spec.message or "the wallet is busy", headers={"Retry-After": RETRY_AFTER_SECONDS}
    )


async def fetch(
    request: web.Request,
    sql: str,
    params: dict[str, Any] | None = None,
    *,
    timeout: float | None = None,
    wallet: Hashable | None = None,
    wallets: Iterable[tuple[str, str]] = (),
) -> list[dict[str, Any]]:
    """Run one statement (a call of one wallet function) and return its rows as dicts.

    A lock timeout, serialization failure or deadlock is retried up to the app's RETRIES extra times with a
    short jittered backoff, on the same pooled connection: a retry keeps its place and does not queue for
    the pool again. A lost connection is retried on a new one. After that, or on any other error, the
    exception propagates to the error middleware. Statements run in autocommit: each wallet function is its
    own transaction.
    timeout: how long to wait for a pooled connection (default: the pool's).
    wallet: the wallet a posting locks, (user_id, asset_code). The call then goes through that wallet's gate
      (at most WALLET_CONCURRENCY calls of one wallet at once, at most WALLET_QUEUE_LIMIT more waiting), and
      the whole call, waiting included, ends within WALLET_DEADLINE_SECONDS: with the queue full or past the
      deadline it is 503 CONCURRENCY_CONFLICT (Retry-After). A statement still running at the deadline is
      cancelled on the server; a posting is idempotent by its key, so the client's retry is safe even if the
      cancel came too late to stop its commit. Any hashable key will do: a call that cannot name its wallet
      (a reversal, a capture) passes what stands for it (the original's or the hold's reference id).
    wallets: the wallets a call of several wallets locks, (user_id, asset_code) each (a purchase): it takes a
      slot of each one's gate, in ascending order (so two such calls never wait for each other's slots
      crosswise), under the same deadline.
    With the app's metrics on, the call's duration (gate, pool wait, statement, retries) is observed by
    wallet function, and each retry is counted by SQLSTATE (service/metrics.py).
    """
    app = request.app
    if not app[METRICS]:
        return await _fetch(app[POOL], app[RETRIES], False, sql, params, timeout, wallet, wallets)
    started = time.perf_counter()
    try:
        return await _fetch(app[POOL], app[RETRIES], True, sql, params, timeout, wallet, wallets)
    finally:
        metrics.db_call_done(sql, time.perf_counter() - started)


async def _fetch(
    pool: AsyncConnectionPool,
    retries: int,
    count: bool,
    sql: str,
    params: dict[str, Any] | None,
    timeout: float | None,
    wallet: Hashable | None,
    wallets: Iterable[tuple[str, str]],
) -> list[dict[str, Any]]:
    """fetch() itself; count: the retries are counted (the app's metrics are on)."""
    keys: list[Hashable] = [wallet] if wallet is not None else []
    keys += sorted(set(wallets))
    if not keys:
        return await _attempts(pool, retries, count, sql, params, timeout)
    deadline = asyncio.get_running_loop().time() + WALLET_DEADLINE_SECONDS
    try:
        async with AsyncExitStack() as slots:
            for key in keys:
                await slots.enter_async_context(gates_of(pool).slot(key, deadline))
            async with asyncio.timeout_at(deadline):
                return await _attempts(pool, retries, count, sql, params, timeout)  # a pool wait is cut short too
    except WalletBusy as exc:
        log.info("wallet %r refused: %s", keys, exc)
        raise _wallet_busy() from None
    except TimeoutError:
        log.info("wallet %r still failing at the %.0f s deadline", keys, WALLET_DEADLINE_SECONDS)
        raise _wallet_busy() from None


async def _attempts(
    pool: AsyncConnectionPool,
    retries: int,
    count: bool,
    sql: str,
    params: dict[str, Any] | None,
    timeout: float | None,
) -> list[dict[str, Any]]:
    attempt = 0
    while True:
        try:
            async with pool.connection(timeout=timeout) as conn:
                while True:
                    try:
                        async with conn.cursor(row_factory=dict_row) as cur:
                            await cur.execute(sql, params)
                            return await cur.fetchall()
                    except psycopg.Error as exc:
                        if attempt >= retries or not retryable(exc) or connection_lost(exc):
                            raise
                        attempt += 1
                        _log_retry(exc, attempt, retries, count)
                        await _backoff(attempt)  # then again on this connection
        except psycopg.Error as exc:
            # a lost connection: the pool replaces it, the next attempt takes another one
            if attempt >= retries or not connection_lost(exc):
                raise
            attempt += 1
            _log_retry(exc, attempt, retries, count)
            await _backoff(attempt)


def _log_retry(exc: psycopg.Error, attempt: int, retries: int, count: bool) -> None:
    """Every retry is logged (with its request's id) and, with the metrics on, counted by SQLSTATE."""
    state = exc.sqlstate or type(exc).__name__
    log.info("retrying after %s (attempt %d of %d)", state, attempt, retries)
    if count:
        metrics.retried(state)


async def _backoff(attempt: int) -> None:
    await asyncio.sleep(_BACKOFF_SECONDS * attempt * (0.5 + random.random()))
