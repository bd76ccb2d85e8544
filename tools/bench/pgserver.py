"""The benchmark's own PostgreSQL: Debian's server binaries, run as the `postgres` user (PostgreSQL refuses
root), durable settings (fsync and synchronous_commit on), pg_stat_statements preloaded, TCP on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tools.launcher import free_port
from tools.pgbin import bindir

# Durability stays on: a benchmark with fsync off measures a database nobody runs in production.
SETTINGS: dict[str, str] = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "shared_buffers": "1GB",
    "work_mem": "16MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "15min",
    "max_connections": "100",
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",
}


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *argv]


@dataclass
class BenchServer:
    """A PostgreSQL cluster in `datadir`, started by start() and stopped by stop()."""

    datadir: Path
    port: int = 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> str:
        bins = bindir()
        self.datadir = self.datadir.resolve()
        if self.datadir.exists():
            shutil.rmtree(self.datadir)
        self.datadir.parent.mkdir(parents=True, exist_ok=True)
        self.datadir.mkdir()
        if os.geteuid() == 0:
            # the postgres user must own the cluster and reach it through every parent folder
            shutil.chown(self.datadir, "postgres", "postgres")
            for parent in self.datadir.parents:
                parent.chmod(parent.stat().st_mode | 0o001)
        subprocess.run(
            _as_postgres(
                [
                    str(bins / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            cwd="/",
        )
        self.port = self.port or free_port()
        options = " ".join(f"-c {k}={v}" for k, v in SETTINGS.items())
        options += f" -c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories=''"
        subprocess.run(
            _as_postgres(
                [
                    str(bins / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.datadir / "server.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            cwd="/",
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        return self.url

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the whole cluster has used so far: the postmaster, its live children
        and the children it has reaped. Per transaction, this is far less noisy than throughput on a
        shared machine."""
        postmaster = int((self.datadir / "postmaster.pid").read_text().split()[0])
        return process_cpu_seconds(postmaster, children=True)

    def stop(self) -> None:
        if self.port:
            subprocess.run(
                _as_postgres([str(bindir() / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"]),
                stdout=subprocess.DEVNULL,
                cwd="/",
            )

    def remove(self) -> None:
        shutil.rmtree(self.datadir, ignore_errors=True)


def process_cpu_seconds(pid: int, children: bool = False) -> float:
    """utime + stime of `pid` (with children=True also its reaped and its live children's) from /proc."""

    def times(p: int) -> tuple[int, list[int]]:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[1]), [int(x) for x in fields[11:15]]  # ppid; utime stime cutime cstime

    _, own = times(pid)
    ticks = own[0] + own[1]
    if children:
        ticks += own[2] + own[3]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid, t = times(int(entry.name))
                except (OSError, ValueError, IndexError):
                    continue  # gone meanwhile
                if ppid == pid:
                    ticks += t[0] + t[1]
    return ticks / os.sysconf("SC_CLK_TCK")


def describe(url: str) -> dict[str, str]:
    """Server version and the settings that matter for these numbers, as the server reports them."""
    names = [
        "fsync",
        "synchronous_commit",
        "full_page_writes",
        "shared_buffers",
        "work_mem",
        "max_wal_size",
        "max_connections",
        "shared_preload_libraries",
        "wal_level",
        "effective_cache_size",
    ]
    with psycopg.connect(url, autocommit=True) as conn:
        info = {"version": _scalar(conn, "SELECT version()")}
        for name in names:
            info[name] = _scalar(conn, "SELECT current_setting(%s)", name)
    return info


def _scalar(conn: psycopg.Connection, query: str, *params: str) -> str:
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {query}")
    return str(row[0])


def create_database(url: str, name: str) -> str:
    """(Re)create database `name` on the server of `url`; returns its URL."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url_with_db(url, name)


def url_with_db(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))
