"""Logging: every line one JSON object on stderr, through python-json-logger's JsonFormatter.

Each line has `ts` (ISO 8601 UTC, milliseconds, Z), `level`, `logger`, `pid` (the process: with
`serve --workers N`, the worker) and `message`; a line logged while a
request is handled also has its `request_id` (the X-Request-Id it answers with), whoever logs it: the
handlers, the retries of service/database.py, the error middleware, aiohttp itself. aiohttp runs each request
in its own asyncio task, so the request_context middleware sets REQUEST_ID once for that task (and what it
starts) and the handler's filter copies it into every record. A traceback is the `exc_info` field of the same
object, never lines of its own; fields a caller passes in `extra` (the access log's) are fields of the object.

python-json-logger rather than structlog: every library here (aiohttp, psycopg_pool, yoyo, asyncio) logs
through the standard logging module, and a formatter on the root handler turns all of them into JSON without
wrapping anything; the service itself needs nothing structlog adds on top of `extra`."""

from __future__ import annotations

import logging
import os
import sys
import time
from contextvars import ContextVar
from types import TracebackType
from typing import IO, Any

from pythonjsonlogger.json import JsonEncoder
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

# the pid every line names (the worker's, with `serve --workers N`): read once, and again in a forked child
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)

# the request id of the request this task handles (None outside a request)
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

ACCESS_LOGGER = "service.access"

# LogRecord attributes that are no fields of their own (the formatter writes ts/level/logger/message itself)
_RESERVED = frozenset(
    {
        *logging.makeLogRecord({}).__dict__,
        "message",
        "asctime",
        "taskName",
        "request_id",
    }
)


class JsonFormatter(_JsonFormatter):
    """{"ts", "level", "logger", "pid", "message", "request_id"?, ...extra fields, "exc_info"?, "stack_info"?}"""

    def __init__(self) -> None:
        super().__init__()  # add_fields below picks the fields
        # one encoder for every line (json.dumps would build one per call), ASCII only: a line is always one
        # line of valid text, whatever bytes a client sent
        self._encode = JsonEncoder(ensure_ascii=True).encode
        self._second = -1
        self._second_text = ""

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        second = int(record.created)
        if second != self._second:  # the date and time change once a second, the milliseconds every line
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        log_data["ts"] = f"{self._second_text}.{int(record.msecs):03d}Z"
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["pid"] = _pid
        log_data["message"] = record.message
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            log_data["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key[0] != "_":
                log_data[key] = value
        log_data.update(message_dict)  # exc_info, stack_info

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        return self._encode(log_data)


class RequestIdFilter(logging.Filter):
    """Give every record the request id of the request being handled (unless the caller named one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class _Handler(logging.StreamHandler):
    """The one handler configure() installs (a class of its own so that configure() can find its own)."""


def configure(level: int = logging.INFO, stream: IO[str] | None = None) -> logging.Handler:
    """Every log line one JSON object on `stream` (stderr): one handler on the root logger, and the same one
    on the access log, which does not propagate (so a line is never written twice, and code that gives the
    access log a handler of its own only if it has none leaves it as it is). Python warnings and uncaught
    exceptions are logged through it too. Calling it again replaces its handler."""
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    access = logging.getLogger(ACCESS_LOGGER)
    for logger in (root, access):
        for old in [h for h in logger.handlers if isinstance(h, _Handler)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
    root.setLevel(level)
    access.setLevel(logging.INFO)
    access.propagate = False
    # no line shows where it was logged from, nor which thread or process: not worth a stack walk and three
    # lookups per line (the Logging HOWTO's "Optimization": about a tenth of the access log's cost)
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    return handler


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("service").critical("uncaught exception", exc_info=(kind, value, tb))
