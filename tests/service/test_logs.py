"""Every log line is one JSON object on stderr (service/logs.py), and every line logged while a request is
handled carries that request's id: its access line, a retry, a 5xx failure, the answer to a request aiohttp's
parser refused. Checked on `wallet-service serve` in a subprocess, as users run it, and on the formatter
itself in this process (its handler is removed again afterwards)."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from service import logs
from service.app import create_app
from service.middleware import protocol_error_response
from tests.access import bearer, create_key
from tests.api.helpers import topup_body
from tools.launcher import CONSOLE_SCRIPT, Serve

ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(
    server: Serve, method: str, path: str, request_id: str, body: dict | None = None, key: str | None = None
) -> int:
    headers = {"X-Request-Id": request_id, "Content-Type": "application/json", **(bearer(key) if key else {})}
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.base + path, data=data, method=method, headers=headers)
    try:
        with _OPENER.open(req, timeout=60) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


def malformed(server: Serve) -> tuple[int, str]:
    """A request aiohttp's parser refuses, over a raw socket: (status, the answer's X-Request-Id)."""
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nNo colon in this header\r\n\r\n")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].decode()
    status = int(head.split(" ", 2)[1])
    request_id = re.search(r"(?im)^X-Request-Id: (\S+)\r?$", head)
    assert request_id, head
    return status, request_id.group(1)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of `text` as the JSON object it must be, with the fields every line has."""
    lines = []
    for line in text.splitlines():
        entry = json.loads(line)  # fails the test on any line that is not one JSON object
        assert isinstance(entry, dict), line
        assert ISO_Z.fullmatch(entry["ts"]), line
        assert entry["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), line
        assert isinstance(entry["logger"], str) and isinstance(entry["message"], str), line
        assert isinstance(entry["pid"], int), line
        lines.append(entry)
    return lines


def test_serve_logs_json_lines_each_with_its_request_id(db_url, app_url, tmp_path):
    key = create_key(db_url, ["admin"], "logs-test")
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")}
    env.update(DATABASE_URL=app_url, WALLET_RETRIES="1")
    log = tmp_path / "serve.log"
    server = Serve(log, env=env, command=[str(CONSOLE_SCRIPT)]).start()
    server_pid = server.pid
    try:
        assert call(server, "GET", "/health", "log-health") == 200
        assert call(server, "GET", "/wallets/user_alice/balance", "log-401") == 401  # no key
        assert call(server, "GET", "/no/such/route", "log-404") == 404
        assert call(server, "POST", "/wallets/topup", "log-400", {"user_id": "user_alice"}, key) == 400
        # a posting that waits for a wallet another connection holds: lock timeout (55P03), one retry, 503
        with psycopg.connect(db_url) as holder:
            holder.execute(
                "SELECT 1 FROM wallets WHERE user_id = 'user_alice' AND asset_code = 'GOLD_COINS' FOR UPDATE"
            )
            spend = topup_body(reference_id="log-spend", amount=1, item_id="sword")
            assert call(server, "POST", "/wallets/spend", "log-retry", spend, key) == 503
            holder.rollback()
        status, parsed_id = malformed(server)
        assert status == 400
    finally:
        assert server.stop() == 0
    lines = json_lines(log.read_text())
    assert len(lines) >= 10
    by_id: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        if "request_id" in line:
            by_id.setdefault(line["request_id"], []).append(line)
    # each request's access line, under the id the client sent (or the one the answer gave)
    expected = {
        "log-health": (200, None, "health"),
        "log-401": (401, "UNAUTHENTICATED", "getBalance"),
        "log-404": (404, "NOT_FOUND", "unmatched"),
        "log-400": (400, "VALIDATION_ERROR", "topup"),
        "log-retry": (503, "CONCURRENCY_CONFLICT", "spend"),
        parsed_id: (400, "VALIDATION_ERROR", "unmatched"),
    }
    for request_id, (status, error, route) in expected.items():
        (access,) = [line for line in by_id.get(request_id, []) if line.get("event") == "request"]
        assert (access["status"], access["error"], access["route"]) == (status, error, route), access
        assert access["logger"] == "service.access" and isinstance(access["duration_ms"], float)
        assert {"method", "path", "query", "remote"} <= access.keys()
    assert by_id["log-404"][0]["path"] == "/api/v1/no/such/route"
    # the retry and the 5xx failure of that request, logged by the database layer and the error middleware
    retry = [line for line in by_id["log-retry"] if line["message"].startswith("retrying after 55P03")]
    assert len(retry) == 1 and retry[0]["logger"] == "service.database"
    failed = [line for line in by_id["log-retry"] if line["logger"] == "service.middleware"]
    assert len(failed) == 1 and "CONCURRENCY_CONFLICT" in failed[0]["message"] and failed[0]["level"] == "WARNING"
    # every line of the service's request path names its request
    for line in lines:
        if line["logger"] in ("service.access", "service.database", "service.middleware"):
            assert line.get("request_id"), line
    # one process wrote them all (no --workers): the pid of every line is serve's
    assert {line["pid"] for line in lines} == {server_pid}
    # and a line logged outside any request has none
    listening = [line for line in lines if "listening on" in line["message"]]
    assert len(listening) == 1 and "request_id" not in listening[0]


def test_every_command_logs_json_lines(db_url):
    """migrate (the owner's command, with yoyo's own logging) writes JSON lines on stderr too."""
    env = {**os.environ, "DATABASE_URL": db_url}
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "migrate"], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    lines = json_lines(done.stderr)
    assert any(line["logger"] == "service.schema" and "migrations applied" in line["message"] for line in lines)


