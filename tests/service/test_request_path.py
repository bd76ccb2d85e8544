"""The request path as `serve` runs it: on uvloop's event loop (service/listener.py), with the signal handling,
the listener and the database driver working on it as on asyncio's own loop."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import psycopg

from tests.access import bearer

ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 60.0  # upper bounds to stop waiting, not speed requirements

# listener.run, as `serve` calls it, reporting the class of the loop it runs on once it listens
SERVE = """
import asyncio
import sys

from service import listener, logs
from service.app import create_app


def ready(_: str) -> None:
    loop = asyncio.get_running_loop()
    print(type(loop).__module__, type(loop).__name__, flush=True)


logs.configure()
app = create_app(sys.argv[1], pool_min_size=1, pool_max_size=2)
listener.run(app, "127.0.0.1", int(sys.argv[2]), on_ready=ready, max_connections=64)
"""

# no HTTP proxy from the environment for a server on the loopback address
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def post(port: int, path: str, body: dict, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    with _OPENER.open(request, timeout=WAIT_SECONDS) as r:
        return r.status, json.loads(r.read())


def read_until(stream: http.client.HTTPResponse, text: str) -> list[str]:
    """The event stream's lines up to the first one holding `text`."""
    lines: list[str] = []
    while not lines or text not in lines[-1]:
        line = stream.readline()
        assert line, f"the stream ended before {text!r}: {lines}"
        lines.append(line.decode())
    return lines


def test_serve_runs_on_uvloop_posts_streams_and_drains_on_sigterm(db_url, app_url, admin_key, tmp_path):
    """listener.run serves on uvloop's loop; a top-up goes through it (HTTP, the per-wallet gate, the pool,
    psycopg's waits on that loop) and is in the ledger; an event stream opened before it delivers its event
    (the events hub's LISTEN connection and sequencer on that loop); SIGTERM (its handler installed on that
    loop) ends the open stream and stops the process cleanly: exit 0 after the pool is closed."""
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, app_url, str(port)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().split() == ["uvloop", "Loop"], log.read_text()
        events = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_SECONDS)
        events.request("GET", "/api/v1/events?last_event_id=0", headers=bearer(admin_key))
        stream = events.getresponse()
        assert stream.status == 200 and stream.headers["Content-Type"] == "text/event-stream"
        read_until(stream, "init_charlie_gold_001")  # the seeded transactions' events: caught up
        status, body = post(
            port,
            "/wallets/topup",
            {"user_id": "user_bob", "asset_code": "GOLD_COINS", "amount": 7, "reference_id": "uvloop-1"},
            bearer(admin_key),
        )
        assert status == 201 and body["balance"] == 50007, body
        with psycopg.connect(db_url) as conn:
            row = conn.execute("SELECT amount, actor FROM transactions WHERE reference_id = 'uvloop-1'").fetchone()
        assert row == (7, "test-admin")
        assert '"balance_after":50007' in read_until(stream, "uvloop-1")[-1]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=WAIT_SECONDS) == 0, log.read_text()
        assert stream.read() in (b"", b"\n")  # the stream was ended (after its last event's blank line)
        events.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert "connection pool closed" in log.read_text()
