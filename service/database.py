"""The one place that talks to the database: one statement per call, bounded retries of transient failures,
and a per-wallet admission gate so that one stuck wallet can never take the whole pool."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import Context
from typing import Any

import psycopg
from aiohttp import web
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from service import metrics
from service.api_errors import (
    DB_ERRORS,
    RETRY_AFTER_SECONDS,
    ApiError,
    connection_lost,
    from_db_fields,
    retryable,
)
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
    async with _gated(pool, keys):
        return await _attempts(pool, retries, count, sql, params, timeout)  # a pool wait is cut short too


@asynccontextmanager
async def _gated(pool: AsyncConnectionPool, keys: list[Hashable]) -> AsyncIterator[None]:
    """The block holds a slot of each wallet's gate (taken in the order given) and ends within
    WALLET_DEADLINE_SECONDS, waiting included; a full queue or the deadline is 503 CONCURRENCY_CONFLICT."""
    deadline = asyncio.get_running_loop().time() + WALLET_DEADLINE_SECONDS
    try:
        async with AsyncExitStack() as slots:
            for key in keys:
                await slots.enter_async_context(gates_of(pool).slot(key, deadline))
            async with asyncio.timeout_at(deadline):
                yield
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


# ---------------------------------------------------------------------------------------------------------
# Group commit (WALLET_GROUP_COMMIT=on; off by default): the top-ups, bonuses and spends of concurrent requests
# share one call of wallet_post_batch, so one statement and one commit, each request still answered on its own.
#
# Per process, at most one such call counts as in flight: a posting that finds none goes at once, alone, as
# the single function (exactly as with the setting off); one that finds a call in flight waits, and when that
# call ends, everything that waited (up to MAX_GROUP operations, of one actor: wallet_post_batch takes one)
# goes in the next call. A call in flight longer than GROUP_STALL_SECONDS (a wallet locked elsewhere, a slow
# disk) stops counting, so one slow call holds back the others' postings for that long at most.
#
# The same answers as alone: wallet_post_batch applies the operations one after another as the single functions
# would, each idempotent by its own reference id, each with its own result or error (a refusal is that
# request's error, through api_errors.from_db_fields, the mapping of the single route's error middleware).
# The call is one transaction: it commits all of its postings or none. If it fails with a lock timeout,
# deadlock, serialization failure or lost connection, nothing of it was written (or, for a connection lost
# at commit, maybe all of it: each operation is then a replay of its key), and every request of it goes again
# ALONE, as the single function with the usual retries: a wallet locked elsewhere fails only its own
# requests, never its neighbours' in the group. Any other failure of the call (no pooled connection within
# the pool's timeout, the statement timeout) is every request's answer, the same error each (503, retryable:
# each request's key makes the client's retry safe). Each request keeps its wallet's gate slot and its
# WALLET_DEADLINE_SECONDS while it waits, as with the setting off.
#
# Measured (README, Operating, Performance): with 16 or 32 concurrent clients per process it raised top-ups per
# second by 75-80% and more than halved the CPU per posting of both the service and PostgreSQL; with 8 clients
# it lowered them by 17% (PostgreSQL already commits concurrent transactions together, and one call at a time
# puts each commit's wait on every waiting request's path). Hence off by default.
# ---------------------------------------------------------------------------------------------------------

GROUP_COMMIT = web.AppKey("group_commit", bool)  # the app's setting (service/app.py: create_app(group_commit=))
# the call of many postings (service/batch.py: POST /wallets/batch; the group commit)
BATCH_SQL = "SELECT * FROM wallet_post_batch(p_operations => %(operations)s, p_actor => %(actor)s)"
MAX_GROUP = 100  # operations in one call of wallet_post_batch at most
GROUP_STALL_SECONDS = 0.02  # a call in flight longer than this no longer holds back the next one


class _Member:
    """A posting waiting for its group's call: its operation for wallet_post_batch, its single call (to go
    alone), and the future its request awaits (set to its row, to None: "go alone", or to the call's error)."""

    __slots__ = ("future", "op", "params", "sql")

    def __init__(self, sql: str, params: dict[str, Any], op: dict[str, Any]) -> None:
        self.sql, self.params, self.op = sql, params, op
        self.future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()


class GroupCommit:
    """One pool's group commit (see above)."""

    def __init__(self, pool: AsyncConnectionPool, retries: int, count: bool) -> None:
        self.pool, self.retries, self.count = pool, retries, count  # as fetch() has them from the app
        self.in_flight = 0  # calls that count as in flight: 0 or 1 (a stalled one stops counting)
        self.queues: dict[str | None, deque[_Member]] = {}  # waiting postings by actor, oldest actor first
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = 0  # calls of wallet_post_batch made (for tests and curiosity)

    async def post(self, sql: str, params: dict[str, Any], op: dict[str, Any], actor: str | None) -> dict[str, Any]:
        """The posting's row: alone at once, or from its group's call. Raises as fetch() would (a refused
        operation: its ApiError)."""
        if self.in_flight == 0 and not self.queues:
            release = self._count_in()
            try:
                (alone,) = await _attempts(self.pool, self.retries, self.count, sql, params, None)
                return alone
            finally:
                release()
        member = _Member(sql, params, op)
        self.queues.setdefault(actor, deque()).append(member)
        try:
            row = await member.future
        except asyncio.CancelledError:  # its deadline: still waiting, it leaves the queue (sent, it stays sent)
            queue = self.queues.get(actor)
            if queue is not None and member in queue:
                queue.remove(member)
                if not queue:
                    del self.queues[actor]
            raise
        if row is None:  # its group's call failed transiently: alone, with the usual retries
            (alone,) = await _attempts(self.pool, self.retries, self.count, sql, params, None)
            return alone
        if row.get("sqlstate") is not None:  # a refusal in a group (the single function raises it instead)
            error = from_db_fields(row["sqlstate"], row["message"], row["detail"], row["field"])
            if error.status >= 500:
                log.warning("posting refused: %s %s: %s", error.code, row["sqlstate"], row["message"])
            raise error
        return row

    def _count_in(self) -> Callable[[], None]:
        """Count a call in flight until the returned function is called or GROUP_STALL_SECONDS pass, whichever
        comes first; then start the next group if any waits."""
        self.in_flight += 1
        loop = asyncio.get_running_loop()
        counted = True

        def release() -> None:
            nonlocal counted
            if counted:
                counted = False
                timer.cancel()
                self.in_flight -= 1
                self._next()

        timer = loop.call_later(GROUP_STALL_SECONDS, release)
        return release

    def _next(self) -> None:
        if self.in_flight or not self.queues:
            return
        actor, queue = next(iter(self.queues.items()))
        group = [queue.popleft() for _ in range(min(len(queue), MAX_GROUP))]
        del self.queues[actor]
        if queue:  # more than MAX_GROUP waited: the rest after the other actors' (none is starved)
            self.queues[actor] = queue
        release = self._count_in()
        # in a context of its own: its log lines are no request's (it inherits the request id otherwise)
        task = asyncio.get_running_loop().create_task(self._call(actor, group, release), context=Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, actor: str | None, group: list[_Member], release: Callable[[], None]) -> None:
        rows: list[dict[str, Any] | None]
        try:
            if len(group) == 1:  # the single function: cheaper than a batch of one
                rows = list(await _attempts(self.pool, self.retries, self.count, group[0].sql, group[0].params, None))
            else:
                self.calls += 1
                params = {"operations": Jsonb([member.op for member in group]), "actor": actor}
                try:  # no retry of the group itself: on a transient failure each member goes alone
                    rows = list(await _attempts(self.pool, 0, False, BATCH_SQL, params, None))
                except psycopg.Error as exc:
                    if not retryable(exc):
                        raise
                    log.info("a group of %d postings failed (%s): each goes alone", len(group), exc.sqlstate or exc)
                    rows = [None] * len(group)
            for member, row in zip(group, rows, strict=True):
                if not member.future.done():
                    member.future.set_result(row)
        except BaseException as exc:
            for member in group:
                if not member.future.done():
                    member.future.set_exception(exc)
                    member.future.exception()  # retrieved: a member that left (its deadline) logs nothing
            if not isinstance(exc, Exception):
                raise
        finally:
            release()


_GROUPS: weakref.WeakKeyDictionary[AsyncConnectionPool, GroupCommit] = weakref.WeakKeyDictionary()


def group_of(app: web.Application) -> GroupCommit:
    """The group commit of the app's pool."""
    pool = app[POOL]
    group = _GROUPS.get(pool)
    if group is None:
        group = _GROUPS[pool] = GroupCommit(pool, app[RETRIES], app[METRICS])
    return group


async def post(
    request: web.Request, sql: str, params: dict[str, Any], operation: dict[str, Any], wallet: tuple[str, str]
) -> list[dict[str, Any]]:
    """A top-up, bonus or spend: fetch(request, sql, params, wallet=wallet) with the app's group commit off;
    with it on, the same through the pool's GroupCommit (`operation`: the posting as wallet_post_batch takes
    it), under the same wallet gate and deadline. Returns its row (the posting columns), as a list of one."""
    app = request.app
    if not app.get(GROUP_COMMIT, False):
        return await fetch(request, sql, params, wallet=wallet)
    pool = app[POOL]
    count = app[METRICS]
    started = time.perf_counter()
    try:
        async with _gated(pool, [wallet]):
            return [await group_of(app).post(sql, params, operation, params.get("actor"))]
    finally:
        if count:
            metrics.db_call_done(sql, time.perf_counter() - started)
