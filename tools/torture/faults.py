"""The faults, each about every N seconds (0 = never): kill -9 the service and restart it, kill -9 the
postmaster and restart it (crash recovery), pg_terminate_backend() random service sessions (sharded: random
sessions of one of the databases, the proxy's or a shard's, the latter PL/Proxy's connections)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
import psycopg

from service.app import POOL_TIMEOUT_SECONDS
from tools.torture.options import Options
from tools.torture.processes import DebianPostgres, Postgres, Service, restart_postgres
from tools.torture.records import Stats, log

# a probed outage lasts past the probe's start, the service's pool timeout and a margin: its answers come
# while the cluster is still down
PROBED_OUTAGE_SECONDS = 0.5 + POOL_TIMEOUT_SECONDS + 2.5
RECOVERY_SECONDS = 60.0  # the service must answer from the ledger again within this after PostgreSQL is back


class OutageProbe:
    """Sharded: what the service on the PL/Proxy database answers while the whole cluster is down: GET /health
    and a balance read (the proxy's wallet_authenticate and wallet_balances) must answer 503, neither 500 nor
    nothing; and once PostgreSQL is back, the read must be answered from the ledger again (below 500) soon."""

    def __init__(self, session: aiohttp.ClientSession, base: str, user_id: str, stats: Stats):
        self.session, self.base, self.stats = session, base, stats
        self.paths = {"health": "/health", "balance": f"/wallets/{user_id}/balance"}

    async def get(self, path: str, timeout: float) -> tuple[int | None, str | None]:
        """(status, error code), or (None, what went wrong)."""
        try:
            async with self.session.get(self.base + path, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                body = await r.json(content_type=None)
                error = body.get("error") if isinstance(body, dict) else None
                return r.status, error.get("code") if isinstance(error, dict) else None
        except TimeoutError:
            return None, "no answer"
        except (aiohttp.ClientError, ValueError) as exc:
            return None, type(exc).__name__

    async def during(self, up: asyncio.Event) -> None:
        await asyncio.sleep(0.5)  # (after the requests in flight failed)

        async def one(name: str, path: str) -> None:
            status, code = await self.get(path, timeout=POOL_TIMEOUT_SECONDS + 10)
            answer = f"{status} {code}" if code else str(status)
            if up.is_set():  # (answered after the restart: 503 or a ledger answer, both fine)
                self.stats.outage_probes[f"{name} {answer} (after the restart)"] += 1
                return
            self.stats.outage_probes[f"{name} {answer} while down"] += 1
            if status != 503:
                self.stats.violation(f"GET {path} answered {answer} while PostgreSQL was down (not 503)")

        await asyncio.gather(*(one(name, path) for name, path in self.paths.items()))

    async def recovery(self) -> None:
        started = time.monotonic()
        status, code = None, None
        while time.monotonic() - started < RECOVERY_SECONDS:
            status, code = await self.get(self.paths["balance"], timeout=10)
            if status is not None and status < 500:
                self.stats.recovery_seconds.append(round(time.monotonic() - started, 2))
                return
            await asyncio.sleep(0.2)
        self.stats.violation(
            f"GET {self.paths['balance']} still answered {status} {code} {RECOVERY_SECONDS:g} s after PostgreSQL "
            "was back"
        )


class Faults:
    def __init__(
        self,
        options: Options,
        rng: random.Random,
        pg: Postgres | DebianPostgres,
        service: Service,
        stats: Stats,
        databases: Sequence[str] = (),
    ):
        """databases: sharded, the names of the proxy's and the shards' databases (their sessions are the
        ones terminated)."""
        self.o, self.rng, self.pg, self.service, self.stats = options, rng, pg, service, stats
        self.databases = list(databases)
        self.probe: OutageProbe | None = None  # sharded: probes the long outages
        self.lock = asyncio.Lock()  # one process fault at a time
        self.stop = asyncio.Event()

    async def _every(self, seconds: float, action: Callable[[], Awaitable[None]]) -> None:
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
            await self.service.start()

    async def kill_postgres(self) -> None:
        async with self.lock:
            if not self.pg.kill():
                return
            self.stats.faults["postgres kill -9"] += 1
            # mostly a quick restart; sometimes a longer outage, past the service's pool timeout (503s)
            short = self.rng.random() < 0.75
            outage = self.rng.uniform(0, 1.0) if short else self.rng.uniform(5, 8)
            # sharded: every long outage is probed, and the first outage is a long one
            probed = self.probe is not None and (not short or not self.stats.outage_probes)
            if probed:
                outage = max(outage, PROBED_OUTAGE_SECONDS)
            log.info("fault: postmaster killed, restarting it in %.1f s", outage)
            up = asyncio.Event()
            probing = asyncio.create_task(self.probe.during(up)) if self.probe is not None and probed else None
            await asyncio.sleep(outage)
            await restart_postgres(self.pg)
            up.set()
            if self.probe is not None and probing is not None:
                await probing
                await self.probe.recovery()

    async def terminate_backends(self) -> None:
        if self.databases:
            await self.terminate_in_databases()
            return
        try:
            async with await psycopg.AsyncConnection.connect(self.pg.url, autocommit=True, connect_timeout=2) as conn:
                cur = await conn.execute(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM ("
                    " SELECT pid FROM pg_stat_activity WHERE application_name = 'wallet-service'"
                    "    AND pid <> pg_backend_pid() ORDER BY random() LIMIT %s) s",
                    (self.rng.randint(1, 3),),
                )
                row = await cur.fetchone()
        except psycopg.Error:
            return  # PostgreSQL is down right now (another fault): try again next time
        count = row[0] if row else 0
        if count:
            self.stats.faults["pg_terminate_backend"] += 1
            self.stats.terminated_sessions += count

    async def terminate_in_databases(self) -> None:
        """Sharded: 1 to 3 random client sessions of one of the databases (picked at random among those with
        sessions): the service's on the proxy, or PL/Proxy's on a shard."""
        try:
            async with await psycopg.AsyncConnection.connect(self.pg.url, autocommit=True, connect_timeout=2) as conn:
                cur = await conn.execute(
                    "SELECT datname, pid FROM pg_stat_activity WHERE datname = ANY(%s)"
                    "   AND backend_type = 'client backend' AND pid <> pg_backend_pid() ORDER BY 1, 2",
                    (self.databases,),
                )
                sessions: dict[str, list[int]] = {}
                for datname, pid in await cur.fetchall():
                    sessions.setdefault(datname, []).append(pid)
                if not sessions:
                    return
                datname = self.rng.choice(sorted(sessions))
                pids = self.rng.sample(sessions[datname], min(self.rng.randint(1, 3), len(sessions[datname])))
                cur = await conn.execute(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM unnest(%s::int[]) pid", (pids,)
                )
                row = await cur.fetchone()
        except psycopg.Error:
            return  # PostgreSQL is down right now (another fault): try again next time
        count = row[0] if row else 0
        if count:
            self.stats.faults["pg_terminate_backend"] += 1
            self.stats.terminated_sessions += count
            self.stats.terminated_by_database[datname] += count

    async def run(self) -> None:
        await asyncio.gather(
            self._every(self.o.kill_service_every, self.kill_service),
            self._every(self.o.kill_postgres_every, self.kill_postgres),
            self._every(self.o.terminate_backends_every, self.terminate_backends),
        )
