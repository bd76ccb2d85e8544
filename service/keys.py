"""Typed keys of the values the app and each request carry."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool
from aiohttp import web

POOL = web.AppKey("pool", AsyncConnectionPool)
RETRIES = web.AppKey("retries", int)  # extra attempts after a lock timeout, deadlock or serialization failure

REQUEST_ID = "request_id"  # request[REQUEST_ID]: the X-Request-Id of this request
