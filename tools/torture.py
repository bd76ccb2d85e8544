"""`wallet-service torture`: a bank-style workload with faults injected, checked against a model.

The tool starts its own PostgreSQL (the embedded one, fsync on, in a scratch data directory) and the service
as a subprocess, then drives the HTTP API with many concurrent clients: random top-ups, bonuses and spends
over a few hot players (heavy contention on their wallets) and many cold ones, including spends that must
fail for lack of funds. Clients retry like real ones: the same reference id again after a timeout, a
connection reset or a 503, sometimes while the first attempt is still in flight. Meanwhile it kills the
service (kill -9, restart), kills the postmaster (kill -9, restart = crash recovery) and terminates random
database sessions.

Every answer is recorded. At the end every acknowledged transaction must exist exactly once with the
acknowledged amount and balance, every retried key must resolve to one transaction, the balances must equal
a model replayed from the committed operations (operations whose outcome the client never learned are
looked up by reference id), no balance may be negative and wallet_verify() must be empty. Durability is
checked, not assumed: fsync and synchronous_commit (also inside a wallet transaction) must be on.
Exit status 1 on any violation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

from tools.ports import free_port

log = logging.getLogger("torture")

API = "/api/v1"
ASSETS = ("GOLD_COINS", "DIAMONDS", "LOYALTY_POINTS")
OPERATIONS = {"topup": ("TOPUP", "payment_method"), "bonus": ("BONUS", "bonus_type"), "spend": ("SPEND", "item_id")}
AMBIGUOUS = "ambiguous"  # an attempt whose outcome the client did not learn


# ---------------------------------------------------------------------------------------------- options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients (default 32)")
    parser.add_argument(
        "--hot-players", type=int, default=4, help="players that most operations hit: heavy contention (default 4)"
    )
    parser.add_argument(
        "--cold-players", type=int, default=500, help="players hit rarely, most without a wallet at first (default 500)"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a random one, printed)")
    parser.add_argument(
        "--kill-service-every",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="kill -9 the service and restart it about this often; 0 = never (default 15)",
    )
    parser.add_argument(
        "--kill-postgres-every",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="kill -9 the postmaster and restart it (crash recovery) about this often; 0 = never (default 20)",
    )
    parser.add_argument(
        "--terminate-backends-every",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="pg_terminate_backend() random service sessions about this often; 0 = never (default 5)",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="a client gives up on an attempt after at most this long, then retries "
        "(default 2; each attempt draws a timeout between a tenth of it and it)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="PostgreSQL data directory (default: a scratch directory, removed afterwards)",
    )
    parser.add_argument("--port", type=int, default=0, help="service port (default: a free one)")
    parser.add_argument("--report", type=Path, default=None, help="also write the summary as JSON here")


@dataclass
class Options:
    duration: float = 60.0
    clients: int = 32
    hot_players: int = 4
    cold_players: int = 500
    seed: int | None = None
    kill_service_every: float = 15.0
    kill_postgres_every: float = 20.0
    terminate_backends_every: float = 5.0
    request_timeout: float = 2.0
    data_dir: Path | None = None
    port: int = 0
    report: Path | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Options:
        return cls(**{name: getattr(args, name) for name in cls.__dataclass_fields__})


# ---------------------------------------------------------------------------------------------- records


@dataclass
class Op:
    """One logical operation: a reference id and the request sent (again) under it."""

    key: str
    kind: str  # topup | bonus | spend
    user_id: str
    asset_code: str
    amount: int
    value: str  # payment_method / bonus_type / item_id
    answers: list[tuple] = field(default_factory=list)  # (status, code or None, body or None)
    acks: list[dict] = field(default_factory=list)  # 200/201 bodies
    ack_statuses: list[int] = field(default_factory=list)
    overlapping: bool = False  # two attempts were in flight at once
    final: bool = False  # an answer the client need not retry (acknowledged or refused)

    @property
    def type(self) -> str:
        return OPERATIONS[self.kind][0]

    def body(self, **changes: Any) -> dict:
        body = {
            "user_id": self.user_id,
            "asset_code": self.asset_code,
            "amount": self.amount,
            "reference_id": self.key,
            OPERATIONS[self.kind][1]: self.value,
        }
        body.update(changes)
        return body

    @property
    def ambiguous(self) -> bool:
        return any(a[0] == AMBIGUOUS for a in self.answers)


@dataclass
class Stats:
    operations: Counter = field(default_factory=Counter)  # by kind
    attempts: int = 0
    retries: int = 0
    overlapping_sends: int = 0
    answers: Counter = field(default_factory=Counter)  # "201", "200", "422 INSUFFICIENT_FUNDS", "timeout", ...
    faults: Counter = field(default_factory=Counter)
    terminated_sessions: int = 0
    abandoned: int = 0
    replays_checked: int = 0
    conflicts_checked: int = 0
    violations: list[str] = field(default_factory=list)

    def violation(self, message: str) -> None:
        if len(self.violations) < 1000:
            log.error("VIOLATION %s", message)
        self.violations.append(message)


# ---------------------------------------------------------------------------------------------- processes


class Postgres:
    """The embedded PostgreSQL (fsync on: its defaults), killed with -9 and started again on demand."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.url = ""

    def start(self) -> str:
        from service import embedded

        url = embedded.start(self.data_dir)  # restarts it (crash recovery) if it was killed
        if self.url and url != self.url:
            raise RuntimeError(f"PostgreSQL came back at {url}, not {self.url}")
        self.url = url
        return url

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def kill(self) -> bool:
        pid = self.postmaster_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    def stop(self) -> None:
        from service import embedded

        embedded.stop(self.data_dir)


