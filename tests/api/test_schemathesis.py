"""Schemathesis against the service's own OpenAPI document, on a real `wallet-service serve` subprocess.

Every operation of the document, with generated (positive: fits the document) and mutated (negative:
violates it) inputs over every documented parameter and body field. Every response must conform to the
document (status code, content type, headers, body schema; schemathesis's default checks), no response may
be a 5xx, negative inputs must be rejected and positive ones accepted, and afterwards the ledger must still
pass wallet_verify().

The operations are read from service/openapi.json for test collection; the test checks that the service
serves exactly that document at /api/v1/openapi.json. `WALLET_SCHEMATHESIS_EXAMPLES` sets the number of
examples per operation and mode (default 40); the coverage phase's deterministic cases run in full.

The service connects as a login holding only wallet_app, as in production; every request carries an admin API
key (so the ledger's answers are what is tested; tests/api/test_auth.py tests the keys and scopes), and
schemathesis's own auth check sends the secured operations again without it, expecting 401.

(schemathesis's own pytest integration, `schemathesis.pytest.from_fixture`, does not work with pytest 9: it
sets `request.node._nodeid`. Hypothesis's @given over `APIOperation.as_strategy()` does the same work.)
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
import uuid

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from service import schema
from service.docs import OPENAPI_PATH
from tests.access import APP_LOGIN, app_login_url, bearer, create_key
from tests.sharding import copy_set, drop_set, server_url
from tools.launcher import CONSOLE_SCRIPT, Serve

EXAMPLES = int(os.environ.get("WALLET_SCHEMATHESIS_EXAMPLES", "40"))

# Schema-valid requests may still be refused for the ledger's state: 404 (no such wallet, asset or
# transaction), 409 (the key belongs to another request), 422 (insufficient funds, balance limit). A 400 is
# never acceptable for them: that would be a rule the document does not state.
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "404", "409", "422"]}}}
)
DOCUMENT = schemathesis.openapi.from_path(OPENAPI_PATH, config=CONFIG)
# GET /events is an endless Server-Sent Events stream: schemathesis would wait for its end forever (its
# validation, scopes and every answer are tested in tests/api/test_events.py)
STREAMS = {"getEvents"}
OPERATIONS = [
    op
    for op in (result.ok() for result in DOCUMENT.get_all_operations())
    if op.definition.raw["operationId"] not in STREAMS
]
# (operation, mode): negative inputs only exist for operations that take some input
CASES = [
    (op, mode)
    for op in OPERATIONS
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE or list(op.iter_parameters()) or len(op.body)
]


@pytest.fixture(scope="module", params=["single", "sharded"])
def module_db_url(request, postgresql_proc):
    """A migrated and seeded database shared by this module's tests (one service for all operations): one
    server's, or the proxy database of a sharded set (tests/sharding.py): the module runs once per backend."""
    server = server_url(postgresql_proc)
    if request.param == "sharded":
        databases = copy_set(server, request.getfixturevalue("sharded_template"), prefix="schemathesis")
        yield databases.proxy
        drop_set(server, databases)
        return
    name = "schemathesis_" + uuid.uuid4().hex[:12]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{server}/{name}"
    schema.migrate(url)
    schema.seed(url)
    schema.ensure_app_login(url, APP_LOGIN)
    yield url
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def service(module_db_url, tmp_path_factory):
    """(API base URL, access log path) of a `wallet-service serve` on the module's database, connecting as
    the login holding only wallet_app."""
    log = tmp_path_factory.mktemp("schemathesis") / "serve.log"
    env = dict(os.environ, DATABASE_URL=app_login_url(module_db_url))
    with Serve(log, env=env, command=[str(CONSOLE_SCRIPT)]) as server:  # SIGTERM at the end
        yield server.base, log


@pytest.fixture(scope="module")
def auth(module_db_url) -> dict[str, str]:
    """The Authorization header of an admin key of the module's database."""
    return bearer(create_key(module_db_url, ["admin"], "schemathesis"))


def test_the_service_serves_the_document_under_test(service):
    base, _ = service
    with urllib.request.urlopen(f"{base}/openapi.json", timeout=10) as r:
        assert json.loads(r.read()) == json.loads(OPENAPI_PATH.read_text())
    paths = {(op.method.upper(), op.path) for op in OPERATIONS}
    assert paths >= {
        ("GET", "/health"),
        ("GET", "/wallets/{user_id}/balance"),
        ("GET", "/wallets/{user_id}/transactions"),
        ("POST", "/wallets/topup"),
        ("POST", "/wallets/bonus"),
        ("POST", "/wallets/spend"),
        ("GET", "/transactions/{reference_id}"),
        ("GET", "/openapi.json"),
        ("POST", "/wallets/purchase"),
        ("POST", "/wallets/reverse"),
        ("POST", "/wallets/hold"),
        ("GET", "/holds/{reference_id}"),
        ("POST", "/holds/{reference_id}/capture"),
        ("POST", "/holds/{reference_id}/void"),
    }


VISIBLE_ASCII = re.compile(r"[!-~]+")


