"""`wallet-service serve` as users run it: the .venv console script in a subprocess, on a free port.

Without DATABASE_URL it starts the embedded PostgreSQL in WALLET_DATA_DIR, serves as the login wallet_service
(holding only wallet_app) and keeps a local admin API key in the key file next to the data; data and key survive
a restart; the quick test commands of the README (section "Run") answer as the contract says; SIGTERM lets an
in-flight request finish. With DATABASE_URL it never migrates: a missing migration is exit 1 naming it, and a
role with more rights than wallet_app is warned about. The process is started and stopped by tools.launcher,
as the torture test and the benchmark do.
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
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from service import schema, server
from service.config import Config
from tests.access import bearer, create_key
from tools.launcher import CONSOLE_SCRIPT, Serve, ServeExited, free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
QUICK_TEST_LEAD_IN = "Then try the quick test commands"
DEFAULT_HOME = "~/.local/share/wallet-service"  # where the README's commands find the key file
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


def request(
    server: Serve, method: str, path: str, body: dict | None = None, key: str | None = None
) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **(bearer(key) if key else {})}
    req = urllib.request.Request(server.base + path, data=data, method=method, headers=headers)
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


def quick_test_block(readme: str) -> list[str]:
    """The lines of the ```bash block right after the README's quick-test lead-in (its paragraph)."""
    after = readme[readme.index(QUICK_TEST_LEAD_IN) + len(QUICK_TEST_LEAD_IN) :]
    after = after[after.index("\n\n") :]  # the rest of the lead-in's paragraph
    assert after.lstrip().startswith("```bash"), "the quick test commands follow their lead-in paragraph"
    block = after[after.index("```bash") + len("```bash") :]
    block = block[: block.index("```")]
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def quick_test_commands(readme: str) -> list[str]:
    """The curl lines of the block (whatever options they carry: headers, quoting)."""
    return [line for line in quick_test_block(readme) if line.startswith("curl ")]


def quick_test_setup(readme: str) -> list[str]:
    """The block's other lines (e.g. KEY=$(cat ...)): run before each curl line, in the same shell."""
    return [line for line in quick_test_block(readme) if not line.startswith("curl ")]


def test_quick_test_commands_are_read_generically():
    readme = (
        "## Run\n\nThen try the quick test commands (with a\nkey):\n\n```bash\n"
        "KEY=$(cat ~/k)\n"
        "curl http://localhost:3000/api/v1/health\n"
        "# a comment\n"
        'curl -X POST http://localhost:3000/api/v1/wallets/topup -H "Authorization: Bearer $KEY" -d \'{"a":1}\'\n'
        "```\n\n```bash\ncurl http://localhost:3000/not-this-block\n```\n"
    )
    assert quick_test_commands(readme) == [
        "curl http://localhost:3000/api/v1/health",
        'curl -X POST http://localhost:3000/api/v1/wallets/topup -H "Authorization: Bearer $KEY" -d \'{"a":1}\'',
    ]
    assert quick_test_setup(readme) == ["KEY=$(cat ~/k)"]


def run_curl(command: str, port: int, setup: Sequence[str] = (), home: Path | None = None) -> tuple[int, Any]:
    """One curl line of the README, after its setup lines, in one bash; the default data location (where the
    key file is) replaced by `home`."""
    command = command.replace("http://localhost:3000", f"http://127.0.0.1:{port}")
    assert command.startswith("curl ")
    command = "curl -s -w '\\n%{http_code}' " + command[len("curl ") :]
    script = "\n".join([*(line.replace(DEFAULT_HOME, str(home)) for line in setup), command])
    out = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, check=True).stdout
    body, _, status = out.rpartition("\n")
    return int(status), json.loads(body)


