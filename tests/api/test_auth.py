"""Callers and rights over HTTP: every route but the open ones needs `Authorization: Bearer <api key>` (401
UNAUTHENTICATED otherwise), a key needs the route's scope (403 FORBIDDEN, details.required_scope) unless it is
admin, a revoked key is refused within 5 s, a posting records the key's name as its actor, and the key cache
keeps the lookup off the hot path (counted in the database itself) with bounded memory.

The app connects as a login holding only wallet_app (fixture app_url); keys are created as the superuser."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from typing import Any

import psycopg
import pytest
from aiohttp import web

from service import auth, schema
from service.app import API, create_app
from service.auth import ApiKey, KeyCache
from service.docs import ASSETS
from tests.access import APP_LOGIN, bearer, create_key
from tests.api.helpers import error_of, snapshot, topup_body

SCOPES = ("read", "topup", "bonus", "spend", "reverse", "admin")
REVOCATION_SECONDS = 5.0  # the contract: a revoked key is refused within 5 s, everywhere


def _ref() -> str:
    return f"auth_{uuid.uuid4().hex[:16]}"


def _purchase() -> dict[str, Any]:
    return {
        "user_id": "user_alice",
        "reference_id": _ref(),
        "item_id": "i",
        "price": [{"asset_code": "GOLD_COINS", "amount": 1}],
    }


def _batch() -> dict[str, Any]:
    return {"operations": [{"operation": "topup", **topup_body(reference_id=_ref())}]}


def _reversal() -> dict[str, Any]:
    return {"reference_id": _ref(), "original_reference_id": "init_alice_gold_001", "reason": "r", "amount": 1}


# (route name in service/app.py, method, path, body factory, the scope it needs, status when allowed)
ROUTES: list[tuple[str, str, str, Any, str, int]] = [
    ("getBalance", "GET", f"{API}/wallets/user_alice/balance", None, "read", 200),
    ("getHistory", "GET", f"{API}/wallets/user_alice/transactions?asset_code=GOLD_COINS", None, "read", 200),
    ("getTransaction", "GET", f"{API}/transactions/init_alice_gold_001", None, "read", 200),
    ("topup", "POST", f"{API}/wallets/topup", lambda: topup_body(reference_id=_ref()), "topup", 201),
    ("bonus", "POST", f"{API}/wallets/bonus", lambda: topup_body(reference_id=_ref(), bonus_type="T"), "bonus", 201),
    ("spend", "POST", f"{API}/wallets/spend", lambda: topup_body(reference_id=_ref(), item_id="i"), "spend", 201),
    ("purchase", "POST", f"{API}/wallets/purchase", lambda: _purchase(), "spend", 201),
    ("hold", "POST", f"{API}/wallets/hold", lambda: topup_body(reference_id=_ref(), amount=1), "spend", 201),
    ("reverse", "POST", f"{API}/wallets/reverse", lambda: _reversal(), "reverse", 201),
    # topup, bonus or spend opens it (auth.ANY_SCOPE; each operation needs its own: tests/api/test_batch.py)
    ("postBatch", "POST", f"{API}/wallets/batch", lambda: _batch(), "topup", 200),
    # past the key check, a hold that does not exist is 404 HOLD_NOT_FOUND (tests/api/test_economy.py checks
    # these scopes on real holds)
    ("getHold", "GET", f"{API}/holds/no_such_hold", None, "read", 404),
    ("capture", "POST", f"{API}/holds/no_such_hold/capture", None, "spend", 404),
    ("void", "POST", f"{API}/holds/no_such_hold/void", None, "spend", 404),
    # an id past the newest event: answered (400) without opening a stream (tests/api/test_events.py streams)
    ("getEvents", "GET", f"{API}/events?last_event_id=999999", None, "read", 400),
]
ROUTE_IDS = [r[0] for r in ROUTES]


async def send(client, route: tuple, headers: dict[str, str] | None = None):
    _name, method, path, body, _scope, _ok = route
    return await client.request(method, path, json=body() if body else None, headers=headers or {})


@pytest.fixture
async def anon(aiohttp_client, app_url):
    """A client that sends no key unless a request says so."""
    return await aiohttp_client(create_app(app_url, pool_min_size=1, pool_max_size=4))


@pytest.fixture
def scoped_keys(db_url) -> dict[str, str]:
    """One key per scope (named key-<scope>): scope -> secret."""
    return {scope: create_key(db_url, [scope], f"key-{scope}") for scope in SCOPES}


@pytest.fixture
def auth_calls(conn):
    """How often wallet_authenticate ran in the database: the real function is wrapped by one that counts
    its calls in a sequence (not rolled back, seen by every session) and records the argument it got."""
    conn.execute("ALTER FUNCTION wallet_authenticate(bytea) RENAME TO test_real_authenticate")
    conn.execute("CREATE SEQUENCE test_auth_calls")
    conn.execute("CREATE TABLE test_auth_args (arg bytea)")
    conn.execute("""
        CREATE FUNCTION wallet_authenticate(p_key_hash bytea) RETURNS TABLE (name text, scopes text[])
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
        BEGIN
            PERFORM nextval('test_auth_calls');
            INSERT INTO test_auth_args VALUES (p_key_hash);
            RETURN QUERY SELECT * FROM test_real_authenticate(p_key_hash);
        END $$""")
    conn.execute("GRANT EXECUTE ON FUNCTION wallet_authenticate(bytea) TO wallet_app")

    def calls() -> int:
        return conn.execute("SELECT coalesce(pg_sequence_last_value('test_auth_calls'), 0)").fetchone()[0]

    return calls


# ---------------------------------------------------------------- the route table


def test_every_route_is_open_or_has_its_scope():
    """No route of the app falls back to the admin default by accident: each is open or named in SCOPES, and
    this file tests every scoped one."""
    names = {route.name for route in create_app("postgresql://unused").router.routes()}
    assert None not in names
    assert names == set(auth.SCOPES) | set(auth.ANY_SCOPE) | auth.OPEN
    assert set(ROUTE_IDS) == set(auth.SCOPES) | set(auth.ANY_SCOPE)
    assert {scope for *_, scope, _ok in ROUTES} <= set(SCOPES)


async def test_a_route_no_table_names_needs_admin(aiohttp_client, app_url, db_url):
    app = create_app(app_url, pool_min_size=1, pool_max_size=2)

    async def extra(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get(f"{API}/extra", extra)
    client = await aiohttp_client(app)
    reader = create_key(db_url, ["read", "topup", "bonus", "spend", "reverse"], "everything-but-admin")
    r = await client.get(f"{API}/extra", headers=bearer(reader))
    assert r.status == 403 and (await error_of(r))["details"] == {"required_scope": "admin"}
    r = await client.get(f"{API}/extra", headers=bearer(create_key(db_url, ["admin"], "an-admin")))
    assert r.status == 200


# ---------------------------------------------------------------- open routes, 404, 405


@pytest.mark.parametrize("path", ["/health", "/openapi.json", "/docs", *(f"/docs/{a}" for a in ASSETS)])
async def test_open_routes_need_no_key(anon, path):
    for headers in ({}, {"Authorization": "Bearer not-a-key"}):
        r = await anon.get(API + path, headers=headers)
        assert r.status == 200, (path, headers)


async def test_unknown_routes_and_methods_are_answered_without_a_key(anon, auth_calls):
    r = await anon.get(f"{API}/no/such/route")
    assert r.status == 404 and (await error_of(r))["code"] == "NOT_FOUND"
    r = await anon.delete(f"{API}/wallets/topup")
    assert r.status == 405 and (await error_of(r))["code"] == "METHOD_NOT_ALLOWED"
    r = await anon.get(f"{API}/wallets/topup", headers=bearer("wsk_" + "0" * 64))
    assert r.status == 405
    assert auth_calls() == 0  # not even an unknown key was looked up


# ---------------------------------------------------------------- 401


def _unauthenticated_headers(revoked: str) -> list[tuple[str, dict[str, str]]]:
    return [
        ("no header", {}),
        ("another scheme", {"Authorization": "Basic dXNlcjpwYXNz"}),
        ("no key after the scheme", {"Authorization": "Bearer"}),
        ("two words", {"Authorization": f"Bearer {revoked} extra"}),
        ("not a key", {"Authorization": "Bearer hunter2"}),
        ("unknown key", bearer("wsk_" + uuid.uuid4().hex + uuid.uuid4().hex)),
        ("revoked key", bearer(revoked)),
    ]


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_no_valid_key_is_401_with_www_authenticate(anon, db_url, conn, route):
    revoked = create_key(db_url, ["admin"], "revoked-admin")
    schema.revoke_key(db_url, "revoked-admin")
    before = snapshot(conn)
    for why, headers in _unauthenticated_headers(revoked):
        r = await send(anon, route, headers)
        assert r.status == 401, why
        assert r.headers["WWW-Authenticate"] == "Bearer", why
        error = await error_of(r)
        assert error["code"] == "UNAUTHENTICATED" and error["details"] == {}, why
        assert revoked not in await r.text()
    assert snapshot(conn) == before  # nothing was written


async def test_two_authorization_headers_are_refused(anon, admin_key):
    """A proxy that reads the first header and this service the second must never disagree on the caller."""
    from multidict import CIMultiDict

    headers = CIMultiDict([("Authorization", f"Bearer {admin_key}"), ("Authorization", "Bearer wsk_" + "0" * 64)])
    r = await anon.get(f"{API}/wallets/user_alice/balance", headers=headers)
    assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert (await error_of(r))["code"] == "UNAUTHENTICATED"


async def test_the_scheme_is_case_insensitive(anon, admin_key):
    r = await anon.get(f"{API}/wallets/user_alice/balance", headers={"Authorization": f"bearer  {admin_key}"})
    assert r.status == 200


# ---------------------------------------------------------------- 403 and scopes


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_each_scope_reaches_exactly_its_routes(anon, scoped_keys, conn, route):
    needed, ok = route[4], route[5]
    opening = auth.ANY_SCOPE.get(route[0], (needed,))  # the scopes any one of which opens the route
    for scope, secret in scoped_keys.items():
        before = snapshot(conn)
        r = await send(anon, route, bearer(secret))
        if scope in (*opening, "admin"):
            assert r.status == ok, (scope, await r.text())
        else:
            assert r.status == 403, scope
            error = await error_of(r)
            assert error["code"] == "FORBIDDEN" and error["details"] == {"required_scope": needed}, scope
            assert needed in error["message"]
            assert snapshot(conn) == before, scope  # a refused posting writes nothing


async def test_a_key_with_several_scopes_has_each_of_them(anon, db_url):
    secret = create_key(db_url, ["read", "spend"], "reader-spender")
    by_name = {route[0]: route for route in ROUTES}
    for name, status in [("getBalance", 200), ("spend", 201), ("topup", 403), ("bonus", 403)]:
        r = await send(anon, by_name[name], bearer(secret))
        assert r.status == status, name


# ---------------------------------------------------------------- revocation


async def test_a_revoked_key_is_refused_within_five_seconds(anon, db_url):
    secret = create_key(db_url, ["read"], "soon-revoked")
    path = f"{API}/wallets/user_alice/balance"
    assert (await anon.get(path, headers=bearer(secret))).status == 200  # now in the key cache
    schema.revoke_key(db_url, "soon-revoked")
    revoked_at = time.monotonic()
    while True:
        r = await anon.get(path, headers=bearer(secret))
        if r.status == 401:
            break
        assert r.status == 200
        assert time.monotonic() - revoked_at < REVOCATION_SECONDS, "the revoked key is still accepted"
        await asyncio.sleep(0.1)
    assert (await error_of(r))["code"] == "UNAUTHENTICATED"


# ---------------------------------------------------------------- the actor


async def test_a_posting_records_the_key_name_as_its_actor(anon, db_url, conn):
    secret = create_key(db_url, ["topup", "bonus", "spend", "read"], "game-backend")
    for operation, extra in [("topup", {}), ("bonus", {"bonus_type": "T"}), ("spend", {"item_id": "i"})]:
        ref = f"actor_{operation}"
        r = await anon.post(
            f"{API}/wallets/{operation}", json=topup_body(reference_id=ref, **extra), headers=bearer(secret)
        )
        assert r.status == 201
        r = await anon.get(f"{API}/transactions/{ref}", headers=bearer(secret))
        assert r.status == 200 and (await r.json())["actor"] == "game-backend"
        # the database also knows which role called, whatever the actor says
        row = conn.execute("SELECT actor, db_role FROM transactions WHERE reference_id = %s", (ref,)).fetchone()
        assert row == ("game-backend", APP_LOGIN)


async def test_a_psql_callers_transaction_shows_its_role(anon, admin_key, conn):
    conn.execute("SELECT * FROM wallet_topup('user_bob', 'GOLD_COINS', 5, 'by_psql', 'manual')")
    r = await anon.get(f"{API}/transactions/by_psql", headers=bearer(admin_key))
    assert r.status == 200
    assert (await r.json())["actor"] == conn.execute("SELECT session_user").fetchone()[0] == "postgres"


# ---------------------------------------------------------------- the cache: no lookup per request


async def test_a_key_is_looked_up_once_per_ttl_not_per_request(anon, admin_key, auth_calls):
    path = f"{API}/wallets/user_alice/balance"
    started = time.monotonic()
    answers = [await anon.get(path, headers=bearer(admin_key)) for _ in range(10)]
    answers += await asyncio.gather(*(anon.get(path, headers=bearer(admin_key)) for _ in range(20)))
    assert [r.status for r in answers] == [200] * 30
    assert time.monotonic() - started < auth.TTL_SECONDS, "too slow to tell: all within one TTL"
    assert auth_calls() == 1
    await asyncio.sleep(auth.TTL_SECONDS + 0.1)  # the answer expires: the next request looks the key up again
    assert (await anon.get(path, headers=bearer(admin_key))).status == 200
    assert auth_calls() == 2


async def test_concurrent_first_requests_share_one_lookup(anon, admin_key, auth_calls):
    answers = await asyncio.gather(
        *(anon.get(f"{API}/wallets/user_alice/balance", headers=bearer(admin_key)) for _ in range(20))
    )
    assert [r.status for r in answers] == [200] * 20
    assert auth_calls() == 1


async def test_bad_keys_cost_at_most_one_lookup_per_ttl(anon, auth_calls):
    path = f"{API}/wallets/user_alice/balance"
    unknown = bearer("wsk_" + "ab" * 32)
    assert {(await anon.get(path, headers=unknown)).status for _ in range(20)} == {401}
    assert auth_calls() == 1  # refused from the cache after the first lookup
    malformed = [bearer("wsk_" + "g" * 64), bearer("x" * 68), bearer("wsk_" + "AB" * 32), bearer("é" * 10)]
    assert {(await anon.get(path, headers=h)).status for h in malformed} == {401}
    assert auth_calls() == 1  # not the format of a key: never looked up


async def test_only_the_hash_of_the_secret_reaches_the_database_or_the_log(anon, admin_key, auth_calls, conn, caplog):
    caplog.set_level(logging.DEBUG)
    path = f"{API}/wallets/user_alice/balance"
    assert (await anon.get(path, headers=bearer(admin_key))).status == 200
    assert (await anon.post(f"{API}/wallets/topup", json=topup_body(), headers=bearer(admin_key))).status == 201
    assert (await anon.get(path, headers=bearer(admin_key[:-1] + "0"))).status in (401, 200)
    args = [bytes(row[0]) for row in conn.execute("SELECT arg FROM test_auth_args")]
    assert schema.key_hash(admin_key) in args
    assert all(len(arg) == 32 for arg in args)
    assert admin_key not in caplog.text and admin_key[4:] not in caplog.text
    activity = conn.execute("SELECT string_agg(coalesce(query, ''), ' ') FROM pg_stat_activity").fetchone()[0]
    assert admin_key[4:] not in (activity or "")


# ---------------------------------------------------------------- KeyCache on its own (a fake clock and database)


class FakeDb:
    def __init__(self, active: dict[bytes, ApiKey]):
        self.active = active
        self.calls: list[bytes] = []
        self.running = 0
        self.most_at_once = 0
        self.gate: asyncio.Event | None = None

    async def query(self, key_hash: bytes) -> ApiKey | None:
        self.calls.append(key_hash)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(0)
            return self.active.get(key_hash)
        finally:
            self.running -= 1


def _h(n: int) -> bytes:
    return n.to_bytes(32, "big")


async def test_cache_answers_expire_after_the_ttl():
    now = [0.0]
    db = FakeDb({_h(1): ApiKey("k", frozenset({"read"}))})
    cache = KeyCache(ttl=2.0, clock=lambda: now[0])
    assert (await cache.get(_h(1), db.query)) == ApiKey("k", frozenset({"read"}))
    now[0] = 1.9
    assert (await cache.get(_h(1), db.query)) is not None and len(db.calls) == 1
    del db.active[_h(1)]  # revoked
    now[0] = 2.1
    assert (await cache.get(_h(1), db.query)) is None and len(db.calls) == 2
    now[0] = 4.0
    assert (await cache.get(_h(1), db.query)) is None and len(db.calls) == 2  # the refusal is cached too
    now[0] = 4.2
    await cache.get(_h(1), db.query)
    assert len(db.calls) == 3


async def test_cache_size_is_bounded():
    db = FakeDb({_h(n): ApiKey(f"k{n}", frozenset({"read"})) for n in range(100)})
    cache = KeyCache(max_active=10, max_refused=20)
    for n in range(100):
        assert await cache.get(_h(n), db.query) is not None
    for n in range(1000, 1500):
        assert await cache.get(_h(n), db.query) is None
    assert len(cache) == 30
    calls = len(db.calls)
    assert await cache.get(_h(99), db.query) is not None and len(db.calls) == calls  # the newest stayed
    assert await cache.get(_h(0), db.query) is not None and len(db.calls) == calls + 1  # the oldest went


async def test_unknown_keys_hold_few_connections_and_never_delay_a_known_key():
    now = [0.0]
    known = ApiKey("known", frozenset({"read"}))
    db = FakeDb({_h(1): known})
    cache = KeyCache(ttl=2.0, max_unknown_lookups=2, clock=lambda: now[0])
    assert await cache.get(_h(1), db.query) == known
    now[0] = 10.0  # the known key's answer has expired
    db.gate = asyncio.Event()  # the database hangs for now
    flood = [asyncio.ensure_future(cache.get(_h(n), db.query)) for n in range(100, 150)]
    await asyncio.sleep(0.05)
    assert db.most_at_once == 2  # the 50 unknown keys: two lookups at a time
    refresh = asyncio.ensure_future(cache.get(_h(1), db.query))
    await asyncio.sleep(0.05)
    assert db.running == 3  # the known key's refresh did not queue behind them
    db.gate.set()
    assert await refresh == known
    assert await asyncio.gather(*flood) == [None] * 50
    assert db.most_at_once == 3


async def test_a_failed_lookup_is_not_cached():
    db = FakeDb({})
    fail = itertools.count()

    async def flaky(key_hash: bytes) -> ApiKey | None:
        if next(fail) == 0:
            raise psycopg.OperationalError("the database went away")
        return await db.query(key_hash)

    cache = KeyCache()
    with pytest.raises(psycopg.OperationalError):
        await cache.get(_h(5), flaky)
    assert await cache.get(_h(5), flaky) is None  # asked again, not answered from a cached failure
    assert len(db.calls) == 1
