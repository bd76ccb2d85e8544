"""Hostile input: every case answers the contract's JSON error body with its own status, and writes nothing.

Duplicate JSON keys, deep or huge metadata, non-finite numbers, oversized cursors, invisible or control
characters in ids, a Content-Type other than JSON, requests aiohttp's parser refuses, a body that stalls,
idle and excess connections (1,100 sockets against `listener.run` in a subprocess), the Server banner.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from yarl import URL

from service import listener, validation
from service.app import create_app
from service.limits import (
    FD_RESERVE,
    MAX_CONNECTIONS,
    MAX_CURSOR_LENGTH,
    MAX_ID_LENGTH,
    MAX_METADATA_DEPTH,
    MAX_METADATA_ITEMS,
)
from tests.api.helpers import error_of, snapshot, topup_body, violations

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def secret(conn) -> str:
    """An admin API key's secret (every route but the open ones needs one: service/auth.py)."""
    return conn.execute("SELECT secret FROM wallet_key_create('hostile-tests', '{admin}')").fetchone()[0]


@pytest.fixture
async def client(aiohttp_client, db_url, secret):
    app = create_app(db_url, pool_min_size=1, pool_max_size=4)
    return await aiohttp_client(app, headers={"Authorization": f"Bearer {secret}"})


async def refused(client, conn, status: int, code: str, method: str, path: str | URL, **kwargs) -> dict:
    """Send one request; it must answer `status` `code` in the contract's body and write nothing."""
    before = snapshot(conn)
    r = await client.request(method, path, **kwargs)
    assert r.status == status, await r.text()
    error = await error_of(r)
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    if code == "VALIDATION_ERROR":
        assert error["details"]["errors"], error
        assert all(set(e) == {"field", "message"} and e["message"] for e in error["details"]["errors"])
    assert "Traceback" not in await r.text()
    assert snapshot(conn) == before
    assert violations(conn) == []
    return error


def fields_of(error: dict) -> list[str]:
    return [e["field"] for e in error["details"]["errors"]]


JSON = {"Content-Type": "application/json"}
BODY = '"user_id": "user_alice", "asset_code": "GOLD_COINS", "amount": 5, "reference_id": "hostile_1"'

# ---------------------------------------------------------------- duplicate JSON keys


@pytest.mark.parametrize(
    "raw",
    [
        '{"amount": 1, ' + BODY + "}",  # a WAF reading the first "amount" sees 1, json.loads the last: 5
        "{" + BODY + ', "user_id": "user_bob"}',
        "{" + BODY + ', "metadata": {"a": 1, "a": 2}}',
        "{" + BODY + ', "metadata": {"x": [{"deep": {"k": 1, "k": 1}}]}}',
        "{" + BODY + ', "metadata": {}, "metadata": {"a": 1}}',
    ],
    ids=["amount", "user_id", "metadata-member", "deep-in-metadata", "metadata-itself"],
)
async def test_duplicate_keys_are_invalid_json(client, conn, raw):
    error = await refused(client, conn, 400, "INVALID_JSON", "POST", "/api/v1/wallets/topup", data=raw, headers=JSON)
    assert "appears twice" in error["message"]


async def test_equal_keys_in_different_objects_are_fine(client):
    raw = "{" + BODY + ', "metadata": {"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}}'
    assert (await client.post("/api/v1/wallets/topup", data=raw, headers=JSON)).status == 201


# ---------------------------------------------------------------- metadata depth and size


def nested(depth: int) -> dict:
    """A metadata object nested `depth` levels deep (the metadata object itself is level 1)."""
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


async def test_metadata_at_the_depth_limit_is_accepted(client):
    body = topup_body(metadata=nested(MAX_METADATA_DEPTH))
    assert (await client.post("/api/v1/wallets/topup", json=body)).status == 201