class Service:
    """`wallet-service serve` as a subprocess on DATABASE_URL, killed with -9 and started again."""

    def __init__(self, database_url: str, port: int, log_path: Path):
        self.database_url, self.port, self.log_path = database_url, port, log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.base = f"http://127.0.0.1:{port}{API}"
        self.starts = 0

    async def start(self, session: aiohttp.ClientSession, timeout: float = 120.0) -> None:
        """Start it and wait until it answers; a start that fails (the database is down) is tried again."""
        env = dict(
            os.environ,
            DATABASE_URL=self.database_url,
            HOST="127.0.0.1",
            PORT=str(self.port),
            WALLET_POOL_MAX_SIZE=os.environ.get("WALLET_POOL_MAX_SIZE", "10"),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "ab") as out:
                self.proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "service",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    env=env,
                    stdout=out,
                    stderr=out,
                    stdin=asyncio.subprocess.DEVNULL,
                )
            self.starts += 1
            while self.proc.returncode is None and time.monotonic() < deadline:
                try:
                    async with session.get(f"{self.base}/health", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        await r.read()
                        return  # it answers (healthy, or 503 while PostgreSQL restarts)
                except (TimeoutError, aiohttp.ClientError):
                    await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)  # it exited (e.g. could not migrate while PostgreSQL was down)
        raise RuntimeError(f"the service did not start within {timeout} s; see {self.log_path}")

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


# ---------------------------------------------------------------------------------------------- durability

DURABILITY_SETTINGS = ("fsync", "synchronous_commit", "full_page_writes", "wal_level")


def check_durability(url: str, probe_user: str) -> tuple[dict[str, str], list[str]]:
    """The server's durability settings, and what is wrong with them (empty when an acknowledged commit is
    flushed to disk). synchronous_commit is read three ways: server-wide, from per-role/per-database and
    per-function overrides, and inside a transaction that has just posted through wallet_topup (where a
    function's SET LOCAL would show)."""
    problems: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        settings = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in DURABILITY_SETTINGS}
        overrides = conn.execute(
            "SELECT coalesce(d.datname, '*') || '/' || coalesce(r.rolname, '*') || ': ' || s.cfg"
            "  FROM pg_db_role_setting rs CROSS JOIN LATERAL unnest(rs.setconfig) s(cfg)"
            "  LEFT JOIN pg_database d ON d.oid = rs.setdatabase LEFT JOIN pg_roles r ON r.oid = rs.setrole"
            " WHERE s.cfg ~* '^(fsync|synchronous_commit)=' "
        ).fetchall()
        functions = conn.execute(
            "SELECT p.proname || ': ' || c FROM pg_proc p CROSS JOIN LATERAL unnest(p.proconfig) c"
            " WHERE c ~* '^(fsync|synchronous_commit)='"
        ).fetchall()
        with conn.transaction():
            conn.execute(
                "SELECT * FROM wallet_topup(%s, 'GOLD_COINS', 1, %s, 'durability-probe')",
                (probe_user, f"{probe_user}-{time.time_ns()}"),
            )
            settings["synchronous_commit_in_wallet_transaction"] = conn.execute(
                "SELECT current_setting('synchronous_commit')"
            ).fetchone()[0]
    if settings["fsync"] != "on":
        problems.append(f"fsync is {settings['fsync']}: a committed transaction may be lost in a crash")
    if settings["full_page_writes"] != "on":
        problems.append("full_page_writes is off: a crash may leave torn pages")
    for name in ("synchronous_commit", "synchronous_commit_in_wallet_transaction"):
        if settings[name] == "off":
            problems.append(f"{name} is off: an acknowledged transaction may be lost in a crash")
    for (row,) in overrides + functions:
        if row.lower().endswith("=off"):
            problems.append(f"durability override: {row}")
    return settings, problems


