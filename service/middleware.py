"""Request ids, the structured access log, and THE error middleware."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

import psycopg
from aiohttp import web
from aiohttp.typedefs import Handler
from psycopg_pool import PoolTimeout

from service.api_errors import ApiError, from_db_error
from service.appkeys import REQUEST_ID
from service.handlers import now
from service.limits import MAX_ID_LENGTH

access_log = logging.getLogger("service.access")
log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
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
    access_log.info(
        json.dumps(
            {
                "ts": now(),
                "event": "request",
                "request_id": request_id,
                "method": request.method,
                "path": request.path,
                "query": request.query_string or None,
                "status": response.status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "remote": request.remote,
                "error": getattr(response, "error_code", None),
            }
        )
    )
    return response


class ErrorResponse(web.Response):
    """A JSON error answer that remembers its code (for the access log)."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(
            text=json.dumps(error.body()), status=error.status, headers=error.headers, content_type="application/json"
        )
        self.error_code = error.code


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
