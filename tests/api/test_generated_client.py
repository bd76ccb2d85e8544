"""A client generated from service/openapi.json, as a new user would generate it, performs every operation.

openapi-python-client (a test dependency) generates the client into a temporary directory during the test
run; any warning of the generator fails (it drops an operation whose schemas it cannot read, e.g. a
self-referencing one, with "Endpoint will not be generated"). The client then calls every operation of the
document against the real app: postings with the key in the body and in the Idempotency-Key header only, a
replay, a top-up whose nested metadata reads back unchanged, and the typed error answers (details included).
It authenticates as the document says (bearerAuth: the generator's AuthenticatedClient with an API key); without
a key, or with a key lacking the scope, the answers are the typed 401 and 403.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

import pytest

from service.app import API, create_app
from service.docs import OPENAPI_PATH, spec
from tests.access import create_key

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
PACKAGE = "wallet_service_generated_client"

# Plain values, nesting at every depth, null: openapi-generator 7.26 rejected plain values of the old
# document's recursive metadata schema and sent {"d": {"x": 1}} as {"d": null}.
METADATA: dict[str, Any] = {
    "d": {"x": 1},
    "order_id": "ORD-123",
    "price": 4.99,
    "gift": False,
    "coupon": None,
    "lines": [{"sku": "sword", "qty": 2, "tags": ["rare", {"tier": 3}]}, []],
    "deep": {"a": {"b": {"c": [1, [2, [3]], {}]}}},
    "text": 'ünïcødé ✓ "quoted"',
}


def operation_ids() -> dict[str, str]:
    """operationId -> the module the generator makes for it (api/<first tag>/<snake_case operationId>)."""
    out = {}
    for item in spec()["paths"].values():
        for op in item.values():
            snake = re.sub(r"(?<!^)(?=[A-Z])", "_", op["operationId"]).lower()
            out[op["operationId"]] = f"{PACKAGE}.api.{op['tags'][0]}.{snake}"
    return out


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Iterator[ModuleType]:
    root = tmp_path_factory.mktemp("generated")
    config = root / "config.yaml"
    config.write_text("post_hooks: []\n")  # the default hooks only reformat the output with ruff
    result = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(OPENAPI_PATH),
            "--meta",
            "none",
            "--output-path",
            str(root / PACKAGE),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "will not be generated" not in output, output
    assert "Warning" not in output and "Unable to" not in output, output
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def test_the_generator_generates_every_operation(generated):
    for operation_id, module in operation_ids().items():
        assert hasattr(importlib.import_module(module), "asyncio_detailed"), operation_id


async def test_the_generated_client_performs_every_operation(generated, aiohttp_server, app_url, admin_key, db_url):
    server = await aiohttp_server(create_app(app_url, pool_min_size=1, pool_max_size=4))
    models = importlib.import_module(f"{PACKAGE}.models")
    UNSET = importlib.import_module(f"{PACKAGE}.types").UNSET
    modules = operation_ids()
    performed: list[str] = []

    async def call(operation_id: str, *args: Any, **kwargs: Any) -> Any:
        """The operation through the generated client; every response carries X-Request-Id."""
        performed.append(operation_id)
        response = await importlib.import_module(modules[operation_id]).asyncio_detailed(*args, client=c, **kwargs)
        assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", response.headers["X-Request-Id"]), response.headers
        return response

    def topup(amount: int, **fields: Any) -> Any:
        return models.TopupRequest(user_id="user_alice", asset_code="GOLD_COINS", amount=amount, **fields)

    base_url = str(server.make_url(API))
    client = generated.AuthenticatedClient(base_url=base_url, token=admin_key, raise_on_unexpected_status=True)
    async with client as c:
        r = await call("health")
        assert r.status_code == 200 and r.parsed.status.value == "healthy"

        r = await call("openapi")
        assert r.status_code == 200 and r.parsed.to_dict() == spec()

        r = await call("getBalance", "user_alice", asset_code="GOLD_COINS", x_request_id="generated-client-1")
        assert r.status_code == 200 and r.headers["X-Request-Id"] == "generated-client-1"
        (gold,) = r.parsed.balances
        balance = gold.balance

        # nested metadata, the key in the body
        metadata = models.MetadataType0.from_dict(json.loads(json.dumps(METADATA)))
        first_request = topup(5000, reference_id="gen-topup-1", payment_method="stripe", metadata=metadata)
        r = await call("topup", body=first_request)
        assert r.status_code == 201, r.content
        assert "Idempotent-Replayed" not in r.headers
        first = r.parsed
        assert isinstance(first, models.Posting) and first.balance == balance + 5000
        balance = first.balance

        r = await call("getTransaction", "gen-topup-1")
        assert r.status_code == 200
        assert r.parsed.metadata.to_dict() == METADATA
        assert json.loads(r.content)["metadata"] == METADATA
        assert sorted((e.entry_type.value, e.amount) for e in r.parsed.ledger_entries) == [
            ("CREDIT", 5000),
            ("DEBIT", 5000),
        ]

        # the same request again: a replay, declared by its header
        r = await call("topup", body=first_request)
        assert r.status_code == 200 and r.headers["Idempotent-Replayed"] == "true"
        assert r.parsed.transaction_id == first.transaction_id

        # the key in the Idempotency-Key header only
        r = await call("topup", body=topup(7), idempotency_key="gen-topup-header")
        assert r.status_code == 201, r.content
        balance = r.parsed.balance
        r = await call("getTransaction", "gen-topup-header")
        assert r.status_code == 200 and r.parsed.amount == 7 and r.parsed.metadata is None

        r = await call(
            "bonus",
            body=models.BonusRequest(
                user_id="user_alice", asset_code="GOLD_COINS", amount=1000, bonus_type="DAILY_LOGIN"
            ),
            idempotency_key="gen-bonus-1",
        )
        assert r.status_code == 201 and r.parsed.balance == balance + 1000
        balance = r.parsed.balance

        r = await call(
            "spend",
            body=models.SpendRequest(
                user_id="user_alice", asset_code="GOLD_COINS", amount=300, reference_id="gen-spend-1", item_id="sword"
            ),
        )
        assert r.status_code == 201 and r.parsed.balance == balance - 300
        balance = r.parsed.balance

        # a batch: each operation's result is the status and body its single route answers
        gold = {"user_id": "user_alice", "asset_code": "GOLD_COINS"}
        r = await call(
            "postBatch",
            body=models.BatchRequest(
                operations=[
                    {"operation": "topup", **gold, "user_id": "gen-new", "amount": 11, "reference_id": "gen-batch"},
                    {"operation": "spend", **gold, "amount": 300, "item_id": "sword", "reference_id": "gen-spend-1"},
                    {"operation": "bonus", **gold, "amount": 0, "reference_id": "gen-batch-2", "bonus_type": "B"},
                ]
            ),
        )
        assert r.status_code == 200 and "Idempotent-Replayed" not in r.headers
        posted, replayed, invalid = r.parsed.results
        assert posted.status == 201 and isinstance(posted.body, models.Posting)
        assert posted.body.balance == 11  # the new player's first top-up opened the wallet
        assert replayed.status == 200 and isinstance(replayed.body, models.Posting)  # gen-spend-1 again
        assert invalid.status == 400 and isinstance(invalid.body, models.ValidationError)
        assert [e.field for e in invalid.body.error.details.errors] == ["amount"]

        # typed errors
        r = await call(
            "spend",
            body=models.SpendRequest(
                user_id="user_alice",
                asset_code="GOLD_COINS",
                amount=balance + 1,
                reference_id="gen-spend-2",
                item_id="x",
            ),
        )
        assert r.status_code == 422 and isinstance(r.parsed, models.InsufficientFundsError)
        assert (r.parsed.error.details.required, r.parsed.error.details.available) == (balance + 1, balance)

        r = await call("topup", body=topup(6000, reference_id="gen-topup-1"))
        assert r.status_code == 409 and isinstance(r.parsed, models.IdempotencyConflictError)
        assert r.parsed.error.details.transaction_id == first.transaction_id
        assert r.parsed.error.details.reference_id == "gen-topup-1"

        r = await call("topup", body=topup(0, reference_id="gen-topup-zero"))
        assert r.status_code == 400 and isinstance(r.parsed, models.ValidationError)
        assert [e.field for e in r.parsed.error.details.errors] == ["amount"]

        r = await call("topup", body=topup(1))  # no key at all
        assert r.status_code == 400 and isinstance(r.parsed, models.ValidationError)
        assert [e.field for e in r.parsed.error.details.errors] == ["reference_id"]

        r = await call("getBalance", "nobody_has_this_id")
        assert r.status_code == 404 and isinstance(r.parsed, models.WalletNotFoundError)
        assert r.parsed.error.details.user_id == "nobody_has_this_id"

        r = await call("getBalance", "user_alice")
        assert r.status_code == 200
        assert {b.asset_code: b.balance for b in r.parsed.balances}["GOLD_COINS"] == balance

        # history, newest first, by cursor
        r = await call("getHistory", "user_alice", asset_code="GOLD_COINS", limit=2)
        assert r.status_code == 200
        assert [t.reference_id for t in r.parsed.transactions] == ["gen-spend-1", "gen-bonus-1"]
        assert r.parsed.pagination.has_more and r.parsed.pagination.next_cursor
        r = await call(
            "getHistory", "user_alice", asset_code="GOLD_COINS", limit=2, cursor=r.parsed.pagination.next_cursor
        )
        assert r.status_code == 200
        assert [t.reference_id for t in r.parsed.transactions] == ["gen-topup-header", "gen-topup-1"]

        r = await call("getHistory", "user_alice", asset_code="NO_SUCH_ASSET")
        assert r.status_code == 404 and isinstance(r.parsed, models.AssetNotFoundError)
        assert r.parsed.error.details.asset_code == "NO_SUCH_ASSET"

        r = await call("getTransaction", "gen-never-posted")
        assert r.status_code == 404 and isinstance(r.parsed, models.TransactionNotFoundError)
        assert r.parsed.error.details.reference_id == "gen-never-posted"

        # economy operations: a purchase in two assets, its reversal, holds captured and voided
        diamonds = {b.asset_code: b.balance for b in (await call("getBalance", "user_alice")).parsed.balances}[
            "DIAMONDS"
        ]
        price = [
            models.PriceItem(asset_code="GOLD_COINS", amount=40),
            models.PriceItem(asset_code="DIAMONDS", amount=2),
        ]
        r = await call(
            "purchase",
            body=models.PurchaseRequest(user_id="user_alice", item_id="bundle", price=price, reference_id="gen-buy-1"),
        )
        assert r.status_code == 201 and isinstance(r.parsed, models.Purchase), r.content
        assert [(leg.asset_code, leg.amount, leg.balance) for leg in r.parsed.legs] == [
            ("DIAMONDS", 2, diamonds - 2),
            ("GOLD_COINS", 40, balance - 40),
        ]
        r = await call("getTransaction", "gen-buy-1")
        assert r.status_code == 200 and r.parsed.amount is None and len(r.parsed.legs) == 2

        r = await call(
            "reverse",
            body=models.ReverseRequest(original_reference_id="gen-buy-1", reason="refund"),
            idempotency_key="gen-rev-1",
        )
        assert r.status_code == 201 and isinstance(r.parsed, models.Reversal), r.content
        assert r.parsed.original_reference_id == "gen-buy-1"
        assert [(leg.asset_code, leg.balance) for leg in r.parsed.legs] == [
            ("DIAMONDS", diamonds),
            ("GOLD_COINS", balance),
        ]
        r = await call(
            "reverse",
            body=models.ReverseRequest(original_reference_id="gen-rev-1", reason="again"),
            idempotency_key="gen-rev-2",
        )
        assert r.status_code == 422 and isinstance(r.parsed, models.NotReversibleError)
        assert r.parsed.error.details.reason.value == "reversal"

        hold = models.HoldRequest(user_id="user_alice", asset_code="GOLD_COINS", amount=70, reference_id="gen-hold-1")
        r = await call("hold", body=hold)
        assert r.status_code == 201 and isinstance(r.parsed, models.HoldPlaced), r.content
        assert (r.parsed.status.value, r.parsed.available) == ("HELD", balance - 70)
        r = await call("hold", body=hold)
        assert r.status_code == 200 and r.headers["Idempotent-Replayed"] == "true"
        r = await call("getBalance", "user_alice", asset_code="GOLD_COINS")
        (gold,) = r.parsed.balances
        assert (gold.balance, gold.held, gold.available) == (balance, 70, balance - 70)
        r = await call("capture", "gen-hold-1", body=models.CaptureRequest(amount=100))
        assert r.status_code == 422 and isinstance(r.parsed, models.CaptureExceedsHoldError)
        assert (r.parsed.error.details.amount, r.parsed.error.details.held) == (100, 70)
        r = await call("capture", "gen-hold-1", body=models.CaptureRequest(amount=50))
        assert r.status_code == 201 and isinstance(r.parsed, models.Capture), r.content
        assert (r.parsed.amount, r.parsed.balance, r.parsed.hold_reference_id) == (50, balance - 50, "gen-hold-1")
        balance -= 50
        r = await call("capture", "gen-hold-1", body=models.CaptureRequest(amount=50))
        assert r.status_code == 200 and r.headers["Idempotent-Replayed"] == "true"
        r = await call("getHold", "gen-hold-1")
        assert r.status_code == 200 and isinstance(r.parsed, models.Hold)
        assert (r.parsed.status.value, r.parsed.captured_amount) == ("CAPTURED", 50)
        r = await call("void", "gen-hold-1")
        assert r.status_code == 409 and isinstance(r.parsed, models.HoldNotActiveError)

        r = await call(
            "hold",
            body=models.HoldRequest(user_id="user_alice", asset_code="GOLD_COINS", amount=5, expires_in=60),
            idempotency_key="gen-hold-2",
        )
        assert r.status_code == 201
        r = await call("void", "gen-hold-2")
        assert r.status_code == 200 and isinstance(r.parsed, models.Void) and r.parsed.status.value == "VOIDED"
        assert "Idempotent-Replayed" not in r.headers and r.parsed.available == balance
        r = await call("void", "gen-hold-2")
        assert r.status_code == 200 and r.headers["Idempotent-Replayed"] == "true"
        r = await call("capture", "gen-no-such-hold")
        assert r.status_code == 404 and isinstance(r.parsed, models.HoldNotFoundError)
        assert r.parsed.error.details.reference_id == "gen-no-such-hold"

        # the balance at an instant: before the purchase (the seed's balance was already there)
        r = await call("getBalance", "user_alice", asset_code="GOLD_COINS", at=datetime(2001, 2, 3, tzinfo=UTC))
        assert r.status_code == 200 and r.parsed.as_of == datetime(2001, 2, 3, tzinfo=UTC)
        (gold,) = r.parsed.balances
        assert (gold.balance, gold.last_updated, gold.held) == (0, None, UNSET)

        # the event stream never ends (a generated client reads a whole body: tests/api/test_events.py streams
        # it); its answers that do end are typed: an id past the newest event, in the header or the query
        r = await call("getEvents", user_id="user_alice", last_event_id_header="999999")
        assert r.status_code == 400 and isinstance(r.parsed, models.ValidationError)
        assert [e.field for e in r.parsed.error.details.errors] == ["last_event_id"]
        r = await call("getEvents", last_event_id_query="x")
        assert r.status_code == 400 and isinstance(r.parsed, models.ValidationError)

    # no key: the open operations answer, the others are a typed 401
    async with generated.Client(base_url=base_url, raise_on_unexpected_status=True) as c:
        r = await call("health")
        assert r.status_code == 200
        r = await call("getEvents")
        assert r.status_code == 401 and isinstance(r.parsed, models.UnauthenticatedError)
        r = await call("getBalance", "user_alice")
        assert r.status_code == 401 and isinstance(r.parsed, models.UnauthenticatedError)
        assert r.headers["WWW-Authenticate"] == "Bearer"

    # a key without the scope: a typed 403 naming the scope
    reader = create_key(db_url, ["read"], "generated-reader")
    async with generated.AuthenticatedClient(base_url=base_url, token=reader, raise_on_unexpected_status=True) as c:
        r = await call("getTransaction", "gen-topup-1")
        assert r.status_code == 200 and r.parsed.actor == "test-admin"
        r = await call(
            "spend",
            body=models.SpendRequest(
                user_id="user_alice", asset_code="GOLD_COINS", amount=1, reference_id="gen-spend-3", item_id="x"
            ),
        )
        assert r.status_code == 403 and isinstance(r.parsed, models.ForbiddenError)
        assert r.parsed.error.details.required_scope.value == "spend"

    assert set(performed) == set(modules)
    assert isinstance(first.transaction_id, UUID)
