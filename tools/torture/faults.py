"""The faults, each about every N seconds (0 = never): kill -9 the service and restart it, kill -9 the
postmaster and restart it (crash recovery), pg_terminate_backend() random service sessions."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import psycopg

from tools.torture.options import Options
from tools.torture.processes import Postgres, Service, restart_postgres
from tools.torture.records import Stats, log


class Faults:
    def __init__(self, options: Options, rng: random.Random, pg: Postgres, service: Service, stats: Stats):
        self.o, self.rng, self.pg, self.service, self.stats = options, rng, pg, service, stats
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
                row = await cur.fetchone()
        except psycopg.Error:
            return  # PostgreSQL is down right now (another fault): try again next time
        count = row[0] if row else 0
        if count:
            self.stats.faults["pg_terminate_backend"] += 1
            self.stats.terminated_sessions += count

    async def run(self) -> None:
        await asyncio.gather(
            self._every(self.o.kill_service_every, self.kill_service),
            self._every(self.o.kill_postgres_every, self.kill_postgres),
            self._every(self.o.terminate_backends_every, self.terminate_backends),
        )
