"""Request handlers: validate the shape, call ONE wallet function, shape its rows into the contract's JSON.

No business rules here and no error handling: database errors propagate to the error middleware.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from psycopg.types.json import Jsonb

from service import metrics, validation
from service.appkeys import ACTOR
from service.cursor import encode_cursor
from service.database import fetch, post

log = logging.getLogger(__name__)

SERVICE_NAME = "wallet-service"
REPLAYED_HEADER = "Idempotent-Replayed"
HEALTH_TIMEOUT_SECONDS = 2.0


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, millisecond precision (2026-02-08T09:24:50.123Z)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_exact(value: datetime) -> str:
    """An instant a client gave, as iso() renders instants, but with its microseconds if it has any below the
    millisecond; in its own offset if UTC falls outside years 1-9999 (0001-01-01T00:00:00+05:00)."""
    spec = "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        return value.isoformat(timespec=spec)
    return value.isoformat(timespec=spec).replace("+00:00", "Z")


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


def _call_args(request: web.Request, args: dict[str, Any]) -> dict[str, Any]:
    """Validated arguments made ready for the call: metadata as jsonb, and the actor: the name of the API key
    that authenticated the request (service/auth.py)."""
    if args.get("metadata") is not None:
        args["metadata"] = Jsonb(args["metadata"])
    args["actor"] = request[ACTOR]
    return args


async def _posting(request: web.Request, operation: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The validated arguments of a top-up, bonus or spend request (metadata ready for jsonb, and the actor),
    and the same posting as an operation of wallet_post_batch (for the group commit: service/database.py)."""
    fields = validation.posting(operation, await validation.json_object(request), request.headers)
    op = {"operation": operation, **{name: value for name, value in fields.items() if value is not None}}
    return _call_args(request, fields), op


def _answer(body: dict[str, Any], replayed: bool, status: int = 201) -> web.Response:
    """`status` for a new write; 200 with Idempotent-Replayed: true when the request had been made already."""
    if replayed:
        return web.json_response(body, status=200, headers={REPLAYED_HEADER: "true"})
    return web.json_response(body, status=status)


def posting_body(row: dict[str, Any], *extra: str) -> dict[str, Any]:
    """The answer body of a posting (top-up, bonus, spend, capture) from its row, with the `extra` columns of the
    row (a capture's hold_reference_id); service/batch.py answers each posted operation with it too."""
    return {
        "transaction_id": str(row["transaction_id"]),
        "user_id": row["user_id"],
        "asset_code": row["asset_code"],
        "amount": row["amount"],
        "balance": row["balance"],
        "transaction_type": row["transaction_type"],
        **{column: row[column] for column in extra},
        "timestamp": iso(row["created_at"]),
    }


def _posted(request: web.Request, rows: list[dict[str, Any]], *extra: str) -> web.Response:
    """201 with the posting (and the `extra` columns of its row, e.g. a capture's hold_reference_id), or 200
    with Idempotent-Replayed when the key had already posted it."""
    (row,) = rows
    if not row["replayed"]:
        metrics.posted(request.app, row["transaction_type"], row["asset_code"])
    return _answer(posting_body(row, *extra), row["replayed"])


async def topup(request: web.Request) -> web.Response:
    args, op = await _posting(request, "topup")
    rows = await post(
        request,
        "SELECT * FROM wallet_topup(p_user_id => %(user_id)s, p_asset_code => %(asset_code)s, "
        "p_amount => %(amount)s::bigint, p_reference_id => %(reference_id)s, "
        "p_payment_method => %(payment_method)s, p_metadata => %(metadata)s, p_actor => %(actor)s)",
        args,
        op,
        wallet=(args["user_id"], args["asset_code"]),  # a stuck wallet holds at most its own share of the pool
    )
    return _posted(request, rows)


async def bonus(request: web.Request) -> web.Response:
    args, op = await _posting(request, "bonus")
    rows = await post(
        request,
        "SELECT * FROM wallet_bonus(p_user_id => %(user_id)s, p_asset_code => %(asset_code)s, "
        "p_amount => %(amount)s::bigint, p_reference_id => %(reference_id)s, "
        "p_bonus_type => %(bonus_type)s, p_metadata => %(metadata)s, p_actor => %(actor)s)",
        args,
        op,
        wallet=(args["user_id"], args["asset_code"]),  # a stuck wallet holds at most its own share of the pool
    )
    return _posted(request, rows)