def follow_cross_field_rules(case, mode: GenerationMode) -> None:
    """Rules the document states in words because OpenAPI cannot express them: a posting's idempotency key
    is the body's reference_id or the Idempotency-Key header, one of the two is required, and when both
    are sent they are equal (else 400); a cursor is one the service issued (an arbitrary string is a 400);
    a purchase's price lists each asset once. Generated cases keep to them; every other input stays as
    generated."""
    headers = case.headers or {}
    body = case.body if isinstance(case.body, dict) else None
    if "Idempotency-Key" in headers:
        reference = body.get("reference_id") if body is not None else None
        key = headers["Idempotency-Key"] if reference is None else reference
        if isinstance(key, str) and VISIBLE_ASCII.fullmatch(key):
            headers["Idempotency-Key"] = key  # a header carries visible ASCII faithfully, nothing else
        else:
            del headers["Idempotency-Key"]
    keyless = body is not None and "reference_id" not in body and "Idempotency-Key" not in headers
    takes_key = any(p.name == "Idempotency-Key" for p in case.operation.iter_parameters())  # not capture, void
    if mode is GenerationMode.POSITIVE and takes_key and keyless:
        case.body["reference_id"] = f"schemathesis-{uuid.uuid4().hex}"  # neither key given: one is required
    if mode is GenerationMode.POSITIVE and case.query:
        case.query.pop("cursor", None)
    if mode is GenerationMode.POSITIVE and body is not None and isinstance(body.get("metadata"), dict):
        body["metadata"] = _keys_without_nul(body["metadata"])
    if mode is GenerationMode.POSITIVE and body is not None and isinstance(body.get("price"), list):
        legs, seen = [], set()
        for leg in body["price"]:
            code = leg.get("asset_code") if isinstance(leg, dict) else None
            if isinstance(code, str) and code in seen:
                continue  # the same asset twice: a 400 the document states in words only
            seen.add(code)
            legs.append(leg)
        body["price"] = legs


def _keys_without_nul(value):
    """The document forbids NUL in metadata's strings (in its description: metadata is a free-form object,
    so no schema can say it of nested keys and values): generated keys and values drop their NULs."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {k.replace("\x00", ""): _keys_without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_keys_without_nul(v) for v in value]
    return value


@pytest.mark.parametrize(
    ("operation", "mode"), CASES, ids=[f"{op.method.upper()} {op.path} {mode}" for op, mode in CASES]
)
def test_operation_conforms_to_the_document(operation, mode, service, auth):
    base, _log = service
    seen: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )
    def run(case):
        follow_cross_field_rules(case, mode)
        response = case.call_and_validate(base_url=base, headers=auth)
        seen.append(response.status_code)
        assert response.status_code < 500, response.text

    run()
    assert seen, "schemathesis sent no request"


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: f"{op.method.upper()} {op.path}")
def test_operation_coverage_cases(operation, service, auth):
    """schemathesis's coverage phase: boundary values of every documented parameter and field, each
    required one missing, wrong types, and methods the path does not have."""
    base, _ = service
    cases = list(
        DOCUMENT.iter_coverage_cases(
            operation,
            generation_modes=list(GenerationMode),
            generation_config=DOCUMENT.config.generation_for(operation=operation),
        )
    )
    assert cases
    for case in cases:
        follow_cross_field_rules(case, case.meta.generation.mode if case.meta else GenerationMode.POSITIVE)
        response = case.call_and_validate(base_url=base, headers=auth)
        assert response.status_code < 500, response.text


def test_nul_or_lone_surrogate_in_a_string_is_a_validation_error(service, auth):
    """PostgreSQL text and jsonb cannot hold NUL or unpaired surrogates: a 400, not a 500."""
    base, _ = service
    answers = []
    for path, body in [
        (
            "/wallets/topup",
            {"user_id": "nul\x00player", "asset_code": "GOLD_COINS", "amount": 1, "reference_id": "nul-1"},
        ),
        (
            "/wallets/topup",
            {
                "user_id": "user_alice",
                "asset_code": "GOLD_COINS",
                "amount": 1,
                "reference_id": "nul-2",
                "metadata": {"note": "a\x00b"},
            },
        ),
    ]:
        req = urllib.request.Request(
            base + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "X-Request-Id": "unstorable-text", **auth},
        )
        answers.append(_status(req))
    surrogate = b'{"user_id": "user_alice", "asset_code": "GOLD_COINS", "amount": 1, "reference_id": "sur-\\ud800"}'
    answers.append(
        _status(
            urllib.request.Request(
                base + "/wallets/topup",
                data=surrogate,
                method="POST",
                headers={"Content-Type": "application/json", **auth},
            )
        )
    )
    answers.append(
        _status(
            urllib.request.Request(
                base + "/wallets/user_alice/balance?asset_code=GOLD%00",
                headers={"X-Request-Id": "unstorable-text", **auth},
            )
        )
    )
    assert answers == [400, 400, 400, 400]


def _status(req) -> int:
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_no_5xx_was_logged_and_the_ledger_is_healthy(service, module_db_url):
    """Runs after the operations (same module): the access log of the whole session holds no 5xx."""
    _, log = service
    entries = [json.loads(line) for line in log.read_text().splitlines()]  # every line is one JSON object
    statuses = [e["status"] for e in entries if e.get("event") == "request"]
    assert len(statuses) > len(OPERATIONS) * 2, "the operations' tests ran before this one"
    assert [s for s in statuses if s >= 500] == []
    with psycopg.connect(module_db_url) as conn:
        assert conn.execute("SELECT * FROM wallet_verify()").fetchall() == []
