"""`wallet-service serve` as users run it: the .venv console script in a subprocess, on a free port.

Without DATABASE_URL it starts the embedded PostgreSQL in WALLET_DATA_DIR; data survives a restart; the seed
document's quick test commands answer as the contract says; SIGTERM lets an in-flight request finish.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from tools.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
WALLET_SERVICE = Path(sys.executable).parent / "wallet-service"
SEED_README = ROOT.parent / "shared" / "seed" / "wallet-service-README.md"
STARTUP_SECONDS = 120  # an upper bound to stop waiting, not a speed requirement


def ensure_curl() -> str:
    curl = shutil.which("curl")
    if curl is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "curl"], check=True)
        curl = shutil.which("curl")
    assert curl
    return curl


class Server:
    def __init__(self, port: int, env: dict[str, str], log: Path):
        self.port, self.log = port, log
        self.base = f"http://127.0.0.1:{port}/api/v1"
        self.out = open(log, "ab")
        self.proc = subprocess.Popen(
            [str(WALLET_SERVICE), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert self.proc.poll() is None, f"serve exited early:\n{log.read_text()}"
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"serve did not come up:\n{log.read_text()}")
            time.sleep(0.2)

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, dict(r.headers), json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), json.loads(e.read())

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=120)
        self.out.close()
        return code


@pytest.fixture
def embedded_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "HOST", "PORT")}
    env["WALLET_DATA_DIR"] = str(tmp_path / "pgdata")
    return env


def quick_test_commands() -> list[str]:
    text = SEED_README.read_text()
    section = text[text.index("Quick Test Commands") :]
    block = section[section.index("```bash") + len("```bash") :]
    block = block[: block.index("```")]
    return [line.strip() for line in block.splitlines() if line.strip().startswith("curl ")]


def run_curl(command: str, port: int) -> tuple[int, dict]:
    command = command.replace("http://localhost:3000", f"http://127.0.0.1:{port}")
    assert command.startswith("curl ")
    command = "curl -s -w '\\n%{http_code}' " + command[len("curl ") :]
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True).stdout
    body, _, status = out.rpartition("\n")
    return int(status), json.loads(body)


def test_serve_with_embedded_postgres_keeps_data_across_restarts(embedded_env, tmp_path):
    ensure_curl()
    commands = quick_test_commands()
    assert len(commands) == 7
    port = free_port()
    server = Server(port, embedded_env, tmp_path / "serve.log")
    try:
        # the seed document's commands, as written, answer what the contract says
        answers = [run_curl(c, port) for c in commands]
        (hs, health), (bs, balance), (ts, topup), (bos, bonus), (ss, spend), (his, history), (ds, detail) = answers
        assert (hs, bs, ts, bos, ss, his, ds) == (200, 200, 201, 201, 201, 200, 200)
        assert health["status"] == "healthy" and health["database"] == "ok"
        assert {b["asset_code"]: b["balance"] for b in balance["balances"]} == {"GOLD_COINS": 100000, "DIAMONDS": 500}
        assert (topup["balance"], bonus["balance"], spend["balance"]) == (105000, 106000, 105500)
        assert [t["reference_id"] for t in history["transactions"]] == [
            "test_spend_001",
            "test_bonus_001",
            "test_topup_001",
            "init_alice_gold_001",
        ]
        assert detail["type"] == "INITIAL_BALANCE" and len(detail["ledger_entries"]) == 2
        # pasted again: the writes are replays, nothing new
        again = [run_curl(c, port) for c in commands[2:5]]
        assert [s for s, _ in again] == [200, 200, 200]
        assert [b["transaction_id"] for _, b in again] == [
            topup["transaction_id"],
            bonus["transaction_id"],
            spend["transaction_id"],
        ]
    finally:
        assert server.stop() == 0
    log = (tmp_path / "serve.log").read_text()
    assert re.search(r"embedded PostgreSQL: data in .*pgdata.*connect with: \S*psql 'postgresql://", log)
    assert "connection pool closed" in log
    assert not (Path(embedded_env["WALLET_DATA_DIR"]) / "postmaster.pid").exists()  # PostgreSQL stopped too
    access = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(a["path"] == "/api/v1/wallets/topup" and a["status"] == 201 and a["request_id"] for a in access)

    server = Server(port, embedded_env, tmp_path / "serve2.log")
    try:
        status, _, body = server.request("GET", "/wallets/user_alice/balance?asset_code=GOLD_COINS")
        assert status == 200 and body["balances"][0]["balance"] == 105500
        status, headers, body = server.request(
            "POST",
            "/wallets/topup",
            {"user_id": "user_alice", "asset_code": "GOLD_COINS", "amount": 5000, "reference_id": "test_topup_001"},
        )
        assert status == 200 and headers["Idempotent-Replayed"] == "true"
        assert body["transaction_id"] == topup["transaction_id"]
    finally:
        assert server.stop() == 0


def test_sigterm_lets_the_in_flight_request_finish(embedded_env, tmp_path):
    port = free_port()
    server = Server(port, embedded_env, tmp_path / "serve.log")
    url = re.search(r"connect with: \S*psql '([^']+)'", (tmp_path / "serve.log").read_text()).group(1)
    holder = psycopg.connect(url)
    result: dict = {}
    try:
        holder.execute("SELECT 1 FROM wallets WHERE user_id = 'user_bob' AND asset_code = 'GOLD_COINS' FOR UPDATE")

        def spend():
            result["answer"] = server.request(
                "POST",
                "/wallets/spend",
                {
                    "user_id": "user_bob",
                    "asset_code": "GOLD_COINS",
                    "amount": 10,
                    "reference_id": "inflight",
                    "item_id": "i",
                },
            )

        thread = threading.Thread(target=spend)
        thread.start()
        with psycopg.connect(url, autocommit=True) as watcher:  # wait until the spend waits on our lock
            while not watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND application_name = 'wallet-service'"
            ).fetchone()[0]:
                time.sleep(0.05)
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:  # shutdown has begun once the listening socket is closed
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert server.proc.poll() is None and "answer" not in result  # the request is still in flight
        holder.rollback()  # the lock goes; the spend completes
        thread.join(timeout=60)
        assert result["answer"][0] == 201 and result["answer"][2]["balance"] == 49990
    finally:
        holder.close()
        code = server.proc.wait(timeout=120)
        server.out.close()
    assert code == 0
    assert "connection pool closed" in (tmp_path / "serve.log").read_text()


def test_serve_with_database_url_never_starts_a_server(db_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")}
    env["DATABASE_URL"] = db_url
    env["WALLET_DATA_DIR"] = str(tmp_path / "must-not-exist")
    server = Server(free_port(), env, tmp_path / "serve.log")
    try:
        status, _, body = server.request("GET", "/wallets/user_charlie/balance")
        assert status == 200 and body["balances"][0]["balance"] == 25000
    finally:
        assert server.stop() == 0
    assert not (tmp_path / "must-not-exist").exists()
    assert "embedded PostgreSQL" not in (tmp_path / "serve.log").read_text()