@pytest.mark.parametrize(
    "metadata",
    [
        nested(MAX_METADATA_DEPTH + 1),
        {"a": [[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]},  # arrays count as levels too
        nested(900),  # deep, yet within what json.loads parses
    ],
    ids=["limit+1", "arrays", "900"],
)
async def test_metadata_nested_too_deep_is_a_validation_error(client, conn, metadata):
    body = topup_body(metadata=metadata)
    error = await refused(client, conn, 400, "VALIDATION_ERROR", "POST", "/api/v1/wallets/topup", json=body)
    assert fields_of(error) == ["metadata"]
    assert str(MAX_METADATA_DEPTH) in error["details"]["errors"][0]["message"]


async def test_metadata_nested_beyond_the_parser_is_invalid_json(client, conn):
    raw = "{" + BODY + ', "metadata": ' + '{"a":' * 5000 + "1" + "}" * 5000 + "}"
    assert len(raw) < 64 * 1024
    await refused(client, conn, 400, "INVALID_JSON", "POST", "/api/v1/wallets/topup", data=raw, headers=JSON)


async def test_metadata_at_the_item_limit_is_accepted(client):
    metadata = {"list": list(range(MAX_METADATA_ITEMS - 1))}  # the member "list" and its elements
    assert (await client.post("/api/v1/wallets/topup", json=topup_body(metadata=metadata))).status == 201


@pytest.mark.parametrize(
    "metadata",
    [
        {"list": list(range(MAX_METADATA_ITEMS))},
        {f"k{i}": i for i in range(MAX_METADATA_ITEMS + 1)},
        {"a": {f"k{i}": [i] for i in range(MAX_METADATA_ITEMS // 2)}},
    ],
    ids=["elements", "members", "mixed"],
)
async def test_metadata_with_too_many_items_is_a_validation_error(client, conn, metadata):
    body = topup_body(metadata=metadata)
    error = await refused(client, conn, 400, "VALIDATION_ERROR", "POST", "/api/v1/wallets/topup", json=body)
    assert fields_of(error) == ["metadata"]
    assert str(MAX_METADATA_ITEMS) in error["details"]["errors"][0]["message"]


# ---------------------------------------------------------------- numbers that are not finite


@pytest.mark.parametrize(
    "number", ["1e400", "-1e400", "1E+999", "123456789e999", "NaN", "Infinity", "-Infinity", "[1e400]", '{"x": 1e400}']
)
async def test_non_finite_numbers_in_metadata_are_invalid_json(client, conn, number):
    raw = "{" + BODY + ', "metadata": {"score": ' + number + "}}"
    await refused(client, conn, 400, "INVALID_JSON", "POST", "/api/v1/wallets/topup", data=raw, headers=JSON)


async def test_large_finite_numbers_in_metadata_are_kept(client):
    raw = "{" + BODY + ', "metadata": {"big": 1e308, "tiny": -2.5e-300, "int": 123456789012345678901234567890}}'
    assert (await client.post("/api/v1/wallets/topup", data=raw, headers=JSON)).status == 201
    metadata = (await (await client.get("/api/v1/transactions/hostile_1")).json())["metadata"]
    assert float(metadata["big"]) == 1e308 and float(metadata["tiny"]) == -2.5e-300
    assert metadata["int"] == 123456789012345678901234567890


# ---------------------------------------------------------------- history cursors


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        cursor_of("e1:" + "9" * 5000),  # a well-formed cursor of a 5000-digit id: int() of it raised (500)
        cursor_of("e1:1" + "0" * 60),  # decodes to a number, but longer than any cursor the service returns
        "A" * (MAX_CURSOR_LENGTH + 1),
        "ZTE6MTI\u202e",  # not ASCII
    ],
    ids=["5000-digits", "long-number", "limit+1", "non-ascii"],
)
async def test_oversized_or_foreign_cursor_is_a_validation_error(client, conn, cursor):
    error = await refused(
        client,
        conn,
        400,
        "VALIDATION_ERROR",
        "GET",
        "/api/v1/wallets/user_alice/transactions",
        params={"asset_code": "GOLD_COINS", "cursor": cursor},
    )
    assert fields_of(error) == ["cursor"]


async def test_the_longest_cursor_the_service_returns_is_accepted(client):
    cursor = cursor_of(f"e1:{2**63 - 1}")
    assert len(cursor) <= MAX_CURSOR_LENGTH
    r = await client.get(
        "/api/v1/wallets/user_alice/transactions", params={"asset_code": "GOLD_COINS", "cursor": cursor}
    )
    assert r.status == 200


# ---------------------------------------------------------------- characters in ids

# one of each kind the rule refuses (Unicode general category), spelled as JSON escapes where JSON needs it
FORBIDDEN = {
    "NUL (Cc)": "\x00",
    "BEL (Cc)": "\x07",
    "newline (Cc)": "\n",
    "DEL (Cc)": "\x7f",
    "NEL (Cc)": "\x85",
    "soft hyphen (Cf)": "\u00ad",
    "zero width space (Cf)": "\u200b",
    "zero width non-joiner (Cf)": "\u200c",
    "zero width joiner (Cf)": "\u200d",
    "left-to-right mark (Cf)": "\u200e",
    "right-to-left mark (Cf)": "\u200f",
    "LRE (Cf)": "\u202a",
    "RLE (Cf)": "\u202b",
    "PDF (Cf)": "\u202c",
    "LRO (Cf)": "\u202d",
    "RLO (Cf)": "\u202e",
    "LRI (Cf)": "\u2066",
    "RLI (Cf)": "\u2067",
    "FSI (Cf)": "\u2068",
    "PDI (Cf)": "\u2069",
    "word joiner (Cf)": "\u2060",
    "BOM (Cf)": "\ufeff",
    "tag (Cf)": "\U000e0041",
    "line separator (Zl)": "\u2028",
    "paragraph separator (Zp)": "\u2029",
    "private use (Co)": "\ue000",
    "supplementary private use (Co)": "\U00100000",
    "lone surrogate (Cs)": "\ud800",
}


def raw_json(body: dict) -> bytes:
    """The body as JSON with non-ASCII escaped (a lone surrogate cannot be encoded as UTF-8, only escaped)."""
    return json.dumps(body).encode()


@pytest.mark.parametrize("char", list(FORBIDDEN.values()), ids=list(FORBIDDEN))
async def test_forbidden_character_in_user_id_is_a_validation_error(client, conn, char):
    body = topup_body(user_id=f"user_{char}alice")
    error = await refused(
        client, conn, 400, "VALIDATION_ERROR", "POST", "/api/v1/wallets/topup", data=raw_json(body), headers=JSON
    )
    assert fields_of(error) == ["user_id"]
    assert f"U+{ord(char):04X}" in error["details"]["errors"][0]["message"]


@pytest.mark.parametrize(
    "operation,field", [("topup", "user_id"), ("topup", "reference_id"), ("topup", "asset_code"),
                        ("topup", "payment_method"), ("bonus", "bonus_type"), ("spend", "item_id")]
)  # fmt: skip
@pytest.mark.parametrize("char", ["\u202e", "\u200b", "\x01"], ids=["RLO", "ZWSP", "SOH"])
async def test_forbidden_character_in_any_posting_field_names_the_field(client, conn, operation, field, char):
    body = topup_body(bonus_type="DAILY", item_id="sword") if operation != "topup" else topup_body()
    if operation == "bonus":
        del body["item_id"]
    if operation == "spend":
        del body["bonus_type"]
    body[field] = f"x{char}y"
    error = await refused(
        client, conn, 400, "VALIDATION_ERROR", "POST", f"/api/v1/wallets/{operation}", data=raw_json(body), headers=JSON
    )
    assert fields_of(error) == [field]


@pytest.mark.parametrize("char", ["\u202e", "\u2066", "\u200b", "\ufeff", "\t"])  # aiohttp's client sends no other Cc
async def test_forbidden_character_in_the_idempotency_key_header(client, conn, char):
    body = topup_body()
    del body["reference_id"]
    error = await refused(
        client, conn, 400, "VALIDATION_ERROR", "POST", "/api/v1/wallets/topup",
        json=body, headers={"Idempotency-Key": f"key{char}1"},
    )  # fmt: skip
    assert fields_of(error) == ["Idempotency-Key"]


async def test_idempotency_key_header_given_twice_is_a_validation_error(client, conn):
    body = topup_body()
    del body["reference_id"]
    headers = [("Idempotency-Key", "key_a"), ("Idempotency-Key", "key_b")]
    error = await refused(client, conn, 400, "VALIDATION_ERROR", "POST", "/api/v1/wallets/topup", json=body,
                          headers=headers)  # fmt: skip
    assert fields_of(error) == ["Idempotency-Key"]


@pytest.mark.parametrize(
    "path,field",
    [
        ("/api/v1/wallets/user_%E2%80%AEalice/balance", "user_id"),
        ("/api/v1/wallets/user_%E2%80%8Balice/transactions?asset_code=GOLD_COINS", "user_id"),
        ("/api/v1/wallets/user_%00alice/balance", "user_id"),
        ("/api/v1/transactions/init_alice_gold_001%E2%81%A6", "reference_id"),
        ("/api/v1/transactions/init%0Aalice", "reference_id"),
        ("/api/v1/wallets/user_alice/balance?asset_code=GOLD%E2%80%AE_COINS", "asset_code"),
        ("/api/v1/wallets/user_alice/transactions?asset_code=GOLD_COINS%EF%BB%BF", "asset_code"),
    ],
)
async def test_forbidden_character_in_path_or_query_names_the_field(client, conn, path, field):
    error = await refused(client, conn, 400, "VALIDATION_ERROR", "GET", URL(path, encoded=True))
    assert fields_of(error) == [field]


@pytest.mark.parametrize("user", ["joueur_é", "игрок_1", "玩家_7", "player 🎮", "a b", "x\u0301y", "𝔘𝔰𝔢𝔯"])
async def test_printable_unicode_ids_are_accepted(client, user):
    body = topup_body(user_id=user, reference_id=f"ref {user}")
    r = await client.post("/api/v1/wallets/topup", json=body)
    assert r.status == 201, await r.text()
    balance = await client.get(f"/api/v1/wallets/{user}/balance")
    assert balance.status == 200


def test_the_id_pattern_states_the_same_rule():
    """validation.id_pattern(), for the OpenAPI document, refuses exactly what the service refuses: read by
    Python's re and by jsonschema-rs (the validator schemathesis uses), for every code point."""
    import jsonschema_rs  # schemathesis's validator, installed with it

    pattern = validation.id_pattern()
    python = re.compile(pattern)
    rust = jsonschema_rs.validator_for({"type": "string", "pattern": pattern})
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:  # no Unicode string holds a lone surrogate: the pattern leaves them out
            continue
        value = f"a{chr(cp)}b"
        allowed = validation.id_character_problem(value) is None
        assert (python.fullmatch(value) is not None) == allowed, f"U+{cp:04X}"
        assert rust.is_valid(value) == allowed, f"U+{cp:04X}"
    assert python.fullmatch("x" * MAX_ID_LENGTH) and not python.fullmatch("x" * (MAX_ID_LENGTH + 1))
    assert not python.fullmatch("")


def test_the_id_rule_is_unicodes_control_format_private_use_and_separator_categories():
    """FORBIDDEN_ID_RANGES is written out (so Python, SQL and the document share one table whatever Unicode
    their runtime knows): under Unicode 14 it is exactly the categories it names; under a later Unicode,
    every code point it refuses still belongs to them (assigned characters keep their category)."""
    import unicodedata

    assert {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"} == validation.FORBIDDEN_ID_CATEGORIES
    in_table = {cp for first, last in validation.FORBIDDEN_ID_RANGES for cp in range(first, last + 1)}
    in_categories = {
        cp for cp in range(0x110000) if unicodedata.category(chr(cp)) in validation.FORBIDDEN_ID_CATEGORIES
    }
    if unicodedata.unidata_version == "14.0.0":
        assert in_table == in_categories
    else:
        assert in_table <= in_categories
    for cp in range(0x110000):
        refused_ = validation.id_character_problem(f"a{chr(cp)}b") is not None
        assert refused_ == (cp in in_table), f"U+{cp:04X}"


def test_the_sql_rule_refuses_the_same_characters(conn):
    """_wallet_printable (the SQL side of the rule) refuses the first and last code point of every range of
    the table and accepts the code points just outside them (NUL and surrogates cannot be in a text value)."""
    probes: list[tuple[int, bool]] = []
    for first, last in validation.FORBIDDEN_ID_RANGES:
        probes += [(first, True), (last, True), (first - 1, False), (last + 1, False)]
    probes = [
        (cp, refused_)
        for cp, refused_ in probes
        if 0 < cp < 0x110000 and not 0xD800 <= cp <= 0xDFFF and (refused_ or not validation.forbidden_id(chr(cp)))
    ]
    rows = conn.execute(
        "SELECT p.cp, NOT _wallet_printable('a' || chr(p.cp) || 'b') FROM unnest(%s::int[]) AS p (cp)",
        ([cp for cp, _ in probes],),
    ).fetchall()
    assert dict(rows) == dict(probes)


# ---------------------------------------------------------------- Content-Type


def post_routes() -> list[str]:
    app = create_app("postgresql:///unused")
    return sorted({r.resource.canonical for r in app.router.routes() if r.method == "POST" and r.resource})


@pytest.mark.parametrize("path", post_routes())
@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
        "text/json",
        "application/jsonx",
        "application/json-patch+json",
        "application/vnd.api+json",
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
        "application/json; charset=utf-8; charset=latin-1",
        "application/json; boundary=x",
        "application/json;",
        "application/json, text/plain",
        "",
    ],
)
async def test_post_without_json_content_type_is_unsupported_media_type(client, conn, path, content_type):
    body = json.dumps(topup_body(bonus_type="DAILY", item_id="sword")).encode()
    headers = {} if content_type is None else {"Content-Type": content_type}
    r_kwargs: dict = {"data": body, "headers": headers}
    if content_type is None:
        r_kwargs["skip_auto_headers"] = ["Content-Type"]
    error = await refused(client, conn, 415, "UNSUPPORTED_MEDIA_TYPE", "POST", path, **r_kwargs)
    assert error["details"] == {}


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8",
     'application/json; charset="utf-8"', "application/json ; charset=utf-8"],
)  # fmt: skip
async def test_json_content_types_are_accepted(client, content_type):
    body = json.dumps(topup_body()).encode()
    r = await client.post("/api/v1/wallets/topup", data=body, headers={"Content-Type": content_type})
    assert r.status == 201