def test_serve_with_embedded_postgres_keeps_data_across_restarts(embedded_env, tmp_path):
    ensure_curl()
    commands = quick_test_commands(README.read_text())
    setup = quick_test_setup(README.read_text())
    assert len(commands) == 12
    # the README reads the key file where serve writes it by default (next to the default data directory)
    assert Config.from_env({}).api_key_file == Path(DEFAULT_HOME).expanduser() / "admin-api-key"
    assert any(f"{DEFAULT_HOME}/admin-api-key" in line for line in setup)
    key_file = tmp_path / "admin-api-key"  # next to WALLET_DATA_DIR, as by default
    port = free_port()
    server = serve(tmp_path / "serve.log", embedded_env, port)
    try:
        secret = key_file.read_text().strip()
        assert re.fullmatch(r"wsk_[0-9a-f]{64}", secret)
        assert key_file.stat().st_mode & 0o777 == 0o600
        # the README's commands, as written, answer what the contract says
        answers = [run_curl(c, port, setup, tmp_path) for c in commands]
        (hs, health), (bs, balance), (ts, topup), (bos, bonus), (ss, spend), (his, history), (ds, detail) = answers[:7]
        assert (hs, bs, ts, bos, ss, his, ds) == (200, 200, 201, 201, 201, 200, 200)
        (ps, purchase), (rs, reversal), (hos, hold), (cs, capture), (ats, then) = answers[7:]
        assert (ps, rs, hos, cs, ats) == (201, 201, 201, 201, 200)
        assert [(leg["asset_code"], leg["balance"]) for leg in purchase["legs"]] == [
            ("DIAMONDS", 495),
            ("GOLD_COINS", 105400),
        ]
        assert reversal["original_reference_id"] == "test_buy_001"
        assert [(leg["asset_code"], leg["balance"]) for leg in reversal["legs"]] == [
            ("DIAMONDS", 500),
            ("GOLD_COINS", 105500),
        ]
        assert (hold["status"], hold["available"]) == ("HELD", 105200)
        assert (capture["transaction_type"], capture["amount"], capture["balance"]) == ("CAPTURE", 300, 105200)
        assert then["as_of"] == "2026-02-08T09:24:50.000Z"
        assert all(set(b) == {"asset_code", "asset_name", "balance", "last_updated"} for b in then["balances"])
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
        again = [run_curl(c, port, setup, tmp_path) for c in commands[2:5]]
        assert [s for s, _ in again] == [200, 200, 200]
        assert [b["transaction_id"] for _, b in again] == [
            topup["transaction_id"],
            bonus["transaction_id"],
            spend["transaction_id"],
        ]
        # the key's name is the actor; the seed was posted by the embedded server's superuser
        status, _, body = request(server, "GET", "/transactions/test_topup_001", key=secret)
        assert status == 200 and body["actor"] == "local-admin"
        assert detail["actor"] == "postgres"
        # the service's pool connects as wallet_service, which holds wallet_app and nothing more
        superuser_url = re.search(r"connect with: \S*psql '([^']+)'", (tmp_path / "serve.log").read_text()).group(1)
        with psycopg.connect(superuser_url, autocommit=True) as conn:
            users = conn.execute(
                "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = 'wallet-service'"
            ).fetchall()
            assert users == [("wallet_service",)]
            assert conn.execute(
                "SELECT r.rolsuper, ARRAY(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid"
                "                         WHERE m.member = r.oid) FROM pg_roles r WHERE r.rolname = 'wallet_service'"
            ).fetchone() == (False, ["wallet_app"])
    finally:
        assert server.stop(WAIT_SECONDS) == 0
    log = (tmp_path / "serve.log").read_text()
    assert f"the admin API key local-admin of this local server; its secret is in {key_file}" in log
    assert f"API key local-admin (scope admin) of this local server: in {key_file}" in log
    assert secret not in log and secret[4:] not in log
    assert "SECURITY" not in log
    assert re.search(r"embedded PostgreSQL: data in .*pgdata.*connect with: \S*psql 'postgresql://", log)
    assert "connection pool closed" in log
    assert not (Path(embedded_env["WALLET_DATA_DIR"]) / "postmaster.pid").exists()  # PostgreSQL stopped too
    lines = [json.loads(line) for line in log.splitlines()]  # every line is one JSON object
    access = [line for line in lines if line.get("event") == "request"]
    assert any(a["path"] == "/api/v1/wallets/topup" and a["status"] == 201 and a["request_id"] for a in access)

    server = serve(tmp_path / "serve2.log", embedded_env, port)
    try:
        assert key_file.read_text().strip() == secret  # the same key: the file is reused, not rewritten
        status, _, body = request(server, "GET", "/wallets/user_alice/balance?asset_code=GOLD_COINS", key=secret)
        assert status == 200 and body["balances"][0]["balance"] == 105200
        status, headers, body = request(
            server,
            "POST",
            "/wallets/topup",
            {"user_id": "user_alice", "asset_code": "GOLD_COINS", "amount": 5000, "reference_id": "test_topup_001"},
            key=secret,
        )
        assert status == 200 and headers["Idempotent-Replayed"] == "true"
        assert body["transaction_id"] == topup["transaction_id"]
    finally:
        assert server.stop(WAIT_SECONDS) == 0
    assert "created the admin API key" not in (tmp_path / "serve2.log").read_text()


def test_a_key_file_that_holds_no_active_key_is_replaced(embedded_env, tmp_path):
    """E.g. the data directory was deleted but not the key file: a new key is written, and it works."""
    key_file = tmp_path / "elsewhere" / "key"
    key_file.parent.mkdir()
    key_file.write_text("wsk_" + "0" * 64 + "\n")
    server = serve(tmp_path / "serve.log", {**embedded_env, "WALLET_API_KEY_FILE": str(key_file)})
    try:
        secret = key_file.read_text().strip()
        assert secret != "wsk_" + "0" * 64 and key_file.stat().st_mode & 0o777 == 0o600
        assert request(server, "GET", "/wallets/user_bob/balance", key=secret)[0] == 200
        assert request(server, "GET", "/wallets/user_bob/balance")[0] == 401
    finally:
        assert server.stop(WAIT_SECONDS) == 0
    assert "holds no active API key of this database" in (tmp_path / "serve.log").read_text()