# ---------------------------------------------------------------- the formatter, in this process


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """logs.configure() writing to a buffer; the logging set-up of this process restored afterwards."""
    root, access = logging.getLogger(), logging.getLogger(logs.ACCESS_LOGGER)
    saved = (root.level, list(root.handlers), access.level, list(access.handlers), access.propagate, sys.excepthook)
    switches = ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing")
    saved_switches = {name: getattr(logging, name) for name in switches}
    stream = io.StringIO()
    try:
        logs.configure(stream=stream)
        logs.configure(stream=stream)  # twice: still one handler, no line written twice
        yield stream
    finally:
        root.level, root.handlers[:], access.level = saved[0], saved[1], saved[2]
        access.handlers[:], access.propagate, sys.excepthook = saved[3], saved[4], saved[5]
        for name, value in saved_switches.items():
            setattr(logging, name, value)
        logging.captureWarnings(False)


def test_a_traceback_is_a_field_of_its_line_and_the_request_id_comes_from_the_context(json_log):
    log = logging.getLogger("service.test")
    token = logs.REQUEST_ID.set("ctx-1")
    try:
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            log.exception("it broke: %s", "badly")
        logging.getLogger("aiohttp.server").error("a library's line")
        logging.getLogger(logs.ACCESS_LOGGER).info("GET / 200", extra={"event": "request", "status": 200})
    finally:
        logs.REQUEST_ID.reset(token)
    log.info("outside the request")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a warning", UserWarning, stacklevel=1)
    broke, library, access, outside, warned = json_lines(json_log.getvalue())
    assert broke["message"] == "it broke: badly" and broke["level"] == "ERROR" and broke["logger"] == "service.test"
    assert broke["exc_info"].startswith("Traceback (most recent call last):")
    assert broke["exc_info"].rstrip().endswith("ZeroDivisionError: division by zero")
    assert broke["request_id"] == library["request_id"] == access["request_id"] == "ctx-1"
    assert access["event"] == "request" and access["status"] == 200 and access["logger"] == "service.access"
    assert "request_id" not in outside
    assert warned["logger"] == "py.warnings" and "a warning" in warned["message"]


async def test_the_access_log_switch(aiohttp_client, app_url, caplog):
    caplog.set_level("INFO", logger=logs.ACCESS_LOGGER)
    quiet = await aiohttp_client(create_app(app_url, pool_min_size=1, pool_max_size=2, access_log=False))
    assert (await quiet.get("/api/v1/health", headers={"X-Request-Id": "quiet-1"})).status == 200
    loud = await aiohttp_client(create_app(app_url, pool_min_size=1, pool_max_size=2))
    assert (await loud.get("/api/v1/health", headers={"X-Request-Id": "loud-1"})).status == 200
    ids = [getattr(r, "request_id", None) for r in caplog.records if r.name == logs.ACCESS_LOGGER]
    assert ids == ["loud-1"]


def test_uncaught_exceptions_are_json_too(tmp_path):
    script = "from service import logs; logs.configure(); raise RuntimeError('boom')"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert done.returncode == 1
    (line,) = json_lines(done.stderr)
    assert line["level"] == "CRITICAL" and "RuntimeError: boom" in line["exc_info"]


def test_threads_see_no_request_id_of_another(json_log):
    """A ContextVar, not a global: a thread started outside a request logs without an id."""
    token = logs.REQUEST_ID.set("main-only")
    try:
        thread = threading.Thread(target=lambda: logging.getLogger("service.test").info("from a thread"))
        thread.start()
        thread.join()
    finally:
        logs.REQUEST_ID.reset(token)
    (line,) = json_lines(json_log.getvalue())
    assert line["message"] == "from a thread" and "request_id" not in line


def test_a_request_the_parser_refused_logs_under_the_id_it_answers_with(json_log):
    """service/listener.py answers it through protocol_error_response, in aiohttp's task for that request: a
    500 there (a bug) logs its traceback under the same id as the access line and the answer."""
    try:
        raise ValueError("a bug")
    except ValueError as exc:
        # in a context of its own, as aiohttp's task for the request has (the id stays there)
        response = contextvars.copy_context().run(protocol_error_response, 500, exc, "10.0.0.1")
    assert logs.REQUEST_ID.get() is None
    failed, access = json_lines(json_log.getvalue())
    assert failed["level"] == "ERROR" and "ValueError: a bug" in failed["exc_info"]
    assert failed["request_id"] == access["request_id"] == response.headers["X-Request-Id"]
    assert (access["status"], access["error"], access["remote"]) == (500, "INTERNAL_ERROR", "10.0.0.1")