async def test_content_type_is_checked_before_the_body_size(client, conn):
    """415 before 413: a body that is not declared JSON is not read at all."""
    big = b"x" * (200 * 1024)
    await refused(client, conn, 415, "UNSUPPORTED_MEDIA_TYPE", "POST", "/api/v1/wallets/topup", data=big,
                  headers={"Content-Type": "text/plain"})  # fmt: skip


# ---------------------------------------------------------------- the listener: raw HTTP


@asynccontextmanager
async def listening(app: web.Application, **kwargs) -> AsyncIterator[tuple[int, web.AppRunner]]:
    """The app served the way `listener.run` serves it (listener.make_runner), on a free port."""
    runner = listener.make_runner(app, **kwargs)
    await runner.setup()
    try:
        site = listener.make_site(runner, "127.0.0.1", 0)
        await site.start()
        yield site.port, runner
    finally:
        await runner.cleanup()


@pytest.fixture
async def served(db_url, secret) -> AsyncIterator[tuple[int, bytes]]:
    """(port, an Authorization header line) of the app served by listening()."""
    async with listening(create_app(db_url, pool_min_size=1, pool_max_size=4)) as (port, _):
        yield port, f"Authorization: Bearer {secret}\r\n".encode()


@pytest.fixture
async def raw() -> AsyncIterator[Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]]:
    """open(port): a raw TCP connection to 127.0.0.1:port, closed at the end of the test."""
    writers: list[asyncio.StreamWriter] = []

    async def open_(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
        return reader, writer

    yield open_
    for writer in writers:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def error(self) -> dict:
        assert self.headers["content-type"].startswith("application/json"), self.headers
        body = json.loads(self.body)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
        return body["error"]


async def read_answer(reader: asyncio.StreamReader, timeout: float = 10.0) -> Answer:
    """One HTTP response (status line, headers, Content-Length body) from a raw connection."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            assert name.lower() not in headers, f"{name} twice"
            headers[name.lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), timeout)
    return Answer(status, headers, body)


async def closed(reader: asyncio.StreamReader, timeout: float) -> bool:
    """Whether the server closes the connection within `timeout` seconds (whatever it sends before)."""
    try:
        while await asyncio.wait_for(reader.read(65536), timeout):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


H = b"Host: wallet\r\n"
HEALTH = b"GET /api/v1/health HTTP/1.1\r\n" + H + b"\r\n"
POST = b"POST /api/v1/wallets/topup HTTP/1.1\r\n" + H + b"Content-Type: application/json\r\n"
MALFORMED = {
    "not HTTP": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    "bad method": b"G@T /api/v1/health HTTP/1.1\r\n" + H + b"\r\n",
    "request line with extra words": b"GET /api/v1/health HTTP/1.1 please\r\n" + H + b"\r\n",
    "unknown HTTP version": b"GET /api/v1/health HTTP/9.9\r\n" + H + b"\r\n",
    "bare LF line ends": b"GET /api/v1/health HTTP/1.1\n" + H.replace(b"\r\n", b"\n") + b"\n",
    "header without colon": b"GET /api/v1/health HTTP/1.1\r\nHost wallet\r\n\r\n",
    "space before colon": b"GET /api/v1/health HTTP/1.1\r\nHost : wallet\r\n\r\n",
    "obsolete line folding": b"GET /api/v1/health HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n",
    "NUL in a header": b"GET /api/v1/health HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n",
    "header too long": b"GET /api/v1/health HTTP/1.1\r\n" + H + b"X-Long: " + b"a" * 10000 + b"\r\n\r\n",
    "request line too long": b"GET /api/v1/" + b"a" * 10000 + b" HTTP/1.1\r\n" + H + b"\r\n",
    "too many headers": b"GET /api/v1/health HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(200))
    + b"\r\n",
    "two Content-Types": POST + b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
    "Content-Length and Transfer-Encoding": POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two Content-Lengths": POST + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n{}",
    "negative Content-Length": POST + b"Content-Length: -1\r\n\r\n",
    "Transfer-Encoding not ending in chunked": POST + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "bad chunk size": POST + b"Transfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n",
    "chunk without CRLF": POST + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
}  # fmt: skip


@pytest.mark.parametrize("data", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_malformed_http_is_answered_with_the_json_error_body(served, raw, conn, data):
    port, _ = served
    before = snapshot(conn)
    reader, writer = await raw(port)
    writer.write(data)
    answer = await read_answer(reader)
    assert answer.status == 400
    error = answer.error()
    assert error["code"] == "VALIDATION_ERROR"
    assert fields_of(error) == ["request"]
    assert b"Traceback" not in answer.body and b"aiohttp" not in answer.body
    assert answer.headers["server"] == "wallet-service"
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"])
    assert answer.headers["connection"] == "close"
    assert await closed(reader, 5)
    assert snapshot(conn) == before


async def test_a_good_request_after_malformed_ones_is_served(served, raw):
    port, _ = served
    for data in list(MALFORMED.values())[:3]:
        reader, writer = await raw(port)
        writer.write(data)
        assert (await read_answer(reader)).status == 400
    reader, writer = await raw(port)
    writer.write(HEALTH)
    answer = await read_answer(reader)
    assert answer.status == 200 and json.loads(answer.body)["status"] == "healthy"


# ---------------------------------------------------------------- a body that stalls


def posting_head(length: int, auth: bytes) -> bytes:
    return POST + auth + b"Content-Length: %d\r\n\r\n" % length


@pytest.mark.parametrize("how", ["stalls", "trickles"])
async def test_a_body_that_does_not_arrive_in_time_is_request_timeout(served, raw, conn, monkeypatch, how):
    """The whole body must arrive within BODY_TIMEOUT_SECONDS (1 s here), whether it stops or trickles."""
    monkeypatch.setattr(validation, "BODY_TIMEOUT_SECONDS", 1.0)
    port, auth = served
    before = snapshot(conn)
    body = json.dumps(topup_body()).encode()
    reader, writer = await raw(port)
    writer.write(posting_head(len(body), auth) + body[:10])
    started = time.monotonic()

    async def trickle() -> None:
        for byte in body[10:-1]:  # one byte every 0.1 s: never idle for long, never complete
            writer.write(bytes([byte]))
            await asyncio.sleep(0.1)

    feeder = asyncio.ensure_future(trickle() if how == "trickles" else asyncio.sleep(0))
    answer = await read_answer(reader, timeout=5)
    elapsed = time.monotonic() - started
    feeder.cancel()
    assert answer.status == 408, answer.body
    assert answer.error()["code"] == "REQUEST_TIMEOUT"
    assert answer.headers["connection"] == "close"
    assert 0.9 <= elapsed < 3, elapsed
    assert snapshot(conn) == before


async def test_a_body_in_time_is_served(served, raw, monkeypatch):
    monkeypatch.setattr(validation, "BODY_TIMEOUT_SECONDS", 1.0)
    port, auth = served
    body = json.dumps(topup_body()).encode()
    reader, writer = await raw(port)
    writer.write(posting_head(len(body), auth) + body[:10])
    await asyncio.sleep(0.5)
    writer.write(body[10:])
    assert (await read_answer(reader)).status == 201


# ---------------------------------------------------------------- idle and excess connections


async def test_idle_connections_are_closed_after_the_keepalive_timeout(db_url, raw, monkeypatch):
    monkeypatch.setattr(listener, "KEEPALIVE_TIMEOUT_SECONDS", 1.0)
    async with listening(create_app(db_url, pool_min_size=1, pool_max_size=2)) as (port, _):
        never_asked, _ = await raw(port)
        slow_headers, slow_writer = await raw(port)
        slow_writer.write(b"GET /api/v1/health HTTP/1.1\r\n")  # and the rest never comes
        after_answer, writer = await raw(port)
        writer.write(HEALTH)
        assert (await read_answer(after_answer)).status == 200
        started = time.monotonic()
        for reader in (never_asked, slow_headers, after_answer):
            assert await closed(reader, 4)
        assert time.monotonic() - started < 4


async def test_beyond_the_limit_the_oldest_idle_connection_makes_room(db_url, raw):
    async with listening(create_app(db_url, pool_min_size=1, pool_max_size=2), max_connections=2) as (port, runner):
        oldest, _ = await raw(port)
        await asyncio.sleep(0.05)
        second, _ = await raw(port)
        await asyncio.sleep(0.05)
        assert listener.open_connections(runner) == 2
        reader, writer = await raw(port)
        writer.write(HEALTH)
        assert (await read_answer(reader)).status == 200
        assert await closed(oldest, 2)
        assert not await closed(second, 0.3)
        assert listener.open_connections(runner) == 2


async def test_beyond_the_limit_with_every_connection_busy_is_503(db_url, secret, raw, monkeypatch):
    monkeypatch.setattr(validation, "BODY_TIMEOUT_SECONDS", 5.0)
    async with listening(create_app(db_url, pool_min_size=1, pool_max_size=2), max_connections=2) as (port, _):
        for _ in range(2):  # each is in a request: its body is being read
            _, writer = await raw(port)
            writer.write(posting_head(100, f"Authorization: Bearer {secret}\r\n".encode()) + b'{"user_id"')
        await asyncio.sleep(0.3)
        reader, _ = await raw(port)
        answer = await read_answer(reader, timeout=2)
        assert answer.status == 503
        assert answer.error()["code"] == "SERVICE_UNAVAILABLE"
        assert answer.headers["retry-after"] == "1" and answer.headers["server"] == "wallet-service"
        assert await closed(reader, 2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVE = """
import sys
from service import listener
from service.app import create_app

app = create_app(sys.argv[1], pool_min_size=2, pool_max_size=4)
listener.run(app, "127.0.0.1", int(sys.argv[2]), on_ready=lambda _: print("ready", flush=True))
"""


def test_1100_idle_sockets_do_not_take_the_listener_down(db_url, tmp_path):
    """listener.run in a subprocess whose open-file limit starts at soft 256 / hard HARD: it raises the soft
    limit to HARD, serves at most min(MAX_CONNECTIONS, HARD - FD_RESERVE) connections, and 1,100 idle
    sockets only evict each other: a normal request still gets its answer. Without the connection limit,
    accept() fails with EMFILE and the request hangs; without the raise, the limit would be 192."""
    hard = 1100
    ours_soft, ours_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if ours_soft < 2400:
        if ours_hard != resource.RLIM_INFINITY and ours_hard < 2400:
            pytest.skip(f"this test needs 2,400 open files, the hard limit is {ours_hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (2400, ours_hard))
    limit = min(MAX_CONNECTIONS, hard - FD_RESERVE)
    port = free_port()
    log = tmp_path / "serve.log"

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, db_url, str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            preexec_fn=limits,
        )
    sockets: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", log.read_text()
        limits_text = Path(f"/proc/{proc.pid}/limits").read_text()
        open_files = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits_text)
        assert open_files and open_files.groups() == (str(hard), str(hard)), limits_text
        for _ in range(1100):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            sockets.append(s)
        time.sleep(0.5)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/health")
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 200 and r.headers["Server"] == "wallet-service"
        evicted = 0
        for s in sockets:
            s.setblocking(False)
            try:
                evicted += s.recv(1, socket.MSG_PEEK) == b""
            except BlockingIOError:
                pass
            except ConnectionResetError:
                evicted += 1
        assert evicted >= 1100 - limit, (evicted, limit)
        fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
        print(f"1,100 idle sockets: {evicted} closed by the listener, {fds} descriptors open in it, limit {limit}")
        assert fds <= limit + FD_RESERVE, fds
    finally:
        for s in sockets:
            s.close()
        proc.terminate()
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
    assert "Traceback" not in log.read_text(), log.read_text()


# ---------------------------------------------------------------- no version banner


async def test_no_response_names_the_server_software(client, served, raw):
    answers = [
        await client.get("/api/v1/health"),
        await client.get("/api/v1/wallets/user_alice/balance"),
        await client.get("/api/v1/nope"),
        await client.put("/api/v1/wallets/topup"),
        await client.post("/api/v1/wallets/topup", json={}),
        await client.post("/api/v1/wallets/topup", data="x", headers={"Content-Type": "text/plain"}),
        await client.get("/api/v1/openapi.json"),
        await client.get("/api/v1/docs"),
    ]
    for r in answers:
        assert r.headers.getall("Server") == ["wallet-service"], (r.url, r.headers)
        assert not any("aiohttp" in v or "Python" in v for v in r.headers.values()), r.headers
    port, _ = served
    reader, writer = await raw(port)
    writer.write(MALFORMED["bad method"])
    assert (await read_answer(reader)).headers["server"] == "wallet-service"
