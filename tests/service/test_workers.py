"""`wallet-service serve --workers N`: N processes on one port, everything that must happen once done once.

As users run it (the .venv console script, started by tools.launcher), with DATABASE_URL as a login holding only
wallet_app (and once in embedded mode): both workers serve, each with its own pool, the parent none; SIGTERM
drains every worker, an in-flight request finishing; a worker killed with -9 (or stopped on its own) is replaced
and the service keeps answering; a crash loop stops serve with status 1 instead of spinning; --workers 0 is a
usage error. Which worker answered is known without changing the API: while the other one is SIGSTOPped, only
one process can accept (the parent never does).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from service import server as service_server
from tests.access import bearer, create_key
from tools.launcher import CONSOLE_SCRIPT, Serve

WAIT_SECONDS = 120  # an upper bound to stop waiting, not a speed requirement


def start(log: Path, env: dict[str, str], workers: int = 2) -> Serve:
    return Serve(log, env=env, command=[str(CONSOLE_SCRIPT)], args=["--workers", str(workers)]).start()


def database_url_env(url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT", "WALLET_API_KEY_FILE", "WALLET_WORKERS")}
    env["DATABASE_URL"] = url
    env["WALLET_DATA_DIR"] = str(tmp_path / "must-not-exist")
    return env


def get(server: Serve, path: str, key: str, timeout: float = 10) -> tuple[int, Any]:
    """One request over a connection of its own (urllib closes it after the answer)."""
    req = urllib.request.Request(server.base + path, headers=bearer(key))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_for(what: str, check: Callable[[], Any], seconds: float = WAIT_SECONDS) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"waited {seconds} s for: {what}"
        time.sleep(0.05)


def database_connections(pid: int, db_port: int) -> int:
    """TCP connections `pid` holds to the PostgreSQL server on db_port."""
    return sum(
        1
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.raddr and c.raddr.port == db_port and c.status == psutil.CONN_ESTABLISHED
    )


def answers_alone(server: Serve, pid: int, key: str, requests: int = 20) -> None:
    """Every other worker stopped, `pid` alone answers `requests` requests, each on a fresh connection."""
    others = [w for w in server.workers() if w != pid]
    assert pid in server.workers() and others
    with stopped_all(others):
        for _ in range(requests):
            status, body = get(server, "/wallets/user_charlie/balance", key)
            assert status == 200 and body["balances"][0]["balance"] == 25000


@contextmanager
def stopped_all(pids: list[int]) -> Iterator[None]:
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def test_workers_0_is_a_usage_error(tmp_path):
    env = database_url_env("postgresql://nobody@127.0.0.1:1/none", tmp_path)
    for argv, extra in ((["--workers", "0"], {}), ([], {"WALLET_WORKERS": "0"}), (["--workers", "-3"], {})):
        proc = subprocess.run(
            [str(CONSOLE_SCRIPT), "serve", "--port", "0", *argv],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, (argv, extra, proc.stderr)
        assert "--workers must be at least 1" in proc.stderr


def test_two_workers_serve_one_port_each_with_its_own_pool(db_url, app_url, tmp_path):
    key = create_key(db_url, ["read"], "reader")
    log = tmp_path / "serve.log"
    server = start(log, database_url_env(app_url, tmp_path))
    db_port = int(str(psycopg.conninfo.conninfo_to_dict(app_url)["port"]))
    try:
        workers = server.workers()
        assert len(workers) == 2, workers
        # each worker has its own pool (WALLET_POOL_MIN_SIZE 2 by default), the parent holds no connection
        wait_for("each worker's pool", lambda: all(database_connections(pid, db_port) >= 2 for pid in workers))
        assert database_connections(server.pid, db_port) == 0
        # either worker alone answers every request: both accept on the one port
        for pid in workers:
            answers_alone(server, pid, key)
        assert sorted(server.workers()) == sorted(workers)  # none was replaced meanwhile
    finally:
        assert server.stop(WAIT_SECONDS) == 0
    text = log.read_text()
    assert len(re.findall(r"wallet-service listening on http://127\.0\.0\.1:\d+/api/v1", text)) == 1
    assert "2 workers, each with its own pool of up to 10 connections (WALLET_POOL_MAX_SIZE): up to 20" in text
    for number, pid in enumerate(sorted(workers), start=1):
        assert f"worker {number} (pid {pid}) serving" in text
        assert f"worker {number} (pid {pid}) stopped" in text
    assert text.count("connection pool closed") == 2
    assert "unexpectedly" not in text and "WARNING" not in text


def lock_waits(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND application_name = 'wallet-service'"
        ).fetchone()[0]


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


def test_sigterm_drains_every_worker_and_the_in_flight_request_finishes(db_url, app_url, tmp_path):
    key = create_key(db_url, ["spend"], "spender")
    log = tmp_path / "serve.log"
    server = start(log, database_url_env(app_url, tmp_path))
    workers = server.workers()
    holder = psycopg.connect(db_url)
    result: dict = {}
    try:
        holder.execute("SELECT 1 FROM wallets WHERE user_id = 'user_bob' AND asset_code = 'GOLD_COINS' FOR UPDATE")

        def spend() -> None:
            body = {
                "user_id": "user_bob",
                "asset_code": "GOLD_COINS",
                "amount": 10,
                "reference_id": "w",
                "item_id": "i",
            }
            req = urllib.request.Request(
                server.base + "/wallets/spend",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json", **bearer(key)},
            )
            with urllib.request.urlopen(req, timeout=60) as r:
                result["answer"] = (r.status, json.loads(r.read()))

        thread = threading.Thread(target=spend)
        thread.start()
        wait_for("the spend to wait on our lock", lambda: lock_waits(db_url) or not thread.is_alive())
        assert thread.is_alive(), f"the spend did not wait for the lock: {result}"
        server.terminate()
        wait_for("the port to close", lambda: refused(server.port))  # the parent's and every worker's copy
        assert server.running and "answer" not in result  # the request is still in flight
        assert any(psutil.pid_exists(pid) for pid in workers)
        holder.rollback()  # the lock goes; the spend completes
        thread.join(timeout=60)
        assert result["answer"][0] == 201 and result["answer"][1]["balance"] == 49990
    finally:
        holder.close()
        code = server.stop(WAIT_SECONDS)  # SIGTERM was sent already, unless a step failed
    assert code == 0
    assert not any(psutil.pid_exists(pid) for pid in workers)
    text = log.read_text()
    assert "SIGTERM: stopping 2 workers" in text
    assert text.count("connection pool closed") == 2
    assert text.index("connection pool closed") < text.index("wallet-service stopped")
    assert "unexpectedly" not in text


def replaced(server: Serve, gone: int, count: int = 2) -> list[int]:
    """Wait until `gone` is replaced: `count` workers again, `gone` not among them."""
    return wait_for(
        f"worker {gone} to be replaced",
        lambda: (w := server.workers()) and len(w) == count and gone not in w and w,
    )


def test_a_killed_worker_is_replaced_and_the_service_keeps_answering(db_url, app_url, tmp_path):
    key = create_key(db_url, ["read"], "reader")
    log = tmp_path / "serve.log"
    server = start(log, database_url_env(app_url, tmp_path))
    try:
        victim, survivor = server.workers()
        os.kill(victim, signal.SIGKILL)
        workers = replaced(server, victim)
        (new,) = set(workers) - {survivor}
        assert survivor in workers
        wait_for("the new worker to serve", lambda: f"(pid {new}) serving" in log.read_text())
        answers_alone(server, new, key)
        answers_alone(server, survivor, key)
    finally:
        assert server.stop(WAIT_SECONDS) == 0
    text = log.read_text()
    assert re.search(rf"worker (\d) \(pid {victim}\) was killed by SIGKILL unexpectedly", text)
    number = re.search(rf"worker (\d) \(pid {victim}\)", text).group(1)
    assert f"worker {number} (pid {new}) started" in text  # the replacement takes its number
    assert not psutil.pid_exists(new)


def test_a_crash_loop_stops_serve_with_status_1(db_url, app_url, tmp_path):
    """MAX_RESTARTS kills within the window are each repaired; one more and serve stops every worker."""
    log = tmp_path / "serve.log"
    server = start(log, database_url_env(app_url, tmp_path))
    seen: set[int] = set()
    try:
        for _ in range(service_server.MAX_RESTARTS):
            victim = server.workers()[0]
            seen.update(server.workers())
            os.kill(victim, signal.SIGKILL)
            replaced(server, victim)
        seen.update(server.workers())
        os.kill(server.workers()[0], signal.SIGKILL)
        assert server.proc is not None
        code = server.proc.wait(WAIT_SECONDS)
    finally:
        server.stop(WAIT_SECONDS)
    assert code == 1
    assert not any(psutil.pid_exists(pid) for pid in seen)  # no worker outlives it
    text = log.read_text()
    assert text.count("unexpectedly") == service_server.MAX_RESTARTS + 1
    assert f"{service_server.MAX_RESTARTS} workers restarted within 60 s already: a crash loop" in text
    assert "connection pool closed" in text  # the surviving worker was stopped, not killed
    assert "wallet-service stopped" not in text


@pytest.fixture
def embedded_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "HOST", "PORT", "WALLET_WORKERS")}
    env["WALLET_DATA_DIR"] = str(tmp_path / "pgdata")
    return env


def test_embedded_mode_prepares_once_and_only_the_parent_stops_postgres(embedded_env, tmp_path):
    """The embedded server is started, migrated and seeded, and the key created, by the parent alone; a worker
    that stops on its own (SIGTERM to it alone) is replaced and leaves PostgreSQL running; SIGTERM to serve
    stops the workers, then PostgreSQL."""
    log = tmp_path / "serve.log"
    server = start(log, embedded_env)
    pgdata = Path(embedded_env["WALLET_DATA_DIR"])
    try:
        key = (tmp_path / "admin-api-key").read_text().strip()
        assert get(server, "/wallets/user_alice/balance?asset_code=GOLD_COINS", key)[0] == 200
        victim = server.workers()[0]
        os.kill(victim, signal.SIGTERM)
        replaced(server, victim)
        assert (pgdata / "postmaster.pid").exists()
        for pid in server.workers():
            answers_alone(server, pid, key, requests=5)
    finally:
        assert server.stop(WAIT_SECONDS) == 0
    assert not (pgdata / "postmaster.pid").exists()  # PostgreSQL stopped too, by the parent
    text = log.read_text()
    for once in (
        "embedded PostgreSQL: data in",
        "migrations applied",
        "created the login wallet_service",
        "created the admin API key local-admin",
        "wallet-service listening on",
    ):
        assert text.count(once) == 1, once
    assert re.search(rf"worker \d \(pid {victim}\) exited with status 0 unexpectedly", text)
    assert text.count("connection pool closed") == 3  # the worker stopped alone, then both


def test_the_workers_of_a_killed_parent_stop_and_free_the_port(db_url, app_url, tmp_path):
    """kill -9 of serve (as the torture test does): its workers get SIGTERM from the kernel and drain, so
    no orphan keeps serving, and serve starts again at once on the same port."""
    key = create_key(db_url, ["read"], "reader")
    server = start(tmp_path / "serve.log", database_url_env(app_url, tmp_path))
    workers = server.workers()
    server.kill()
    wait_for("the orphaned workers to exit", lambda: not any(psutil.pid_exists(pid) for pid in workers), 60)
    server.start()
    try:
        assert get(server, "/wallets/user_charlie/balance", key)[0] == 200
        assert not set(server.workers()) & set(workers)
    finally:
        assert server.stop(WAIT_SECONDS) == 0
    assert (tmp_path / "serve.log").read_text().count("connection pool closed") == 4  # 2 orphans, 2 workers


def test_pools_larger_than_max_connections_are_warned_about(app_url, tmp_path):
    log = tmp_path / "serve.log"
    with psycopg.connect(app_url) as conn:
        max_connections = int(conn.execute("SHOW max_connections").fetchone()[0])
    size = max_connections // 2 + 1  # two pools of this size may need more than the server allows
    server = start(log, {**database_url_env(app_url, tmp_path), "WALLET_POOL_MAX_SIZE": str(size)})
    assert server.stop(WAIT_SECONDS) == 0
    text = log.read_text()
    assert f"up to {2 * size} connections to PostgreSQL" in text
    assert f"may open {2 * size} connections, the PostgreSQL server allows max_connections = {max_connections}" in text


def test_metrics_of_two_workers_are_summed_by_whichever_answers(db_url, app_url, tmp_path):
    """As users run it: `serve --workers 2` prepares prometheus_client's multiprocess directory before it is
    imported (service/cli.py), so a scrape answered by either worker counts the requests of both; the
    directory is removed when serve stops."""
    key = create_key(db_url, ["read"], "metrics-reader")
    log = tmp_path / "serve.log"
    before = set(Path(tempfile.gettempdir()).glob("wallet-service-metrics-*"))
    server = start(log, database_url_env(app_url, tmp_path))

    def balance_200s() -> float:
        with urllib.request.urlopen(server.origin + "/metrics", timeout=10) as r:
            text = r.read().decode()
        found = re.search(r'^wallet_http_requests_total\{route="getBalance",status="200"\} (\S+)$', text, re.M)
        return float(found.group(1)) if found else 0.0

    try:
        first, second = server.workers()
        answers_alone(server, first, key, requests=3)
        answers_alone(server, second, key, requests=4)
        with stopped_all([second]):
            assert balance_200s() == 7  # answered by the first worker: its 3 and the second's 4
        with stopped_all([first]):
            assert balance_200s() == 7
        # the files of both workers' values, in the directory serve made for this run (tempfile's default place)
        mine = [d for d in Path(tempfile.gettempdir()).glob("wallet-service-metrics-*") if d not in before]
        assert len(mine) == 1, mine
        multiproc_dir = mine[0]
        assert {f"counter_{first}.db", f"counter_{second}.db"} <= {f.name for f in multiproc_dir.iterdir()}
    finally:
        assert server.stop(WAIT_SECONDS) == 0
    assert not multiproc_dir.exists()
