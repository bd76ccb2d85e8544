"""`wallet-service serve` as users run it: the .venv console script in a subprocess, on a free port.

Without DATABASE_URL it starts the embedded PostgreSQL in WALLET_DATA_DIR; data survives a restart; the quick
test commands of the README (section "Run") answer as the contract says; SIGTERM lets an in-flight request
finish. The process is started and stopped by tools.launcher, as the torture test and the benchmark do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tools.launcher import CONSOLE_SCRIPT, Serve, free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
QUICK_TEST_LEAD_IN = "Then try the quick test commands:"
WAIT_SECONDS = 120  # an upper bound to stop waiting, not a speed requirement


def ensure_curl() -> str:
    curl = shutil.which("curl")
    if curl is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "curl"], check=True)
        curl = shutil.which("curl")
    assert curl
    return curl


def serve(log: Path, env: dict[str, str], port: int = 0) -> Serve:
    """`wallet-service serve` from the .venv console script, as users run it, answering /health with 200."""
    return Serve(log, env=env, port=port, command=[str(CONSOLE_SCRIPT)]).start()


def request(server: Serve, method: str, path: str, body: dict | None = None) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        server.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


@pytest.fixture
def embedded_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "HOST", "PORT")}
    env["WALLET_DATA_DIR"] = str(tmp_path / "pgdata")
    return env


def quick_test_commands(readme: str) -> list[str]:
    """The curl lines of the ```bash block right after the README's quick-test lead-in (whatever options
    they carry: headers, quoting)."""
    after = readme[readme.index(QUICK_TEST_LEAD_IN) + len(QUICK_TEST_LEAD_IN) :]
    assert after.lstrip().startswith("```bash"), "the quick test commands follow their lead-in sentence"
    block = after[after.index("```bash") + len("```bash") :]
    block = block[: block.index("```")]
    return [line.strip() for line in block.splitlines() if line.strip().startswith("curl ")]


def test_quick_test_commands_are_read_generically():
    readme = (
        "## Run\n\nThen try the quick test commands:\n\n```bash\n"
        "curl http://localhost:3000/api/v1/health\n"
        "# a comment\n"
        'curl -X POST http://localhost:3000/api/v1/wallets/topup -H "Authorization: Bearer t0k" -d \'{"a":1}\'\n'
        "```\n\n```bash\ncurl http://localhost:3000/not-this-block\n```\n"
    )
    assert quick_test_commands(readme) == [
        "curl http://localhost:3000/api/v1/health",
        'curl -X POST http://localhost:3000/api/v1/wallets/topup -H "Authorization: Bearer t0k" -d \'{"a":1}\'',
    ]


def run_curl(command: str, port: int) -> tuple[int, Any]:
    command = command.replace("http://localhost:3000", f"http://127.0.0.1:{port}")
    assert command.startswith("curl ")
    command = "curl -s -w '\\n%{http_code}' " + command[len("curl ") :]
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True).stdout
    body, _, status = out.rpartition("\n")
    return int(status), json.loads(body)


def test_serve_with_embedded_postgres_keeps_data_across_restarts(embedded_env, tmp_path):
    ensure_curl()
    commands = quick_test_commands(README.read_text())
    assert len(commands) == 7
    port = free_port()
    server = serve(tmp_path / "serve.log", embedded_env, port)
    try:
        # the README's commands, as written, answer what the contract says
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
        assert server.stop(WAIT_SECONDS) == 0
    log = (tmp_path / "serve.log").read_text()
    assert re.search(r"embedded PostgreSQL: data in .*pgdata.*connect with: \S*psql 'postgresql://", log)
    assert "connection pool closed" in log
    assert not (Path(embedded_env["WALLET_DATA_DIR"]) / "postmaster.pid").exists()  # PostgreSQL stopped too
    access = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(a["path"] == "/api/v1/wallets/topup" and a["status"] == 201 and a["request_id"] for a in access)

    server = serve(tmp_path / "serve2.log", embedded_env, port)
    try:
        status, _, body = request(server, "GET", "/wallets/user_alice/balance?asset_code=GOLD_COINS")
        assert status == 200 and body["balances"][0]["balance"] == 105500
        status, headers, body = request(
            server,
            "POST",
            "/wallets/topup",
            {"user_id": "user_alice", "asset_code": "GOLD_COINS", "amount": 5000, "reference_id": "test_topup_001"},
        )
        assert status == 200 and headers["Idempotent-Replayed"] == "true"
        assert body["transaction_id"] == topup["transaction_id"]
    finally:
        assert server.stop(WAIT_SECONDS) == 0


def lock_waits(url: str) -> int:
    """Sessions of the service waiting for a lock right now."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND application_name = 'wallet-service'"
        ).fetchone()[0]


def test_sigterm_lets_the_in_flight_request_finish(embedded_env, tmp_path):
    server = serve(tmp_path / "serve.log", embedded_env)
    url = re.search(r"connect with: \S*psql '([^']+)'", (tmp_path / "serve.log").read_text()).group(1)
    holder = psycopg.connect(url)
    result: dict = {}
    try:
        holder.execute("SELECT 1 FROM wallets WHERE user_id = 'user_bob' AND asset_code = 'GOLD_COINS' FOR UPDATE")

        def spend():
            result["answer"] = request(
                server,
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
        deadline = time.monotonic() + WAIT_SECONDS
        while not lock_waits(url):  # wait until the spend waits on our lock
            assert thread.is_alive(), f"the spend did not wait for the lock: {result}"
            assert time.monotonic() < deadline, "the spend never waited for the lock"
            time.sleep(0.05)
        server.terminate()
        deadline = time.monotonic() + WAIT_SECONDS
        while True:  # shutdown has begun once the listening socket is closed
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            except OSError:
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert server.running and "answer" not in result  # the request is still in flight
        holder.rollback()  # the lock goes; the spend completes
        thread.join(timeout=60)
        assert result["answer"][0] == 201 and result["answer"][2]["balance"] == 49990
    finally:
        holder.close()
        code = server.stop(WAIT_SECONDS)  # SIGTERM was sent already, unless a step failed
    assert code == 0
    assert "connection pool closed" in (tmp_path / "serve.log").read_text()


def test_serve_with_database_url_never_starts_a_server(db_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")}
    env["DATABASE_URL"] = db_url
    env["WALLET_DATA_DIR"] = str(tmp_path / "must-not-exist")
    server = serve(tmp_path / "serve.log", env)
    try:
        status, _, body = request(server, "GET", "/wallets/user_charlie/balance")
        assert status == 200 and body["balances"][0]["balance"] == 25000
    finally:
        assert server.stop(WAIT_SECONDS) == 0
    assert not (tmp_path / "must-not-exist").exists()
    assert "embedded PostgreSQL" not in (tmp_path / "serve.log").read_text()
