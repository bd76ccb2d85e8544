"""The two processes the faults hit: the embedded PostgreSQL and `wallet-service serve`, each killed with -9
and started again on demand."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from tools.launcher import STARTUP_SECONDS, Serve, ServeExited
from tools.torture.records import log


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


def crash_recoveries(data_dir: Path) -> int:
    """How often PostgreSQL started after a crash and replayed its WAL (from the embedded server's log)."""
    try:
        text = (data_dir / "log").read_text(errors="replace")
    except OSError:
        return 0
    return text.count("automatic recovery in progress")


class Service:
    """`wallet-service serve` (tools.launcher) on DATABASE_URL, killed with -9 and started again; the blocking
    launcher runs in a thread, so the clients and the other faults go on meanwhile."""

    def __init__(self, database_url: str, port: int, log_path: Path):
        env = dict(
            os.environ,
            DATABASE_URL=database_url,
            WALLET_POOL_MAX_SIZE=os.environ.get("WALLET_POOL_MAX_SIZE", "10"),
        )
        self.serve = Serve(log_path, env=env, port=port)
        self.base = self.serve.base

    @property
    def starts(self) -> int:
        return self.serve.starts

    @property
    def running(self) -> bool:
        return self.serve.running

    async def start(self, timeout: float = STARTUP_SECONDS) -> None:
        """Start it and wait until it answers; a start that fails (the database is down) is tried again."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                await asyncio.to_thread(self.serve.start, max(deadline - time.monotonic(), 0.0))
                return
            except ServeExited:  # e.g. it could not check the migrations while PostgreSQL was down
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)

    async def kill(self) -> None:
        await asyncio.to_thread(self.serve.kill)

    async def stop(self) -> None:
        await asyncio.to_thread(self.serve.stop, 30.0)
