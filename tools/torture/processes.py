"""The two processes the faults hit: PostgreSQL (the embedded one, or in the sharded mode Debian's, which has
PL/Proxy) and `wallet-service serve`, each killed with -9 and started again on demand."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg

from service import embedded
from tools.launcher import STARTUP_SECONDS, Serve, ServeExited, free_port
from tools.pgbin import ensure_extension
from tools.torture.records import log


class Postgres:
    """The embedded PostgreSQL (fsync on: its defaults), killed with -9 and started again on demand."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.url = ""

    def start(self) -> str:
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
        embedded.stop(self.data_dir)

    def crash_recoveries(self) -> int:
        return crash_recoveries(self.data_dir)


async def restart_postgres(pg: Postgres | DebianPostgres, timeout: float = 300.0) -> None:
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


# ---------------------------------------------------------------- the sharded mode's PostgreSQL

# Durability on, as in production; room for the service's pool, PL/Proxy's connections from every proxy
# session to every shard, the checker and the faults.
DEBIAN_SETTINGS: dict[str, str] = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "max_connections": "200",
    "shared_buffers": "128MB",
}
DEATH_WAIT_SECONDS = 30.0  # how long a start waits for a killed postmaster's backends to go away


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run argv as the postgres user."""
    if os.geteuid() != 0:
        return argv
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *argv]


class DebianPostgres:
    """The sharded mode's server: one cluster of Debian's PostgreSQL (tools.pgbin: the newest install, or
    $WALLET_PG_BINDIR; PL/Proxy is packaged for it) run as the postgres user, fsync and synchronous_commit on,
    TCP on 127.0.0.1 only (trust), its log in the data directory. The same interface as Postgres: start()
    (initdb the first time; after a kill -9 a start is crash recovery), kill() (-9 to the postmaster: every
    database of the cluster goes down at once), stop(). url is the cluster's maintenance database."""

    def __init__(self, data_dir: Path):
        from tools.pgbin import bindir

        self.bindir = bindir()
        self.data_dir = data_dir.resolve()
        self.log_path = self.data_dir / "server.log"
        self.port = 0
        self.url = ""

    def url_for(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(_as_postgres(argv), check=check, capture_output=True, text=True, cwd="/")

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # the postgres user owns the cluster and reaches it through every parent
            shutil.chown(self.data_dir, "postgres", "postgres")
            for parent in self.data_dir.parents:
                parent.chmod(parent.stat().st_mode | 0o001)
        self.data_dir.chmod(0o700)
        initdb = [str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "-A", "trust"]
        self._run([*initdb, "-E", "UTF8", "--locale=C.UTF-8"])

    def _recorded_port(self) -> int:
        """The port of the last start (postmaster.opts, kept across crashes), or 0."""
        try:
            opts = (self.data_dir / "postmaster.opts").read_text()
        except OSError:
            return 0
        for part in opts.split('"'):
            if part.startswith("port="):
                return int(part.removeprefix("port="))
        return 0

    def start(self) -> str:
        ensure_extension("plproxy", "plproxy", self.bindir)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self.port = self.port or self._recorded_port() or free_port()
        url = self.url_for("postgres")
        pid = self.postmaster_pid()
        # (not pg_ctl status: it takes a killed, unreaped postmaster for alive)
        if pid is None or not embedded.process_alive(pid):
            self._clear_dead_postmaster()
            options = " ".join(f"-c {k}={v}" for k, v in DEBIAN_SETTINGS.items())
            options += f" -c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories=''"
            pg_ctl = [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path)]
            started = self._run([*pg_ctl, "-o", options, "-w", "-t", "120", "start"], check=False)
            if started.returncode != 0:
                raise RuntimeError(f"pg_ctl start failed: {started.stdout}{started.stderr}{self._log_tail()}")
        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.url = url
        return url

    def _pidfile(self) -> list[str]:
        try:
            return (self.data_dir / "postmaster.pid").read_text().split("\n")
        except OSError:
            return []

    def postmaster_pid(self) -> int | None:
        lines = self._pidfile()
        try:
            return int(lines[0])
        except (IndexError, ValueError):
            return None

    def _clear_dead_postmaster(self) -> None:
        """After a kill -9 of the postmaster: wait until its backends let go of its shared memory. The killed
        postmaster (adopted by whoever reaps orphans here) may linger as a zombie, which PostgreSQL's own
        lock-file check takes for a live server: its postmaster.pid is then removed."""
        lines = self._pidfile()
        pid = self.postmaster_pid()
        if pid is None or embedded.process_alive(pid):
            return
        try:
            shmid: int | None = int(lines[6].split()[1])
        except (IndexError, ValueError):
            shmid = None
        deadline = time.monotonic() + DEATH_WAIT_SECONDS
        while embedded.shm_attached(shmid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if embedded.shm_attached(shmid) == 0:
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)

    def kill(self) -> bool:
        pid = self.postmaster_pid()
        if pid is None or not embedded.process_alive(pid):
            return False
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    def stop(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            pg_ctl = [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop"]
            if self._run(pg_ctl, check=False).returncode != 0 and self.kill():
                self._clear_dead_postmaster()  # a postmaster that would not stop (it was killed)

    def crash_recoveries(self) -> int:
        try:
            return self.log_path.read_text(errors="replace").count("automatic recovery in progress")
        except OSError:
            return 0

    def _log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""
