"""The aiohttp application: app factory, connection pool, flat route table under /api/v1."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from service import docs, handlers
from service.appkeys import POOL, RETRIES
from service.limits import MAX_BODY_BYTES
from service.middleware import error_middleware, request_context

log = logging.getLogger(__name__)

API = "/api/v1"
POOL_TIMEOUT_SECONDS = 5.0  # waiting longer than this for a connection answers 503 SERVICE_UNAVAILABLE

ROUTES = [
    web.get(f"{API}/health", handlers.health, allow_head=False),
    web.get(f"{API}/wallets/{{user_id}}/balance", handlers.balance, allow_head=False),
    web.get(f"{API}/wallets/{{user_id}}/transactions", handlers.history, allow_head=False),
    web.post(f"{API}/wallets/topup", handlers.topup),
    web.post(f"{API}/wallets/bonus", handlers.bonus),
    web.post(f"{API}/wallets/spend", handlers.spend),
    web.get(f"{API}/transactions/{{reference_id}}", handlers.transaction, allow_head=False),
    web.get(f"{API}/openapi.json", docs.openapi, allow_head=False),
    web.get(f"{API}/docs", docs.page, allow_head=False),
    web.get(f"{API}/docs/{{name}}", docs.asset, allow_head=False),
]


def create_app(
    database_url: str,
    *,
    retries: int = 3,
    pool_min_size: int = 2,
    pool_max_size: int = 10,
    pool_timeout: float = POOL_TIMEOUT_SECONDS,
) -> web.Application:
    """The wallet API on database_url (already migrated); the pool opens and closes with the app."""

    async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            database_url,
            min_size=pool_min_size,
            max_size=pool_max_size,
            timeout=pool_timeout,
            name="wallet",
            open=False,
            kwargs={"autocommit": True, "application_name": "wallet-service"},
        )
        # do not wait for the database: the service starts, and /health says whether it is reachable
        await pool.open(wait=False)
        app[POOL] = pool
        yield
        await pool.close()
        log.info("connection pool closed")

    app = web.Application(middlewares=[request_context, error_middleware], client_max_size=MAX_BODY_BYTES)
    app[RETRIES] = retries
    app.cleanup_ctx.append(pool_ctx)
    app.add_routes(ROUTES)
    return app
