"""The aiohttp application: app factory, connection pool, flat route table under /api/v1.

Every route is named after its operationId in service/openapi.json: service/auth.py maps those names to the
scope each route needs (the docs page and its assets, not operations of the document, are named here)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from service import batch, docs, events, handlers, metrics
from service.appkeys import ACCESS_LOG, METRICS, POOL, RETRIES
from service.auth import KEY_CACHE, KeyCache, auth_middleware
from service.database import GROUP_COMMIT, session_options
from service.limits import MAX_BODY_BYTES
from service.middleware import error_middleware, request_context

log = logging.getLogger(__name__)

API = "/api/v1"
POOL_TIMEOUT_SECONDS = 5.0  # waiting longer than this for a connection answers 503 SERVICE_UNAVAILABLE

# A path parameter is any id (service/validation.py checks it): one path segment, braces included (aiohttp's
# default refuses { and }); a / in an id is sent as %2F, which the router keeps encoded while it matches.
USER_ID = "{user_id:[^/]+}"
REFERENCE_ID = "{reference_id:[^/]+}"

ROUTES = [
    web.get(f"{API}/health", handlers.health, allow_head=False, name="health"),
    web.get(f"{API}/wallets/{USER_ID}/balance", handlers.balance, allow_head=False, name="getBalance"),
    web.get(f"{API}/wallets/{USER_ID}/transactions", handlers.history, allow_head=False, name="getHistory"),
    web.post(f"{API}/wallets/topup", handlers.topup, name="topup"),
    web.post(f"{API}/wallets/bonus", handlers.bonus, name="bonus"),
    web.post(f"{API}/wallets/spend", handlers.spend, name="spend"),
    web.post(f"{API}/wallets/batch", batch.post_batch, name="postBatch"),
    web.post(f"{API}/wallets/purchase", handlers.purchase, name="purchase"),
    web.post(f"{API}/wallets/reverse", handlers.reverse, name="reverse"),
    web.post(f"{API}/wallets/hold", handlers.hold, name="hold"),
    web.get(f"{API}/holds/{REFERENCE_ID}", handlers.get_hold, allow_head=False, name="getHold"),
    web.post(f"{API}/holds/{REFERENCE_ID}/capture", handlers.capture, name="capture"),
    web.post(f"{API}/holds/{REFERENCE_ID}/void", handlers.void, name="void"),
    web.get(f"{API}/transactions/{REFERENCE_ID}", handlers.transaction, allow_head=False, name="getTransaction"),
    web.get(f"{API}/events", events.stream, allow_head=False, name="getEvents"),
    web.get(f"{API}/openapi.json", docs.openapi, allow_head=False, name="openapi"),
    web.get(f"{API}/docs", docs.page, allow_head=False, name="docs"),
    web.get(f"{API}/docs/{{name}}", docs.asset, allow_head=False, name="docsAsset"),
    web.get("/metrics", metrics.handler, allow_head=False, name="metrics"),
]


def create_app(
    database_url: str,
    *,
    retries: int = 3,
    pool_min_size: int = 2,
    pool_max_size: int = 10,
    pool_timeout: float = POOL_TIMEOUT_SECONDS,
    metrics_on: bool = True,
    access_log: bool = True,
    group_commit: bool = False,
) -> web.Application:
    """The wallet API on database_url (already migrated; in production a login holding only wallet_app); the
    pool opens and closes with the app, and so does the event hub (service/events.py). metrics_on: count
    requests, database calls and postings, and serve GET /metrics; access_log: one log line per request;
    group_commit: concurrent top-ups, bonuses and spends share calls of wallet_post_batch (service/database.py)."""

    async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            database_url,
            min_size=pool_min_size,
            max_size=pool_max_size,
            timeout=pool_timeout,
            name="wallet",
            open=False,
            # statement_timeout on every connection (service.database.session_options)
            kwargs={"autocommit": True, "application_name": "wallet-service", "options": session_options(database_url)},
        )
        # do not wait for the database: the service starts, and /health says whether it is reachable
        await pool.open(wait=False)
        app[POOL] = pool
        yield
        await pool.close()
        log.info("connection pool closed")

    # auth after the error middleware: its 401 and 403 (and a failed key lookup) get the contract's error body
    app = web.Application(
        middlewares=[request_context, error_middleware, auth_middleware], client_max_size=MAX_BODY_BYTES
    )
    app[RETRIES] = retries
    app[METRICS] = metrics_on
    app[ACCESS_LOG] = access_log
    app[GROUP_COMMIT] = group_commit
    app[KEY_CACHE] = KeyCache()
    app.cleanup_ctx.append(pool_ctx)
    app.cleanup_ctx.append(metrics.pool_gauges_ctx)  # after the pool: workers write their pool gauges
    app.cleanup_ctx.append(events.hub_ctx)  # after the pool: the hub stops before the pool closes
    app.add_routes(ROUTES)
    return app
