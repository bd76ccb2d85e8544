"""Typed keys of the values the app and each request carry."""

from __future__ import annotations

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

POOL = web.AppKey("pool", AsyncConnectionPool)
RETRIES = web.AppKey("retries", int)  # extra attempts after a lock timeout, deadlock or serialization failure
METRICS = web.AppKey("metrics", bool)  # count requests, database calls and postings; serve GET /metrics
ACCESS_LOG = web.AppKey("access_log", bool)  # one log line per request

# request[REQUEST_ID]: the X-Request-Id of this request (a plain string key on aiohttp without RequestKey)
REQUEST_ID = web.RequestKey("request_id", str) if hasattr(web, "RequestKey") else "request_id"

# request[ACTOR]: the name of the API key that authenticated this request (service/auth.py); the postings
# record it as their actor
ACTOR = web.RequestKey("actor", str) if hasattr(web, "RequestKey") else "actor"