# ---------------------------------------------------------------------------------------------- workload


class Workload:
    def __init__(self, options: Options, rng: random.Random, run_id: str, service: Service, stats: Stats):
        self.o, self.rng, self.run_id, self.service, self.stats = options, rng, run_id, service, stats
        self.hot = [f"{run_id}-hot{i}" for i in range(options.hot_players)]
        self.cold = [f"{run_id}-cold{i}" for i in range(options.cold_players)]
        self.ops: dict[str, Op] = {}
        self.counter = 0
        self.stop_new = asyncio.Event()  # no new operations after this
        self.give_up_at = float("inf")  # retries of pending operations stop at this time

    def new_op(self, client: int) -> Op:
        rng = self.rng
        hot = rng.random() < 0.7 or not self.cold
        user = rng.choice(self.hot) if hot else rng.choice(self.cold)
        asset_code = rng.choice(ASSETS) if rng.random() < 0.4 else "GOLD_COINS"
        kind = rng.choices(["topup", "bonus", "spend"], weights=[3, 2, 5])[0]
        if kind == "spend":
            # mostly affordable, some far too large (must fail), some about the size of a balance
            amount = rng.choice(
                [rng.randint(1, 200), rng.randint(1, 200), rng.randint(100, 3000), rng.randint(10**6, 10**9)]
            )
            value = f"item_{rng.randint(1, 50)}"
        elif kind == "topup":
            amount, value = rng.randint(1, 1000), rng.choice(["stripe", "paypal", "apple_pay"])
        else:
            amount, value = rng.randint(1, 100), rng.choice(["DAILY_LOGIN", "REFERRAL", "LEVEL_UP"])
        self.counter += 1
        op = Op(f"{self.run_id}-c{client}-{self.counter}", kind, user, asset_code, amount, value)
        self.ops[op.key] = op
        self.stats.operations[kind] += 1
        return op

    async def send(self, session: aiohttp.ClientSession, op: Op, body: dict, timeout: float) -> tuple:
        """One attempt: (status, error code, body), or (AMBIGUOUS, reason, None)."""
        self.stats.attempts += 1
        try:
            async with session.post(
                f"{self.service.base}/wallets/{op.kind}", json=body, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                payload = await resp.json(content_type=None)
                code = payload.get("error", {}).get("code") if isinstance(payload, dict) else None
                if resp.status == 200 and resp.headers.get("Idempotent-Replayed") != "true":
                    self.stats.violation(f"{op.key}: 200 without Idempotent-Replayed: true")
                if resp.status >= 500:
                    answer = (AMBIGUOUS, f"{resp.status} {code}", payload)
                else:
                    answer = (resp.status, code, payload)
        except TimeoutError:
            answer = (AMBIGUOUS, "timeout", None)
        except (aiohttp.ClientError, ValueError) as exc:  # refused, reset, truncated, not JSON
            answer = (AMBIGUOUS, type(exc).__name__, None)
        self.stats.answers[f"{answer[0]} {answer[1]}" if answer[1] else str(answer[0])] += 1
        return answer

    def check_ack(self, op: Op, body: dict, status: int) -> None:
        expected = {
            "user_id": op.user_id,
            "asset_code": op.asset_code,
            "amount": op.amount,
            "transaction_type": op.type,
        }
        got = {k: body.get(k) for k in expected}
        if got != expected:
            self.stats.violation(f"{op.key}: acknowledged {got}, sent {expected}")
        if not isinstance(body.get("balance"), int) or body["balance"] < 0:
            self.stats.violation(f"{op.key}: acknowledged balance {body.get('balance')!r}")
        if op.acks and body.get("transaction_id") != op.acks[0].get("transaction_id"):
            self.stats.violation(
                f"{op.key}: acknowledged as {body.get('transaction_id')} and as {op.acks[0].get('transaction_id')}"
            )
        if op.acks and body.get("balance") != op.acks[0].get("balance"):
            self.stats.violation(
                f"{op.key}: acknowledged balance {body.get('balance')} and {op.acks[0].get('balance')}"
            )
        op.acks.append(body)
        op.ack_statuses.append(status)

    def judge(self, op: Op, answer: tuple) -> bool:
        """Record an answer; True when it is final (no retry needed)."""
        status, code, body = answer
        op.answers.append(answer)
        if status in (200, 201):
            self.check_ack(op, body, status)
            return True
        if status == 422 and code in ("INSUFFICIENT_FUNDS", "BALANCE_LIMIT_EXCEEDED"):
            if code == "BALANCE_LIMIT_EXCEEDED" or op.kind != "spend":
                self.stats.violation(f"{op.key}: {code} for a {op.kind} of {op.amount}")
            return True
        if status == 404 and code == "WALLET_NOT_FOUND" and op.kind == "spend":
            return True
        if status == AMBIGUOUS:
            return False
        self.stats.violation(f"{op.key}: unexpected answer {status} {code} {body}")
        return True

    async def execute(self, session: aiohttp.ClientSession, op: Op) -> None:
        """Send op until it gets a final answer, retrying under the same reference id."""
        rng, backoff = self.rng, 0.05
        while True:
            timeout = rng.uniform(self.o.request_timeout / 10, self.o.request_timeout)
            if rng.random() < 0.03:  # an impatient client: gives up while the service is still working
                timeout = rng.uniform(0.001, 0.05)
            if rng.random() < 0.05:  # a double click: two identical attempts in flight at once
                self.stats.overlapping_sends += 1
                op.overlapping = True
                answers = await asyncio.gather(
                    self.send(session, op, op.body(), timeout), self.send(session, op, op.body(), timeout)
                )
            else:
                answers = [await self.send(session, op, op.body(), timeout)]
            final = [self.judge(op, a) for a in answers]
            op.final = any(final)
            if op.final or time.monotonic() > self.give_up_at:
                return
            if rng.random() < 0.05:  # the client crashed: it never learns the outcome (checked by lookup)
                self.stats.abandoned += 1
                return
            self.stats.retries += 1
            await asyncio.sleep(rng.uniform(0, backoff))
            backoff = min(backoff * 2, 1.0)

    async def replay_or_conflict(self, session: aiohttp.ClientSession, op: Op) -> None:
        """After an acknowledgement: the same request again (a replay) or the key for another request (409)."""
        ack = op.acks[0]
        conflict = self.rng.random() < 0.4
        body = op.body(amount=op.amount + 1) if conflict else op.body()
        for _ in range(50):
            status, code, payload = await self.send(session, op, body, self.o.request_timeout)
            if status == AMBIGUOUS:
                if time.monotonic() > self.give_up_at:
                    return
                await asyncio.sleep(0.1)
                continue
            if conflict:
                self.stats.conflicts_checked += 1
                details = (payload or {}).get("error", {}).get("details", {})
                if (
                    status != 409
                    or code != "IDEMPOTENCY_CONFLICT"
                    or details.get("transaction_id") != ack["transaction_id"]
                ):
                    self.stats.violation(f"{op.key}: reused for another amount answered {status} {payload}")
            else:
                self.stats.replays_checked += 1
                if status != 200 or {k: payload.get(k) for k in ack if k != "timestamp"} != {
                    k: v for k, v in ack.items() if k != "timestamp"
                }:
                    self.stats.violation(f"{op.key}: replay answered {status} {payload}, first {ack}")
            return

    async def client(self, session: aiohttp.ClientSession, n: int) -> None:
        while not self.stop_new.is_set():
            op = self.new_op(n)
            await self.execute(session, op)
            if op.acks and self.rng.random() < 0.05:
                await self.replay_or_conflict(session, op)


# ---------------------------------------------------------------------------------------------- faults


async def restart_postgres(pg: Postgres, timeout: float = 300.0) -> None:
    """Start PostgreSQL again (crash recovery), however many tries it takes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await asyncio.to_thread(pg.start)
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("PostgreSQL did not start yet (%s); trying again", exc)
            await asyncio.sleep(1.0)


class Faults:
    def __init__(
        self,
        options: Options,
        rng: random.Random,
        pg: Postgres,
        service: Service,
        stats: Stats,
        session: aiohttp.ClientSession,
    ):
        self.o, self.rng, self.pg, self.service, self.stats, self.session = options, rng, pg, service, stats, session
        self.lock = asyncio.Lock()  # one process fault at a time
        self.stop = asyncio.Event()

    async def _every(self, seconds: float, action) -> None:
        if seconds <= 0:
            return
        while True:
            try:
                await asyncio.wait_for(self.stop.wait(), self.rng.uniform(0.5 * seconds, 1.5 * seconds))
                return
            except TimeoutError:
                pass
            await action()

    async def kill_service(self) -> None:
        async with self.lock:
            await self.service.kill()
            self.stats.faults["service kill -9"] += 1
            log.info("fault: service killed")
            await asyncio.sleep(self.rng.uniform(0, 1.0))
            await self.service.start(self.session)

    async def kill_postgres(self) -> None:
        async with self.lock:
            if not self.pg.kill():
                return
            self.stats.faults["postgres kill -9"] += 1
            # mostly a quick restart; sometimes a longer outage, past the service's pool timeout (503s)
            outage = self.rng.uniform(0, 1.0) if self.rng.random() < 0.75 else self.rng.uniform(5, 8)
            log.info("fault: postmaster killed, restarting it in %.1f s", outage)
            await asyncio.sleep(outage)
            await restart_postgres(self.pg)

    async def terminate_backends(self) -> None:
        try:
            async with await psycopg.AsyncConnection.connect(self.pg.url, autocommit=True, connect_timeout=2) as conn:
                cur = await conn.execute(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM ("
                    " SELECT pid FROM pg_stat_activity WHERE application_name = 'wallet-service'"
                    "    AND pid <> pg_backend_pid() ORDER BY random() LIMIT %s) s",
                    (self.rng.randint(1, 3),),
                )
                (count,) = await cur.fetchone()
        except psycopg.Error:
            return  # PostgreSQL is down right now (another fault): try again next time
        if count:
            self.stats.faults["pg_terminate_backend"] += 1
            self.stats.terminated_sessions += count

    async def run(self) -> None:
        await asyncio.gather(
            self._every(self.o.kill_service_every, self.kill_service),
            self._every(self.o.kill_postgres_every, self.kill_postgres),
            self._every(self.o.terminate_backends_every, self.terminate_backends),
        )


# ---------------------------------------------------------------------------------------------- checks


@dataclass
class Resolution:
    unknown: int = 0  # operations with no final answer at the end
    unknown_committed: int = 0
    unknown_not_committed: int = 0
    late_commits: int = 0  # refused (or ambiguous) answers, committed by an overlapping earlier attempt


async def lookup(session: aiohttp.ClientSession, base: str, key: str) -> dict | None:
    """GET /transactions/{key}: its body, or None when it does not exist (retried while unavailable)."""
    for _ in range(100):
        try:
            async with session.get(f"{base}/transactions/{key}", timeout=aiohttp.ClientTimeout(total=10)) as r:
                body = await r.json(content_type=None)
                if r.status == 200:
                    return body
                if r.status == 404 and body["error"]["code"] == "TRANSACTION_NOT_FOUND":
                    return None
        except (TimeoutError, aiohttp.ClientError, ValueError):
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"could not look up {key}")


def committed_in_db(url: str, run_id: str) -> tuple[dict[str, dict], dict[tuple[str, str], int]]:
    """Every transaction of this run (with its player leg, in commit order) and every player balance."""
    with psycopg.connect(url, autocommit=True) as conn:
        dups = conn.execute(
            "SELECT reference_id, count(*) FROM transactions WHERE reference_id LIKE %s GROUP BY 1 HAVING count(*) > 1",
            (run_id + "-%",),
        ).fetchall()
        rows = conn.execute(
            "SELECT t.reference_id, t.id::text, t.type::text, t.user_id, t.asset_code, t.amount,"
            "       e.id, e.amount, e.balance_after"
            "  FROM transactions t JOIN ledger_entries e ON e.transaction_id = t.id"
            "  JOIN wallets w ON w.id = e.wallet_id AND w.kind = 'PLAYER'"
            " WHERE t.reference_id LIKE %s ORDER BY e.id",
            (run_id + "-%",),
        ).fetchall()
        balances = conn.execute(
            "SELECT user_id, asset_code, balance FROM wallets WHERE user_id LIKE %s", (run_id + "-%",)
        ).fetchall()
    txs: dict[str, dict] = {}
    for ref, txid, type_, user, asset_code, amount, entry_id, signed, after in rows:
        if ref in txs:
            txs[ref]["legs"] += 1
            continue
        txs[ref] = dict(
            transaction_id=txid,
            type=type_,
            user_id=user,
            asset_code=asset_code,
            amount=amount,
            entry_id=entry_id,
            signed=signed,
            balance_after=after,
            legs=1,
        )
    for ref, n in dups:
        txs.setdefault(ref, {})["duplicates"] = n
    return txs, {(u, a): b for u, a, b in balances}


async def check(
    workload: Workload, stats: Stats, session: aiohttp.ClientSession, pg: Postgres, run_id: str
) -> Resolution:
    res = Resolution()
    ops = workload.ops
    # operations whose outcome the client never learned: look them up by reference id
    unresolved = [op for op in ops.values() if not op.final]
    res.unknown = len(unresolved)
    looked_up: dict[str, dict | None] = {}
    for op in unresolved:
        looked_up[op.key] = await lookup(session, workload.service.base, op.key)
        if looked_up[op.key] is None:
            res.unknown_not_committed += 1
        else:
            res.unknown_committed += 1

    txs, balances = committed_in_db(pg.url, run_id)
    for ref, tx in txs.items():
        if "duplicates" in tx:
            stats.violation(f"{ref}: {tx['duplicates']} transactions hold this reference id")
        if tx.get("legs", 1) != 1:
            stats.violation(f"{ref}: {tx['legs']} player legs")
        op = ops.get(ref)
        if op is None:
            if not ref.startswith(f"{run_id}-probe"):
                stats.violation(f"{ref}: committed but never sent")
            continue
        sent = dict(type=op.type, user_id=op.user_id, asset_code=op.asset_code, amount=op.amount)
        if {k: tx[k] for k in sent} != sent:
            stats.violation(f"{ref}: committed {tx}, sent {sent}")

    for op in ops.values():
        tx = txs.get(op.key)
        if op.key in looked_up:
            found = looked_up[op.key]
            if (found is None) != (tx is None):
                stats.violation(f"{op.key}: lookup says {found}, the ledger says {tx}")
            if (
                found is not None
                and tx is not None
                and (found.get("transaction_id") != tx["transaction_id"] or found.get("amount") != op.amount)
            ):
                stats.violation(f"{op.key}: lookup answered {found}, the ledger holds {tx}")
        if op.acks:
            if tx is None:
                stats.violation(f"{op.key}: acknowledged {op.acks[0]} but not in the ledger (lost)")
                continue
            for ack in op.acks:
                if ack.get("transaction_id") != tx["transaction_id"] or ack.get("balance") != tx["balance_after"]:
                    stats.violation(f"{op.key}: acknowledged {ack}, the ledger holds {tx}")
        elif tx is not None and op.key not in looked_up:
            # refused at last, yet committed: only an earlier or parallel attempt still in flight can do that
            if op.ambiguous or op.overlapping:
                res.late_commits += 1
            else:
                stats.violation(f"{op.key}: answered {op.answers} but committed {tx}")
    # the model: replay every committed operation in commit order, wallet by wallet
    running: dict[tuple[str, str], int] = defaultdict(int)
    seen: dict[tuple[str, str], set[int]] = defaultdict(lambda: {0})
    for ref, tx in sorted(txs.items(), key=lambda item: item[1].get("entry_id") or 0):
        if "entry_id" not in tx or ref not in ops:
            continue
        wallet = (tx["user_id"], tx["asset_code"])
        delta = -tx["amount"] if tx["type"] == "SPEND" else tx["amount"]
        if tx["signed"] != delta:
            stats.violation(f"{ref}: player leg {tx['signed']}, expected {delta}")
        running[wallet] += delta
        seen[wallet].add(running[wallet])
        if running[wallet] < 0:
            stats.violation(f"{ref}: balance of {wallet} would be {running[wallet]}")
        if tx["balance_after"] != running[wallet]:
            stats.violation(f"{ref}: balance_after {tx['balance_after']}, the model says {running[wallet]}")
    for wallet, balance in balances.items():
        if balance < 0:
            stats.violation(f"{wallet}: negative balance {balance}")
        if balance != running.get(wallet, 0) and not wallet[0].startswith(f"{run_id}-probe"):
            stats.violation(f"{wallet}: balance {balance}, the model says {running.get(wallet, 0)}")
    for wallet in running:
        if wallet not in balances:
            stats.violation(f"{wallet}: has transactions but no wallet")
    # a refusal reports the balance it saw under the wallet's lock: one the wallet really had
    for op in ops.values():
        for _status, code, body in op.answers:
            if code == "INSUFFICIENT_FUNDS":
                details = body["error"].get("details", {})
                wallet = (op.user_id, op.asset_code)
                if (
                    details.get("required") != op.amount
                    or details.get("available", -1) >= op.amount
                    or details.get("available") not in seen[wallet]
                ):
                    stats.violation(
                        f"{op.key}: refused with {details}; balances the wallet had: {sorted(seen[wallet])[:20]}..."
                    )
    # the API agrees with the ledger, for every player with a wallet
    users = sorted({u for u, _ in balances if not u.startswith(f"{run_id}-probe")})
    for user in users:
        body = await get_json(session, f"{workload.service.base}/wallets/{user}/balance")
        api = {(user, b["asset_code"]): b["balance"] for b in body["balances"]}
        ledger = {w: b for w, b in balances.items() if w[0] == user}
        if api != ledger:
            stats.violation(f"{user}: the API reports {api}, the ledger holds {ledger}")
    with psycopg.connect(pg.url, autocommit=True) as conn:
        for invariant, subject, detail in conn.execute("SELECT * FROM wallet_verify()").fetchall():
            stats.violation(f"wallet_verify: {invariant} {subject}: {detail}")
        (negative,) = conn.execute("SELECT count(*) FROM wallets WHERE balance < 0").fetchone()
        if negative:
            stats.violation(f"{negative} wallets with a negative balance")
    return res


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    for _ in range(100):
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as r:
                if r.status == 200:
                    return await r.json()
        except (TimeoutError, aiohttp.ClientError):
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"GET {url} kept failing")


# ---------------------------------------------------------------------------------------------- run


def crash_recoveries(data_dir: Path) -> int:
    """How often PostgreSQL started after a crash and replayed its WAL (from the embedded server's log)."""
    try:
        text = (data_dir / "log").read_text(errors="replace")
    except OSError:
        return 0
    return text.count("automatic recovery in progress")


async def run_async(options: Options, pg: Postgres, run_dir: Path) -> dict:
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    run_id = f"tt{seed}x{rng.randrange(16**6):06x}"
    stats = Stats()
    started = time.monotonic()

    url = await asyncio.to_thread(pg.start)
    port = options.port or free_port()
    service = Service(url, port, run_dir / "service.log")
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        await service.start(session)  # migrates and seeds the database
        _settings, problems = await asyncio.to_thread(check_durability, url, f"{run_id}-probe")
        for problem in problems:
            stats.violation(f"durability: {problem}")
        workload = Workload(options, rng, run_id, service, stats)
        faults = Faults(options, rng, pg, service, stats, session)
        if problems:
            log.error("the server is not durable; not running the workload")
        else:
            log.info("torture: seed %d, run id %s, %s clients, %s s", seed, run_id, options.clients, options.duration)
            fault_task = asyncio.create_task(faults.run())
            clients = [asyncio.create_task(workload.client(session, n)) for n in range(options.clients)]
            await asyncio.sleep(options.duration)
            workload.stop_new.set()
            faults.stop.set()
            await fault_task
            # let pending operations finish their retries against a service and database that stay up
            workload.give_up_at = time.monotonic() + 60
            if service.proc is None or service.proc.returncode is not None:
                await service.start(session)
            await asyncio.gather(*clients)
        load_seconds = time.monotonic() - started
        await restart_postgres(pg)  # up (it is, unless the last fault is still recovering)
        resolution = await check(workload, stats, session, pg, run_id)
        settings_after, problems_after = await asyncio.to_thread(check_durability, url, f"{run_id}-probe")
        for problem in problems_after:
            stats.violation(f"durability (after the run): {problem}")
        await service.stop()

    acked = [op for op in workload.ops.values() if op.acks]
    summary = {
        "seed": seed,
        "run_id": run_id,
        "command": "wallet-service " + " ".join(sys.argv[1:]),
        "duration_seconds": round(load_seconds, 1),
        "operations_per_second": round(sum(stats.operations.values()) / max(options.duration, 1e-9)),
        "clients": options.clients,
        "hot_players": options.hot_players,
        "cold_players": options.cold_players,
        "operations": sum(stats.operations.values()),
        "operations_by_kind": dict(stats.operations),
        "attempts": stats.attempts,
        "retries": stats.retries,
        "abandoned": stats.abandoned,
        "overlapping_sends": stats.overlapping_sends,
        "answers": dict(sorted(stats.answers.items())),
        "faults": {
            kind: stats.faults.get(kind, 0) for kind in ("service kill -9", "postgres kill -9", "pg_terminate_backend")
        },
        "terminated_sessions": stats.terminated_sessions,
        "service_starts": service.starts,
        "crash_recoveries": crash_recoveries(pg.data_dir),
        "acknowledged": len(acked),
        "acknowledged_as_replay": sum(1 for op in acked if op.ack_statuses[0] == 200),
        "refused_insufficient_funds": sum(
            1
            for op in workload.ops.values()
            if not op.acks and op.answers and op.answers[-1][1] == "INSUFFICIENT_FUNDS"
        ),
        "refused_wallet_not_found": sum(
            1 for op in workload.ops.values() if not op.acks and op.answers and op.answers[-1][1] == "WALLET_NOT_FOUND"
        ),
        "retried_keys": sum(1 for op in workload.ops.values() if len(op.answers) > 1),
        "replays_checked": stats.replays_checked,
        "conflicts_checked": stats.conflicts_checked,
        "unknown_outcome": resolution.unknown,
        "unknown_outcome_committed": resolution.unknown_committed,
        "unknown_outcome_not_committed": resolution.unknown_not_committed,
        "refused_then_committed_by_an_earlier_attempt": resolution.late_commits,
        "durability": settings_after,
        "violations": len(stats.violations),
        "violation_examples": stats.violations[:20],
    }
    return summary


def print_summary(s: dict) -> None:
    f = s["faults"]
    lines = [
        f"command:               {s['command']}",
        f"torture: seed {s['seed']}, run {s['run_id']}: {s['duration_seconds']} s, {s['clients']} clients, "
        f"{s['hot_players']} hot + {s['cold_players']} cold players",
        f"operations:            {s['operations']} ({', '.join(f'{k} {v}' for k, v in sorted(s['operations_by_kind'].items()))}; "
        f"{s['operations_per_second']}/s)",
        f"attempts:              {s['attempts']} (retries {s['retries']}, overlapping double sends "
        f"{s['overlapping_sends']}, keys sent more than once {s['retried_keys']}, abandoned by the client "
        f"{s['abandoned']})",
        f"answers:               {', '.join(f'{k}: {v}' for k, v in s['answers'].items())}",
        f"faults injected:       service kill -9: {f['service kill -9']}, postgres kill -9: "
        f"{f['postgres kill -9']}, pg_terminate_backend: {f['pg_terminate_backend']} "
        f"({s['terminated_sessions']} sessions); crash recoveries in the PostgreSQL log: {s['crash_recoveries']}",
        f"acknowledged:          {s['acknowledged']} (first acknowledgement was a replay: "
        f"{s['acknowledged_as_replay']})",
        f"refused:               insufficient funds {s['refused_insufficient_funds']}, wallet not found "
        f"{s['refused_wallet_not_found']}",
        f"replays:               {s['replays_checked']} checked (same transaction, same balance)",
        f"conflicts:             {s['conflicts_checked']} checked (409 naming the original transaction)",
        f"unknown outcome:       {s['unknown_outcome']} resolved by reference id ({s['unknown_outcome_committed']} "
        f"committed, {s['unknown_outcome_not_committed']} not); refused but committed by an earlier attempt: "
        f"{s['refused_then_committed_by_an_earlier_attempt']}",
        f"durability:            {', '.join(f'{k}={v}' for k, v in s['durability'].items())}",
        f"violations:            {s['violations']}",
    ]
    lines += [f"  {v}" for v in s["violation_examples"]]
    print("\n".join(lines), flush=True)


def main(argv: list[str], prog: str = "wallet-service torture") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Start a PostgreSQL of its own (fsync on) and the service, drive the HTTP API with concurrent "
        "retrying clients while killing the service, the postmaster and database sessions, then check every "
        "acknowledged transaction, the balances against a model, and wallet_verify(). Exits 1 on any violation.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    options = Options.from_args(args)
    logging.getLogger("service").setLevel(logging.WARNING)
    scratch = options.data_dir is None
    run_dir = Path(tempfile.mkdtemp(prefix="wallet-torture-"))
    os.chmod(run_dir, 0o755)  # the embedded server runs as its own system user
    pg = Postgres(options.data_dir or run_dir / "pgdata")
    try:
        summary = asyncio.run(run_async(options, pg, run_dir))
    finally:
        pg.stop()
    print_summary(summary)
    if options.report:
        options.report.write_text(json.dumps(summary, indent=2, default=str))
    if summary["violations"] == 0 and scratch:
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        print(f"logs and data kept in {run_dir}", flush=True)
    return 1 if summary["violations"] else 0