async def spend(request: web.Request) -> web.Response:
    args, op = await _posting(request, "spend")
    rows = await post(
        request,
        "SELECT * FROM wallet_spend(p_user_id => %(user_id)s, p_asset_code => %(asset_code)s, "
        "p_amount => %(amount)s::bigint, p_reference_id => %(reference_id)s, "
        "p_item_id => %(item_id)s, p_metadata => %(metadata)s, p_actor => %(actor)s)",
        args,
        op,
        wallet=(args["user_id"], args["asset_code"]),  # a stuck wallet holds at most its own share of the pool
    )
    return _posted(request, rows)


async def balance(request: web.Request) -> web.Response:
    """Now: each asset's posted balance, what active holds reserve of it, and what is available. With
    ?at=<instant>: each balance as it stood then (posted balance only) and the instant, as_of."""
    args = validation.balance_query(request.match_info["user_id"], request.query)
    rows = await fetch(
        request,
        "SELECT * FROM wallet_balances(p_user_id => %(user_id)s, p_asset_code => %(asset_code)s, "
        "p_at => %(at)s::timestamptz)",
        args,
    )
    balances = []
    for r in rows:
        entry = {
            "asset_code": r["asset_code"],
            "asset_name": r["asset_name"],
            "balance": r["balance"],
            "last_updated": iso(r["last_updated"]),
        }
        if args["at"] is None:
            entry.update(held=r["held"], available=r["available"])
        balances.append(entry)
    body: dict[str, Any] = {"user_id": args["user_id"]}
    if args["at"] is not None:
        body["as_of"] = iso_exact(args["at"])
    body["balances"] = balances
    return web.json_response(body)


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
                    "original_reference_id": r["original_reference_id"],
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
            "asset_code": first["asset_code"],  # null for a purchase and its reversal: see legs
            "amount": first["amount"],
            "legs": [{"asset_code": leg["asset_code"], "amount": leg["amount"]} for leg in first["legs"]],
            "item_id": first["item_id"],
            "original_reference_id": first["original_reference_id"],
            "reason": first["reason"],
            "created_at": iso(first["created_at"]),
            "metadata": first["metadata"],
            "actor": first["actor"],
            "ledger_entries": [
                {
                    "wallet_id": r["wallet_id"],
                    "wallet_name": r["wallet_name"],
                    "asset_code": r["entry_asset_code"],
                    "entry_type": r["entry_type"],
                    "amount": r["entry_amount"],
                }
                for r in rows
            ],
        }
    )


# ---------------------------------------------------------------- economy operations
# A purchase names its wallets, so it goes through each one's gate (service/database.py). A reversal, a
# capture and a void do not name theirs (the database finds them from the original or the hold): they go
# through the gate of what they do name, so requests about one original or one hold (which all lock the same
# wallets) take at most their share of the pool and end at the deadline. A 3-tuple key never equals a
# (user_id, asset_code) one.


def _reversals_of(original_reference_id: str) -> tuple[None, str, str]:
    return (None, "reversals of", original_reference_id)


def _hold_gate(reference_id: str) -> tuple[None, str, str]:
    return (None, "hold", reference_id)


def _legs_posted(request: web.Request, rows: list[dict[str, Any]], field: str) -> web.Response:
    """The answer to a purchase or a reversal (one row per leg): the transaction, its own `field` (item_id or
    original_reference_id), and each asset it moved (asset order) with the player's balance in it right after."""
    first = rows[0]
    if not first["replayed"]:
        for r in rows:
            metrics.posted(request.app, first["transaction_type"], r["asset_code"])
    body = {
        "transaction_id": str(first["transaction_id"]),
        "user_id": first["user_id"],
        "transaction_type": first["transaction_type"],
        field: first[field],
        "legs": [{"asset_code": r["asset_code"], "amount": r["amount"], "balance": r["balance"]} for r in rows],
        "timestamp": iso(first["created_at"]),
    }
    return _answer(body, first["replayed"])


