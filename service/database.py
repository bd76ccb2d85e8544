"""The one place that talks to the database: one statement per call, bounded retries of transient failures."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import psycopg
from aiohttp import web
from psycopg.rows import dict_row

from service.api_errors import retryable
from service.appkeys import POOL, RETRIES

log = logging.getLogger(__name__)

_BACKOFF_SECONDS = 0.02


async def fetch(
    request: web.Request, sql: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
) -> list[dict[str, Any]]:
    """Run one statement (a call of one wallet function) and return its rows as dicts.

    A lock timeout, serialization failure, deadlock or lost connection is retried up to the app's RETRIES
    extra times with a short jittered backoff; after that, or on any other error, the exception propagates
    to the error middleware. Statements run in autocommit: each wallet function is its own transaction.
    timeout: how long to wait for a pooled connection (default: the pool's).
    """
    pool = request.app[POOL]
    retries = request.app[RETRIES]
    attempt = 0
    while True:
        try:
            async with pool.connection(timeout=timeout) as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(sql, params)
                return await cur.fetchall()
        except psycopg.Error as exc:
            if attempt >= retries or not retryable(exc):
                raise
            attempt += 1
            log.info("retrying after %s (attempt %d of %d)", exc.sqlstate or type(exc).__name__, attempt, retries)
            await asyncio.sleep(_BACKOFF_SECONDS * attempt * (0.5 + random.random()))
