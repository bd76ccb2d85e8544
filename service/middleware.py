"""Request ids, the structured access log, the Server header, and THE error middleware (also the JSON answer
to the errors aiohttp's HTTP parser finds before any middleware runs: see service/listener.py)."""

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

from service.api_errors import ApiError, from_db_error
from service.appkeys import REQUEST_ID
from service.handlers import SERVICE_NAME, now
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
    """Give every request an id (the client's X-Request-Id if sane) and log one JSON line per request."""
    client_id = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = client_id if _CLIENT_REQUEST_ID.fullmatch(client_id) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    response = await handler(request)
    response.headers[REQUEST_ID_HEADER] = request_id
    response.headers["Server"] = SERVER_HEADER
    log_request(
        request_id,
        request.method,
        request.path,
        request.query_string or None,
        response.status,
        time.perf_counter() - started,
        request.remote,
        getattr(response, "error_code", None),
    )
    return response


def log_request(
    request_id: str,
    method: str | None,
    path: str | None,
    query: str | None,
    status: int,
    seconds: float,
    remote: str | None,
    error: str | None,
) -> None:
    """The access log's one JSON line for a request."""
    access_log.info(
        json.dumps(
            {
                "ts": now(),
                "event": "request",
                "request_id": request_id,
                "method": method,
                "path": path,
                "query": query,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "remote": remote,
                "error": error,
            }
        )
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
                "request %s failed: %s %s: %s",
                request[REQUEST_ID],
                error.code,
                getattr(exc, "sqlstate", None) or type(exc).__name__,
                exc,
            )
        return error_response(error)
    except Exception:
        log.exception("request %s failed", request[REQUEST_ID])
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


def protocol_error_response(status: int, exc: BaseException | None, remote: str | None) -> web.Response:
    """protocol_error as a response with a fresh request id and the Server header, logged like any request
    (one access-log line; a traceback only for a 500, which is a bug)."""
    error = protocol_error(status, exc)
    if error.status >= 500:
        log.error("request from %s failed outside the middlewares", remote, exc_info=exc)
    response = error_response(error)
    request_id = uuid.uuid4().hex
    response.headers[REQUEST_ID_HEADER] = request_id
    response.headers["Server"] = SERVER_HEADER
    log_request(request_id, None, None, None, error.status, 0.0, remote, error.code)
    return response