async def purchase(request: web.Request) -> web.Response:
    args = _call_args(request, validation.purchase(await validation.json_object(request), request.headers))
    wallets = [(args["user_id"], leg["asset_code"]) for leg in args["price"]]
    args["price"] = Jsonb(args["price"])
    rows = await fetch(
        request,
        "SELECT * FROM wallet_purchase(p_user_id => %(user_id)s, p_reference_id => %(reference_id)s, "
        "p_item_id => %(item_id)s, p_price => %(price)s, p_metadata => %(metadata)s, p_actor => %(actor)s)",
        args,
        wallets=wallets,
    )
    return _legs_posted(request, rows, "item_id")


async def reverse(request: web.Request) -> web.Response:
    args = _call_args(request, validation.reversal(await validation.json_object(request), request.headers))
    rows = await fetch(
        request,
        "SELECT * FROM wallet_reverse(p_reference_id => %(reference_id)s, "
        "p_original_reference_id => %(original_reference_id)s, p_reason => %(reason)s, "
        "p_amount => %(amount)s::bigint, p_metadata => %(metadata)s, p_actor => %(actor)s)",
        args,
        wallet=_reversals_of(args["original_reference_id"]),
    )
    return _legs_posted(request, rows, "original_reference_id")


async def hold(request: web.Request) -> web.Response:
    args = _call_args(request, validation.hold(await validation.json_object(request), request.headers))
    rows = await fetch(
        request,
        "SELECT * FROM wallet_hold(p_user_id => %(user_id)s, p_asset_code => %(asset_code)s, "
        "p_amount => %(amount)s::bigint, p_reference_id => %(reference_id)s, "
        "p_expires_in => %(expires_in)s::integer, p_item_id => %(item_id)s, p_metadata => %(metadata)s, "
        "p_actor => %(actor)s)",
        args,
        wallet=(args["user_id"], args["asset_code"]),
    )
    (row,) = rows
    body = {
        "reference_id": row["reference_id"],
        "user_id": row["user_id"],
        "asset_code": row["asset_code"],
        "amount": row["amount"],
        "status": row["status"],  # HELD; on a replay, the hold as it is now
        "expires_at": iso(row["expires_at"]),
        "available": row["available"],
    }
    return _answer(body, row["replayed"])


async def capture(request: web.Request) -> web.Response:
    args = validation.capture(request.match_info["reference_id"], await validation.optional_json_object(request))
    args["actor"] = request[ACTOR]
    rows = await fetch(
        request,
        "SELECT * FROM wallet_capture(p_reference_id => %(reference_id)s, p_amount => %(amount)s::bigint, "
        "p_actor => %(actor)s)",
        args,
        wallet=_hold_gate(args["reference_id"]),
    )
    return _posted(request, rows, "hold_reference_id")


async def void(request: web.Request) -> web.Response:
    args = validation.void(request.match_info["reference_id"], await validation.optional_json_object(request))
    args["actor"] = request[ACTOR]
    rows = await fetch(
        request,
        "SELECT * FROM wallet_void(p_reference_id => %(reference_id)s, p_actor => %(actor)s)",
        args,
        wallet=_hold_gate(args["reference_id"]),
    )
    (row,) = rows
    # VOIDED now, or EXPIRED (it had reached expires_at: nothing to release); a void repeated is a replay
    body = {"reference_id": row["reference_id"], "status": row["status"], "available": row["available"]}
    return _answer(body, row["replayed"], status=200)


async def get_hold(request: web.Request) -> web.Response:
    ref = validation.reference(request.match_info["reference_id"])
    (row,) = await fetch(request, "SELECT * FROM wallet_hold_status(p_reference_id => %(ref)s)", {"ref": ref})
    return web.json_response(
        {
            "reference_id": row["reference_id"],
            "user_id": row["user_id"],
            "asset_code": row["asset_code"],
            "amount": row["amount"],
            "status": row["status"],
            "expires_at": iso(row["expires_at"]),
            "captured_amount": row["captured_amount"],
            "item_id": row["item_id"],
            "metadata": row["metadata"],
            "created_at": iso(row["created_at"]),
            "closed_at": iso(row["closed_at"]),
            "actor": row["actor"],
        }
    )
