"""Request ids, the request metrics, the structured access log, the Server header, and THE error middleware
(also the JSON answer to the errors aiohttp's HTTP parser finds before any middleware runs: see
service/listener.py)."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

import psycopg
from aiohttp import http_exceptions, web
from aiohttp.typedefs import Handler
from psycopg_pool import PoolTimeout

from service import logs, metrics
from service.api_errors import ApiError, from_db_error
from service.appkeys import ACCESS_LOG, METRICS, REQUEST_ID
from service.handlers import SERVICE_NAME
from service.limits import MAX_ID_LENGTH

access_log = logging.getLogger("service.access")
log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
# every response names the service, not its software and versions (aiohttp would send Python/3.x aiohttp/3.x)
SERVER_HEADER = SERVICE_NAME
_CLIENT_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:\-]{{1,{MAX_ID_LENGTH}}}")

# aiohttp's own HTTP errors, in the contract's words
_HTTP_ERRORS = {
    404: ("NOT_FOUND", "no such route"),
    405: ("METHOD_NOT_ALLOWED", "this method is not allowed on this route"),
    413: ("PAYLOAD_TOO_LARGE", "the request body is larger than 64 KiB"),
}


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id (the client's X-Request-Id if sane), seen by every line logged while it is
    handled (service.logs.REQUEST_ID: aiohttp runs each request in a task of its own); count it (route,
    status, duration, error code) and log its access line, each if the app's switch is on."""
    client_id = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = client_id if _CLIENT_REQUEST_ID.fullmatch(client_id) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    logs.REQUEST_ID.set(request_id)  # this request's task only: no reset needed, aiohttp's lines after us see it
    started = time.perf_counter()
    response = await handler(request)
    seconds = time.perf_counter() - started
    headers = response.headers
    headers[REQUEST_ID_HEADER] = request_id
    headers["Server"] = SERVER_HEADER
    app = request.app
    error = getattr(response, "error_code", None)
    route = request.match_info.route.name or metrics.UNMATCHED  # never the path: a bounded label
    if app[METRICS]:
        metrics.request_done(route, response.status, seconds, error)
    if app[ACCESS_LOG]:
        log_request(
            request_id,
            request.method,
            request.path,
            route,
            request.query_string or None,
            response.status,
            seconds,
            request.remote,
            error,
        )
    return response


def log_request(
    request_id: str,
    method: str | None,
    path: str | None,
    route: str | None,
    query: str | None,
    status: int,
    seconds: float,
    remote: str | None,
    error: str | None,
) -> None:
    """The access log's line for a request: its fields are fields of the log line's JSON object."""
    access_log.info(
        "%s %s %d",
        method or "-",  # none: a request aiohttp's parser refused
        path or "-",
        status,
        extra={
            "event": "request",
            "request_id": request_id,
            "method": method,
            "path": path,
            "route": route,
            "query": query,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "remote": remote,
            "error": error,
        },
    )


class ErrorResponse(web.Response):
    """A JSON error answer that remembers its code (for the access log)."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(
            text=json.dumps(error.body()), status=error.status, headers=error.headers, content_type="application/json"
        )
        self.error_code = error.code
        if error.headers.get("Connection", "").lower() == "close":
            self.force_close()  # the header alone would not stop aiohttp from keeping the connection


def error_response(error: ApiError) -> web.Response:
    return ErrorResponse(error)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into the contract's error body; never a stack trace or SQL in a response."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        if exc.status in _HTTP_ERRORS:
            code, message = _HTTP_ERRORS[exc.status]
            return error_response(ApiError(exc.status, code, message, headers=headers))
        if exc.status < 500:  # any other client error aiohttp raises (rare): a bad request
            return error_response(ApiError(400, "VALIDATION_ERROR", exc.reason, {"errors": []}))
        return error_response(ApiError(500, "INTERNAL_ERROR", "internal error"))
    except (psycopg.Error, PoolTimeout) as exc:
        error = from_db_error(exc)
        if error.status >= 500:
            log.warning(
                "request failed: %s %s: %s",
                error.code,
                getattr(exc, "sqlstate", None) or type(exc).__name__,
                exc,
            )
        return error_response(error)
    except Exception:
        log.exception("request failed")
        return error_response(ApiError(500, "INTERNAL_ERROR", "internal error"))


# What aiohttp's HTTP parser found wrong, in the contract's words (the parser's own message quotes the
# client's bytes; none of them is echoed back)
_PROTOCOL_ERRORS: list[tuple[type[Exception], str]] = [
    (http_exceptions.LineTooLong, "the request line or a header is too long"),
    (http_exceptions.BadHttpMethod, "the request method is not valid"),
    (http_exceptions.BadStatusLine, "the request line is not valid HTTP/1.x"),
    (http_exceptions.InvalidURLError, "the request target is not a valid URL"),
    (http_exceptions.InvalidHeader, "a header is not valid"),
    (http_exceptions.TransferEncodingError, "the chunked transfer encoding is malformed"),
    (http_exceptions.ContentLengthError, "the body does not match its Content-Length"),
    (http_exceptions.ContentEncodingError, "the Content-Encoding is not supported or the body does not decode"),
]


def protocol_error(status: int, exc: BaseException | None) -> ApiError:
    """The answer to a request aiohttp could not parse (status 400) or failed on outside every middleware
    (500): the contract's error body, never aiohttp's text/plain (or, in debug mode, its traceback)."""
    if status == 400:
        reason = next(
            (text for kind, text in _PROTOCOL_ERRORS if isinstance(exc, kind)),
            "the request line, headers or body framing are not valid HTTP/1.x",
        )
        return ApiError(
            400,
            "VALIDATION_ERROR",
            "the request is not valid HTTP",
            {"errors": [{"field": "request", "message": reason}]},
            headers={"Connection": "close"},
        )
    return ApiError(500, "INTERNAL_ERROR", "internal error", headers={"Connection": "close"})


def protocol_error_response(
    status: int, exc: BaseException | None, remote: str | None, app: web.Application | None = None
) -> web.Response:
    """protocol_error as a response with a fresh request id and the Server header, logged like any request
    (one access-log line; a traceback only for a 500, which is a bug), every line of it with that request id
    (aiohttp calls this in the request's own task). `app`, when given, decides as for any request whether it
    is counted (route `unmatched`) and logged; without it, it is logged and not counted."""
    request_id = uuid.uuid4().hex
    logs.REQUEST_ID.set(request_id)
    error = protocol_error(status, exc)
    if error.status >= 500:
        log.error("request from %s failed outside the middlewares", remote, exc_info=exc)
    response = error_response(error)
    response.headers[REQUEST_ID_HEADER] = request_id
    response.headers["Server"] = SERVER_HEADER
    if app is not None and app.get(METRICS, False):
        metrics.request_done(metrics.UNMATCHED, error.status, 0.0, error.code)
    if app is None or app.get(ACCESS_LOG, True):
        log_request(request_id, None, None, metrics.UNMATCHED, None, error.status, 0.0, remote, error.code)
    return response