def lock_waits(url: str) -> int:
    """Sessions of the service waiting for a lock right now."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND application_name = 'wallet-service'"
        ).fetchone()[0]


def test_sigterm_lets_the_in_flight_request_finish(embedded_env, tmp_path):
    server = serve(tmp_path / "serve.log", embedded_env)
    secret = (tmp_path / "admin-api-key").read_text().strip()
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
                key=secret,
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


def database_url_env(url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT", "WALLET_API_KEY_FILE")}
    env["DATABASE_URL"] = url
    env["WALLET_DATA_DIR"] = str(tmp_path / "must-not-exist")
    return env


def test_serve_with_database_url_never_starts_a_server(db_url, app_url, tmp_path):
    """As a login holding only wallet_app, as in production: it serves, warns about nothing, and neither
    starts a server, nor migrates, nor seeds, nor creates a key."""
    secret = create_key(db_url, ["read"], "charlie-reader")
    server = serve(tmp_path / "serve.log", database_url_env(app_url, tmp_path))
    try:
        status, _, body = request(server, "GET", "/wallets/user_charlie/balance", key=secret)
        assert status == 200 and body["balances"][0]["balance"] == 25000
        assert request(server, "GET", "/wallets/user_charlie/balance")[0] == 401
    finally:
        assert server.stop(WAIT_SECONDS) == 0
    assert not (tmp_path / "must-not-exist").exists() and not (tmp_path / "admin-api-key").exists()
    log = (tmp_path / "serve.log").read_text()
    assert "embedded PostgreSQL" not in log
    assert "SECURITY" not in log and "WARNING" not in log
    assert [k.name for k in schema.list_keys(db_url)] == ["charlie-reader"]


def test_serve_as_a_superuser_warns_loudly(db_url, tmp_path):
    server = serve(tmp_path / "serve.log", database_url_env(db_url, tmp_path))
    assert server.stop(WAIT_SECONDS) == 0
    lines = [json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines()]
    warnings = [line["message"] for line in lines if line["level"] == "WARNING"]
    assert any("SECURITY: the service connects as role postgres, which is a SUPERUSER" in w for w in warnings)
    assert any("GRANT wallet_app TO wallet_service" in w for w in warnings)


@pytest.mark.parametrize(
    "make_role,problem",
    [
        ("GRANT wallet_app, wallet_owner TO {role}", "is (a member of) wallet_owner"),
        ("GRANT wallet_app TO {role}; ALTER TABLE assets OWNER TO {role}", "owns tables (assets)"),
        ("GRANT wallet_app TO {role}", None),
    ],
    ids=["owner member", "table owner", "wallet_app only"],
)
def test_serve_warns_about_every_right_beyond_wallet_app(conn, db_url, caplog, make_role, problem):
    role = f"serve_check_{uuid.uuid4().hex[:12]}"
    conn.execute(f"DROP ROLE IF EXISTS {role}")
    conn.execute(f"CREATE ROLE {role} LOGIN")
    try:
        for statement in make_role.format(role=role).split("; "):
            conn.execute(statement)
        with caplog.at_level("WARNING", logger="service.server"):
            assert server.check_database(schema.login_url(db_url, role))
        warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        if problem is None:
            assert warned == []
        else:
            assert any(f"connects as role {role}, which {problem}" in w for w in warned), warned
    finally:
        conn.execute("ALTER TABLE assets OWNER TO wallet_owner")
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")


def test_serve_refuses_a_database_missing_a_migration(conn, db_url, app_url, tmp_path):
    conn.execute("DELETE FROM _yoyo_migration WHERE migration_id = '0003.limits'")
    with pytest.raises(ServeExited, match="exited with 1"):
        serve(tmp_path / "serve.log", database_url_env(app_url, tmp_path))
    log = (tmp_path / "serve.log").read_text()
    assert "the database lacks 1 migration(s) this service needs: 0003.limits" in log
    assert "run `wallet-service migrate` as the owner" in log
    assert "listening" not in log
    # and it did not migrate it either
    assert conn.execute("SELECT count(*) FROM _yoyo_migration WHERE migration_id = '0003.limits'").fetchone()[0] == 0


def test_serve_refuses_an_unmigrated_database(empty_db_url, tmp_path):
    with pytest.raises(ServeExited, match="exited with 1"):
        serve(tmp_path / "serve.log", database_url_env(empty_db_url, tmp_path))
    shipped = schema.shipped_migrations()
    assert shipped[0] == "0001.schema" and "0004.trust" in shipped
    expected = f"the database lacks {len(shipped)} migration(s) this service needs: {', '.join(shipped)}"
    assert expected in (tmp_path / "serve.log").read_text()
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0
