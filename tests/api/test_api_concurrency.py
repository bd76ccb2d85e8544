"""Concurrent identical requests over HTTP: exactly one posting, every other caller gets the replay."""

from __future__ import annotations

import asyncio

import pytest

from service.app import create_app
from tests.api.helpers import snapshot, topup_body, violations


@pytest.fixture
async def client(aiohttp_client, app_url, auth_headers):
    return await aiohttp_client(create_app(app_url, pool_min_size=1, pool_max_size=10), headers=auth_headers)


@pytest.mark.parametrize(
    "operation,extra", [("topup", {}), ("bonus", {"bonus_type": "T"}), ("spend", {"item_id": "sword"})]
)
async def test_twenty_identical_requests_post_once(client, conn, operation, extra):
    before = snapshot(conn)
    body = topup_body(reference_id=f"race_{operation}", amount=70, **extra)
    responses = await asyncio.gather(*(client.post(f"/api/v1/wallets/{operation}", json=body) for _ in range(20)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 19 + [201]
    bodies = [await r.json() for r in responses]
    assert len({b["transaction_id"] for b in bodies}) == 1
    assert len({b["balance"] for b in bodies}) == 1
    assert all(r.headers.get("Idempotent-Replayed") == "true" for r in responses if r.status == 200)
    assert (
        conn.execute("SELECT count(*) FROM transactions WHERE reference_id = %s", (body["reference_id"],)).fetchone()[0]
        == 1
    )
    assert snapshot(conn)[0] == before[0] + 1
    assert violations(conn) == []


async def test_concurrent_spends_never_overdraw(client, conn):
    # bob has 50000: 30 spends of 2000 race; exactly 25 fit
    responses = await asyncio.gather(
        *(
            client.post(
                "/api/v1/wallets/spend",
                json=topup_body(user_id="user_bob", amount=2000, reference_id=f"bob_{i}", item_id="i"),
            )
            for i in range(30)
        )
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] * 25 + [422] * 5
    bal = await (await client.get("/api/v1/wallets/user_bob/balance?asset_code=GOLD_COINS")).json()
    assert bal["balances"][0]["balance"] == 0
    assert violations(conn) == []
