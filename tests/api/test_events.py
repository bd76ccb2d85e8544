"""GET /api/v1/events over HTTP against a real database: the stream's format and order, resuming with
Last-Event-ID (header or query) exactly once, a transaction that commits after a later-numbered one, the
per-player filter, validation, scopes, heartbeats, events surviving a restart of the service, postings made
outside the service, a slow client that stops reading, the stream limit, disconnects and a prompt shutdown.

(The sequencer under concurrency: tests/integrity/test_events_order.py; its rules: tests/sql/wallet_events*.sql.)"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp import web

from service import events, listener, metrics
from service.app import API, create_app
from service.events import HUB
from service.handlers import iso
from tests.access import bearer, create_key
from tests.api.helpers import error_of, snapshot, violations

SEEDED = ["init_alice_gold_001", "init_alice_diamonds_001", "init_bob_gold_001", "init_charlie_gold_001"]
WAIT = 10.0  # seconds: the longest a test waits for an event (they come within a few tenths)


def new_app(app_url: str):
    return create_app(app_url, pool_min_size=1, pool_max_size=4)


@pytest.fixture
async def client(aiohttp_client, app_url, auth_headers):
    return await aiohttp_client(new_app(app_url), headers=auth_headers)


class Stream:
    """An open SSE response, parsed as an EventSource parses it: events (id, event, data) and comments."""

    def __init__(self, response) -> None:
        self.response = response
        self.comments: list[str] = []

    async def next(self, timeout: float = WAIT) -> dict[str, Any]:
        """The next event (its data parsed as JSON); TimeoutError if none comes in time."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    self.response.release()
                    raise EOFError("the stream ended")
                line = raw.decode().rstrip("\n")
                if line.startswith(":"):
                    self.comments.append(line)
                elif line == "":
                    if fields:
                        return {"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])}
                else:
                    name, _, value = line.partition(": ")
                    assert name not in fields, f"{name} twice in one event"
                    fields[name] = value

    async def take(self, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:
        return [await self.next(timeout) for _ in range(count)]

    async def nothing_for(self, seconds: float) -> None:
        """No event arrives within `seconds` (heartbeats may)."""
        with pytest.raises(TimeoutError):
            await self.next(seconds)


async def open_stream(
    client, query: str = "", headers: dict[str, str] | None = None, base: str | None = None
) -> Stream:
    """GET /events: through a test client, or a session and the base URL of the server it talks to."""
    r = await client.get(url(f"{API}/events{query}", base), headers=headers or {})
    assert r.status == 200, await r.text()
    return Stream(r)


def url(path: str, base: str | None) -> str:
    return path if base is None else base + path


@asynccontextmanager
async def serving(app_url: str, **kwargs: Any) -> AsyncIterator[tuple[str, web.Application]]:
    """(base URL, app) of a new app served as `wallet-service serve` serves it (service.listener: its shutdown
    timeout, handlers not cancelled when their client goes away), unlike the test server; stopped at the end
    (if the test did not stop it)."""
    app = new_app(app_url)
    runner = listener.make_runner(app, **kwargs)
    await runner.setup()
    try:
        site = listener.make_site(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{site.port}", app
    finally:
        await runner.cleanup()


def ref(prefix: str = "ev") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def topup(client, user: str, amount: int, reference_id: str | None = None, base: str | None = None) -> dict:
    body = {"user_id": user, "asset_code": "GOLD_COINS", "amount": amount, "reference_id": reference_id or ref()}
    r = await client.post(url(f"{API}/wallets/topup", base), json=body)
    assert r.status == 201, await r.text()
    return await r.json()


def refs(received: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["reference_id"] for e in received]


# ---------------------------------------------------------------- the stream


async def test_every_committed_transaction_in_order_then_each_new_one(client, conn):
    r = await client.get(f"{API}/events", headers={"X-Request-Id": "events-1"})
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/event-stream"
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["X-Request-Id"] == "events-1"
    stream = Stream(r)
    seeded = await stream.take(4)
    assert [e["id"] for e in seeded] == [1, 2, 3, 4]
    assert {e["event"] for e in seeded} == {"transaction"}
    assert refs(seeded) == SEEDED
    first = seeded[0]["data"]
    tx_id, created = conn.execute(
        "SELECT id::text, created_at FROM transactions WHERE reference_id = 'init_alice_gold_001'"
    ).fetchone()
    assert first == {
        "transaction_id": tx_id,
        "reference_id": "init_alice_gold_001",
        "type": "INITIAL_BALANCE",
        "user_id": "user_alice",
        "legs": [{"asset_code": "GOLD_COINS", "amount": 100000, "balance_after": 100000}],
        "created_at": iso(created),
    }

    posted = await topup(client, "user_bob", 700)
    r = await client.post(
        f"{API}/wallets/spend",
        json={"user_id": "user_bob", "asset_code": "GOLD_COINS", "amount": 200, "reference_id": ref(), "item_id": "x"},
    )
    assert r.status == 201
    r = await client.post(
        f"{API}/wallets/purchase",
        json={
            "user_id": "user_alice",
            "reference_id": ref(),
            "item_id": "bundle",
            "price": [{"asset_code": "GOLD_COINS", "amount": 10}, {"asset_code": "DIAMONDS", "amount": 5}],
        },
    )
    assert r.status == 201
    new = await stream.take(3)
    assert [e["id"] for e in new] == [5, 6, 7]
    assert new[0]["data"]["transaction_id"] == posted["transaction_id"]
    assert new[0]["data"]["created_at"] == posted["timestamp"]
    assert new[0]["data"]["legs"] == [{"asset_code": "GOLD_COINS", "amount": 700, "balance_after": 50700}]
    assert new[1]["data"]["legs"] == [{"asset_code": "GOLD_COINS", "amount": -200, "balance_after": 50500}]
    assert (new[2]["data"]["type"], new[2]["data"]["legs"]) == (
        "PURCHASE",
        [
            {"asset_code": "DIAMONDS", "amount": -5, "balance_after": 495},
            {"asset_code": "GOLD_COINS", "amount": -10, "balance_after": 99990},
        ],
    )
    # a replay, a hold and a refused spend are no transactions: no event
    body = {
        "user_id": "user_bob",
        "asset_code": "GOLD_COINS",
        "amount": 700,
        "reference_id": new[0]["data"]["reference_id"],
    }
    assert (await client.post(f"{API}/wallets/topup", json=body)).status == 200
    r = await client.post(
        f"{API}/wallets/hold",
        json={"user_id": "user_bob", "asset_code": "GOLD_COINS", "amount": 1, "reference_id": ref()},
    )
    assert r.status == 201
    r = await client.post(
        f"{API}/wallets/spend",
        json={
            "user_id": "user_bob",
            "asset_code": "GOLD_COINS",
            "amount": 10**9,
            "reference_id": ref(),
            "item_id": "x",
        },
    )
    assert r.status == 422
    await stream.nothing_for(1.0)


async def test_a_client_that_resumes_with_last_event_id_gets_every_later_event_once(client):
    stream = await open_stream(client)
    await stream.take(4)
    stream.response.close()
    for i in range(3):
        await topup(client, "user_charlie", 10 + i)
    # the header, as an EventSource sends it when it reconnects
    resumed = await (await open_stream(client, headers={"Last-Event-ID": "4"})).take(3)
    assert [e["id"] for e in resumed] == [5, 6, 7]
    assert [e["data"]["legs"][0]["amount"] for e in resumed] == [10, 11, 12]
    # the query parameter, for a browser's first connect
    assert [e["id"] for e in await (await open_stream(client, "?last_event_id=6")).take(1)] == [7]
    # both: the header wins (a reconnecting EventSource keeps its first URL and sends the newer id in the header)
    both = await open_stream(client, "?last_event_id=1", headers={"Last-Event-ID": "6"})
    assert [e["id"] for e in await both.take(1)] == [7]
    await both.nothing_for(0.5)
    # caught up exactly: the newest id itself is a valid position
    caught_up = await open_stream(client, headers={"Last-Event-ID": "7"})
    await caught_up.nothing_for(0.5)
    await topup(client, "user_charlie", 99)
    assert [e["id"] for e in await caught_up.take(1)] == [8]


async def test_a_transaction_committing_after_a_later_one_is_delivered_exactly_once(client, home_db_url, conn):
    stream = await open_stream(client, headers={"Last-Event-ID": "4"})
    # BEGIN; its transaction stays open (through a proxy: on alice's shard, where bob lives too)
    with psycopg.connect(home_db_url("user_alice")) as slow:
        slow.execute("SELECT wallet_topup('user_alice', 'GOLD_COINS', 11, 'ooo_a', 'card')")
        await topup(client, "user_bob", 22, reference_id="ooo_b")  # starts after A, commits before it
        (b,) = await stream.take(1)
        assert (b["id"], b["data"]["reference_id"]) == (5, "ooo_b")
        await stream.nothing_for(0.5)  # A is not committed: nothing yet
        slow.commit()
    (a,) = await stream.take(1)
    assert (a["id"], a["data"]["reference_id"]) == (6, "ooo_a")
    # A took its inbox number (and its time) before B, but committed after B. Had the
    # events been numbered by that pre-commit number (the naive design: "id > last" over a sequence), A's event
    # would be below B's, appear only after the client had moved past B, and be skipped by every resume after B.
    assert a["data"]["created_at"] < b["data"]["created_at"]
    # a client that disconnected right after B resumes from B's id: A, once, and nothing else
    resumed = await open_stream(client, headers={"Last-Event-ID": str(b["id"])})
    assert [(e["id"], e["data"]["reference_id"]) for e in await resumed.take(1)] == [(6, "ooo_a")]
    await resumed.nothing_for(0.5)


async def test_the_per_player_filter(client):
    bob = await open_stream(client, "?user_id=user_bob")
    assert refs(await bob.take(1)) == ["init_bob_gold_001"]
    await topup(client, "user_alice", 5)
    posted = await topup(client, "user_bob", 6)
    (event,) = await bob.take(1)
    assert event["data"]["transaction_id"] == posted["transaction_id"]
    assert event["id"] == 6, "its id is the global event id (5 is alice's)"
    await bob.nothing_for(0.5)
    # resuming a filtered stream from a global id: bob's later events only
    again = await open_stream(client, "?user_id=user_bob&last_event_id=3")
    assert [e["id"] for e in await again.take(1)] == [6]
    # a player with no transaction yet: nothing, then their first top-up
    newcomer = await open_stream(client, "?user_id=user_newcomer")
    await newcomer.nothing_for(0.3)
    await topup(client, "user_newcomer", 7)
    assert [e["data"]["user_id"] for e in await newcomer.take(1)] == ["user_newcomer"]


async def test_postings_made_outside_the_service_are_streamed(client, conn):
    """psql, another worker process: the hub numbers them (no request of this service is involved)."""
    stream = await open_stream(client, headers={"Last-Event-ID": "4"})
    await stream.nothing_for(0.3)
    started = time.monotonic()
    conn.execute("SELECT wallet_topup('user_bob', 'GOLD_COINS', 3, 'from_psql', 'card')")
    (event,) = await stream.take(1)
    assert event["data"]["reference_id"] == "from_psql"
    assert time.monotonic() - started < 2.0, "within a few hub ticks"


async def test_heartbeats_on_an_idle_stream(client, monkeypatch):
    monkeypatch.setattr(events, "HEARTBEAT_SECONDS", 0.3)
    stream = await open_stream(client, headers={"Last-Event-ID": "4"})
    await stream.nothing_for(1.0)
    assert stream.comments.count(": heartbeat") >= 2
    await topup(client, "user_bob", 1)
    assert [e["id"] for e in await stream.take(1)] == [5], "heartbeats do not disturb the events"


# ---------------------------------------------------------------- refused


@pytest.mark.parametrize(
    ("query", "headers", "field"),
    [
        ("?last_event_id=abc", {}, "last_event_id"),
        ("?last_event_id=-1", {}, "last_event_id"),
        ("?last_event_id=1.5", {}, "last_event_id"),
        ("?last_event_id=", {}, "last_event_id"),
        ("?last_event_id=1&last_event_id=2", {}, "last_event_id"),
        ("?last_event_id=99999999999999999999", {}, "last_event_id"),
        ("", {"Last-Event-ID": "x"}, "Last-Event-ID"),
        ("", {"Last-Event-ID": "-3"}, "Last-Event-ID"),
        ("", {"Last-Event-ID": "٣"}, "Last-Event-ID"),  # a digit, but not an ASCII one
        ("?last_event_id=2", {"Last-Event-ID": "x"}, "Last-Event-ID"),
        ("?user_id=", {}, "user_id"),
        ("?user_id=" + "x" * 129, {}, "user_id"),
        ("?user_id=bob%00", {}, "user_id"),
        ("?user_id=a&user_id=b", {}, "user_id"),
        ("?asset_code=GOLD_COINS", {}, "asset_code"),
        ("?lastEventId=3", {}, "lastEventId"),
        # past the newest event: a client pointed at another (or a restored, older) ledger would skip events
        ("?last_event_id=5", {}, "last_event_id"),
        ("", {"Last-Event-ID": "9223372036854775807"}, "last_event_id"),
        ("?user_id=user_bob&last_event_id=5", {}, "last_event_id"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(client, conn, query, headers, field):
    before = snapshot(conn)
    r = await client.get(f"{API}/events{query}", headers=headers)
    assert r.status == 400, r.headers  # (not its text: a stream opened by mistake would never end)
    assert r.content_type == "application/json"
    error = await error_of(r)
    assert error["code"] == "VALIDATION_ERROR"
    assert field in [e["field"] for e in error["details"]["errors"]], error
    assert snapshot(conn) == before
    assert violations(conn) == []


async def test_two_last_event_id_headers_are_refused(client):
    from multidict import CIMultiDict

    r = await client.get(f"{API}/events", headers=CIMultiDict([("Last-Event-ID", "1"), ("Last-Event-ID", "2")]))
    assert r.status == 400
    assert [e["field"] for e in (await error_of(r))["details"]["errors"]] == ["Last-Event-ID"]


async def test_the_read_scope_is_needed(aiohttp_client, app_url, db_url):
    anon = await aiohttp_client(new_app(app_url))
    r = await anon.get(f"{API}/events")
    assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert (await error_of(r))["code"] == "UNAUTHENTICATED"
    writer = create_key(db_url, ["topup", "bonus", "spend", "reverse"], "no-read")
    r = await anon.get(f"{API}/events", headers=bearer(writer))
    assert r.status == 403
    assert (await error_of(r))["details"] == {"required_scope": "read"}
    reader = create_key(db_url, ["read"], "reader")
    stream = await open_stream(anon, headers=bearer(reader))
    assert len(await stream.take(4)) == 4


async def test_beyond_max_streams_is_503_with_retry_after(app_url, auth_headers, monkeypatch):
    monkeypatch.setattr(events, "MAX_STREAMS", 2)
    async with serving(app_url) as (base, app), aiohttp.ClientSession(headers=auth_headers) as session:
        first = await open_stream(session, base=base)
        second = await open_stream(session, base=base)
        r = await session.get(f"{base}{API}/events")
        assert r.status == 503 and r.headers["Retry-After"] == "1"
        assert (await error_of(r))["code"] == "SERVICE_UNAVAILABLE"
        first.response.close()  # its slot is freed once the service notices (DISCONNECT_CHECK_SECONDS)
        async with asyncio.timeout(WAIT):
            while len(app[HUB].streams) > 1:
                await asyncio.sleep(0.05)
        third = await open_stream(session, base=base)
        for stream in (second, third):
            stream.response.close()


# ---------------------------------------------------------------- the service's side


async def test_a_client_that_goes_away_frees_its_stream(app_url, auth_headers):
    """(Served as in production: aiohttp does not cancel a handler whose client went away; the stream notices.)"""
    async with serving(app_url) as (base, app), aiohttp.ClientSession(headers=auth_headers) as session:
        stream = await open_stream(session, base=base)
        await stream.take(4)
        assert len(app[HUB].streams) == 1
        stream.response.close()
        async with asyncio.timeout(3 * events.DISCONNECT_CHECK_SECONDS):
            while app[HUB].streams:
                await asyncio.sleep(0.05)


async def test_events_survive_a_restart_of_the_service(app_url, auth_headers, conn):
    async with aiohttp.ClientSession(headers=auth_headers) as session:
        async with serving(app_url) as (base, _app):
            stream = await open_stream(session, base=base)
            await stream.take(4)
            await topup(session, "user_alice", 1, reference_id="before_restart", base=base)
            (seen,) = await stream.take(1)
        # the service stopped: its open stream ended ...
        with pytest.raises(EOFError):
            await stream.next(2.0)
        # ... postings go on meanwhile (another instance, psql) ...
        conn.execute("SELECT wallet_topup('user_bob', 'GOLD_COINS', 2, 'while_down_1', 'card')")
        conn.execute("SELECT wallet_topup('user_bob', 'GOLD_COINS', 3, 'while_down_2', 'card')")
        # ... and a new service on the same database resumes the client from its last id
        async with serving(app_url) as (base, _app):
            resumed = await open_stream(session, headers={"Last-Event-ID": str(seen["id"])}, base=base)
            got = await resumed.take(2)
            assert [(e["id"], e["data"]["reference_id"]) for e in got] == [(6, "while_down_1"), (7, "while_down_2")]
            await resumed.nothing_for(0.5)
            from_start = await open_stream(session, base=base)
            everything = await from_start.take(7)
            assert refs(everything) == [*SEEDED, "before_restart", "while_down_1", "while_down_2"]
            for open_one in (resumed, from_start):
                open_one.response.close()


async def test_shutdown_ends_every_stream_promptly(app_url, auth_headers):
    """At shutdown aiohttp waits up to its shutdown timeout (30 s in `serve`) for handlers still running: the
    streams end at on_shutdown, before that wait, each with a clean end of its body."""
    async with aiohttp.ClientSession(headers=auth_headers) as session:
        async with serving(app_url) as (base, app):
            streams = [await open_stream(session, base=base) for _ in range(3)]
            for stream in streams:
                await stream.take(4)
            started = time.monotonic()
        # (leaving `serving` stopped the service: runner.cleanup(), what SIGTERM runs)
        assert time.monotonic() - started < 3.0
        for stream in streams:
            with pytest.raises(EOFError):
                await stream.next(1.0)
        assert not app[HUB].streams


async def test_a_client_that_stops_reading_costs_one_page_then_is_dropped(app_url, admin_key, conn, monkeypatch):
    """A client that reads nothing: its stream blocks in its write once the socket's buffers are full, holding
    about one page and aiohttp's 64 KiB drain limit, not every event posted meanwhile; after
    WRITE_TIMEOUT_SECONDS it is disconnected and its stream slot freed."""
    monkeypatch.setattr(events, "WRITE_TIMEOUT_SECONDS", 3.0)
    delivered: list[int] = []
    monkeypatch.setattr(metrics, "events_delivered", lambda app, n: delivered.append(n))
    # many big events (ids of 100+ characters): about 1.5 MB of stream
    conn.execute("""
        SELECT wallet_topup(repeat('p', 100) || (i % 50), 'GOLD_COINS', 1, repeat('r', 100) || i, 'card')
          FROM generate_series(1, 3000) i""")
    total = conn.execute("SELECT count(*) FROM transactions").fetchone()[0]

    async with serving(app_url) as (base, app):
        port = int(base.rsplit(":", 1)[1])
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window stays small
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", port))
        request_line = f"GET {API}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin_key}\r\n\r\n"
        await loop.sock_sendall(sock, request_line.encode())
        hub = app[HUB]
        try:
            # the server's side of a slow link: a small send buffer (the kernel's autotuning would otherwise
            # absorb megabytes on loopback before the stream ever has to wait)
            async with asyncio.timeout(WAIT):
                while not hub.streams:
                    await asyncio.sleep(0)
            (request,) = hub.streams.values()
            request.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            # the stream fills the socket, then its write blocks: what it delivered stops growing, short of all
            previous, stable_since = -1, time.monotonic()
            async with asyncio.timeout(30):
                while time.monotonic() - stable_since < 1.0:
                    await asyncio.sleep(0.1)
                    if sum(delivered) != previous:
                        previous, stable_since = sum(delivered), time.monotonic()
            assert 0 < sum(delivered) < total, (sum(delivered), total)
            buffered = request.transport.get_write_buffer_size()
            assert buffered <= 256 * 1024, f"{buffered} bytes held for a client that reads nothing"
            # ... and is dropped once its write has waited WRITE_TIMEOUT_SECONDS
            async with asyncio.timeout(events.WRITE_TIMEOUT_SECONDS + 5):
                while hub.streams:
                    await asyncio.sleep(0.1)
            assert sum(delivered) < total
        finally:
            sock.close()


async def test_the_hub_reconnects_after_losing_its_connection(client, conn, caplog):
    caplog.set_level(logging.WARNING, logger="service.events")
    stream = await open_stream(client, headers={"Last-Event-ID": "4"})
    hub = client.app[HUB]
    async with asyncio.timeout(WAIT):
        await hub.listening.wait()
    killed = conn.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'wallet-service events'"
    ).fetchone()[0]
    assert killed == 1
    conn.execute("SELECT wallet_topup('user_bob', 'GOLD_COINS', 3, 'after_kill', 'card')")
    (event,) = await stream.take(1)
    assert event["data"]["reference_id"] == "after_kill"
    assert "event hub lost its database connection" in caplog.text
    async with asyncio.timeout(WAIT):
        await hub.listening.wait()


def test_the_document_states_the_streams_limits():
    """The numbers the OpenAPI document gives in words are the service's."""
    from service.docs import spec

    operation = spec()["paths"]["/events"]["get"]
    text = operation["description"]
    assert f"`: heartbeat` comes after {events.HEARTBEAT_SECONDS:g} s without an event" in text
    assert f"has not taken the data written to it for {events.WRITE_TIMEOUT_SECONDS:g} s" in text
    assert f"At most {events.MAX_STREAMS} streams per service process" in text
    assert f"has {events.MAX_STREAMS} streams open already" in operation["responses"]["503"]["description"]
    assert operation["x-required-scope"] == "read"


async def test_without_the_hub_a_stream_still_reads_on_every_heartbeat(client, conn, monkeypatch):
    """The hub's wake-ups only make a stream quicker: with no hub at all, each heartbeat is followed by a read."""

    async def no_hub(self) -> None:
        return None

    monkeypatch.setattr(events.Hub, "_run", no_hub)
    monkeypatch.setattr(events, "HEARTBEAT_SECONDS", 0.5)
    stream = await open_stream(client, headers={"Last-Event-ID": "4"})
    conn.execute("SELECT wallet_topup('user_bob', 'GOLD_COINS', 3, 'no_hub', 'card')")
    (event,) = await stream.take(1, timeout=3.0)
    assert event["data"]["reference_id"] == "no_hub"
    assert stream.comments, "it came after a heartbeat"
