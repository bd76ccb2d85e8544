"""Request handlers: validate the shape, call ONE wallet function, shape its rows into the contract's JSON.

No business rules here and no error handling: database errors propagate to the error middleware.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from psycopg.types.json import Jsonb

from service import validation
from service.appkeys import ACTOR
from service.cursor import encode_cursor
from service.database import fetch

log = logging.getLogger(__name__)

SERVICE_NAME = "wallet-service"
REPLAYED_HEADER = "Idempotent-Replayed"
HEALTH_TIMEOUT_SECONDS = 2.0


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, millisecond precision (2026-02-08T09:24:50.123Z)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now() -> str:
    return iso(datetime.now(UTC)) or ""


async def health(request: web.Request) -> web.Response:
    body: dict[str, Any] = {"status": "healthy", "service": SERVICE_NAME, "timestamp": now(), "database": "ok"}
    try:
        await fetch(request, "SELECT 1", timeout=HEALTH_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure to reach the database makes the service unhealthy, not broken
        log.warning("health check failed: %s: %s", type(exc).__name__, exc)
        body.update(status="unhealthy", database="unreachable")
        return web.json_response(body, status=503)
    return web.json_response(body)


async def _posting(request: web.Request, operation: str) -> dict[str, Any]:
    """The validated arguments of a top-up, bonus or spend request (metadata ready for jsonb), and the actor:
    the name of the API key that authenticated it (service/auth.py)."""
    args = validation.posting(operation, await validation.json_object(request), request.headers)
    if args["metadata"] is not None:
        args["metadata"] = Jsonb(args["metadata"])
    args["actor"] = request[ACTOR]
    return args


def _posted(rows: list[dict[str, Any]]) -> web.Response:
    """201 with the posting, or 200 with Idempotent-Replayed when the key had already posted it."""
    (row,) = rows
    body = {
        "transaction_id": str(row["transaction_id"]),
        "user_id": row["user_id"],
        "asset_code": row["asset_code"],
        "amount": row["amount"],
        "balance": row["balance"],
        "transaction_type": row["transaction_type"],
        "timestamp": iso(row["created_at"]),
    }
    if row["replayed"]:
        return web.json_response(body, status=200, headers={REPLAYED_HEADER: "true"})
    return web.json_response(body, status=201)


async def topup(request: web.Request) -> web.Response:
    args = await _posting(request, "topup")
    rows = await fetch(
        request,
        "SELECT * FROM wallet_topup(p_user_id => %(user_id)s, p_asset_code => %(asset_code)s, "
        "p_amount => %(amount)s::bigint, p_reference_id => %(reference_id)s, "
        "p_payment_method => %(payment_method)s, p_metadata => %(metadata)s, p_actor => %(actor)s)",
        args,
        wallet=(args["user_id"], args["asset_code"]),  # a stuck wallet holds at most its own share of the pool
    )
    return _posted(rows)


async def bonus(request: web.Request) -> web.Response:
    args = await _posting(request, "bonus")
    rows = await fetch(
        request,
        "SELECT * FROM wallet_bonus(p_user_id => %(user_id)s, p_asset_code => %(asset_code)s, "
        "p_amount => %(amount)s::bigint, p_reference_id => %(reference_id)s, "
        "p_bonus_type => %(bonus_type)s, p_metadata => %(metadata)s, p_actor => %(actor)s)",
        args,
        wallet=(args["user_id"], args["asset_code"]),  # a stuck wallet holds at most its own share of the pool
    )
    return _posted(rows)


async def spend(request: web.Request) -> web.Response:
    args = await _posting(request, "spend")
    rows = await fetch(
        request,
        "SELECT * FROM wallet_spend(p_user_id => %(user_id)s, p_asset_code => %(asset_code)s, "
        "p_amount => %(amount)s::bigint, p_reference_id => %(reference_id)s, "
        "p_item_id => %(item_id)s, p_metadata => %(metadata)s, p_actor => %(actor)s)",
        args,
        wallet=(args["user_id"], args["asset_code"]),  # a stuck wallet holds at most its own share of the pool
    )
    return _posted(rows)


async def balance(request: web.Request) -> web.Response:
    args = validation.balance_query(request.match_info["user_id"], request.query)
    rows = await fetch(
        request, "SELECT * FROM wallet_balances(p_user_id => %(user_id)s, p_asset_code => %(asset_code)s)", args
    )
    return web.json_response(
        {
            "user_id": args["user_id"],
            "balances": [
                {
                    "asset_code": r["asset_code"],
                    "asset_name": r["asset_name"],
                    "balance": r["balance"],
                    "last_updated": iso(r["last_updated"]),
                }
                for r in rows
            ],
        }
    )


async def history(request: web.Request) -> web.Response:
    args = validation.history_query(request.match_info["user_id"], request.query)
    page = await fetch(
        request,
        "SELECT * FROM wallet_history(p_user_id => %(user_id)s, p_asset_code => %(asset_code)s, "
        "p_limit => %(limit)s::int, p_offset => %(offset)s::int, p_before_entry_id => %(before)s::bigint)",
        args,
    )
    # the last row says whether its wallet has older entries: then another page follows
    has_more = bool(page) and page[-1]["has_older"]
    return web.json_response(
        {
            "user_id": args["user_id"],
            "asset_code": args["asset_code"],
            "transactions": [
                {
                    "transaction_id": str(r["transaction_id"]),
                    "type": r["type"],
                    "amount": r["amount"],
                    "balance_after": r["balance_after"],
                    "reference_id": r["reference_id"],
                    "created_at": iso(r["created_at"]),
                    "description": r["description"],
                }
                for r in page
            ],
            "pagination": {
                "limit": args["limit"],
                "offset": args["offset"],
                "has_more": has_more,
                "next_cursor": encode_cursor(page[-1]["entry_id"]) if has_more else None,
            },
        }
    )


async def transaction(request: web.Request) -> web.Response:
    ref = validation.reference(request.match_info["reference_id"])
    rows = await fetch(request, "SELECT * FROM wallet_transaction(p_reference_id => %(ref)s)", {"ref": ref})
    first = rows[0]  # wallet_transaction raises WL005 rather than return no row
    return web.json_response(
        {
            "transaction_id": str(first["transaction_id"]),
            "reference_id": first["reference_id"],
            "status": first["status"],
            "type": first["type"],
            "user_id": first["user_id"],
            "asset_code": first["asset_code"],
            "amount": first["amount"],
            "created_at": iso(first["created_at"]),
            "metadata": first["metadata"],
            "actor": first["actor"],
            "ledger_entries": [
                {
                    "wallet_id": r["wallet_id"],
                    "wallet_name": r["wallet_name"],
                    "entry_type": r["entry_type"],
                    "amount": r["entry_amount"],
                }
                for r in rows
            ],
        }
    )
