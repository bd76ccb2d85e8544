"""The final checks, once the load has stopped: the clients' records (Op) against the ledger, the ledger
against a model replayed from the committed operations, the API against the ledger, and wallet_verify().

check() gathers (lookups by reference id, the ledger, the API's balances) and runs every check; each check
is its own function over plain data, reporting through Stats.violation().
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import psycopg

from tools.torture.records import Op, Stats

Wallet = tuple[str, str]  # (user_id, asset_code)
Tx = dict[str, Any]  # a committed transaction with its player leg (see committed_in_db)


@dataclass
class Resolution:
    unknown: int = 0  # operations with no final answer at the end
    unknown_committed: int = 0
    unknown_not_committed: int = 0
    late_commits: int = 0  # refused (or ambiguous) answers, committed by an overlapping earlier attempt


async def check(
    ops: Mapping[str, Op], stats: Stats, session: aiohttp.ClientSession, base: str, db_url: str, run_id: str
) -> Resolution:
    """Every check, over the operations of run `run_id`, against the API at `base` and the database."""
    res = Resolution()
    looked_up = await resolve_unknown(ops, session, base, res)
    txs, balances = committed_in_db(db_url, run_id)
    check_committed(ops, txs, run_id, stats)
    check_operations(ops, txs, looked_up, stats, res)
    seen = check_model(ops, txs, balances, run_id, stats)
    check_refusals(ops, seen, stats)
    users = sorted({u for u, _ in balances if not u.startswith(f"{run_id}-probe")})
    api = {user: await get_json(session, f"{base}/wallets/{user}/balance") for user in users}
    check_api_balances(api, balances, stats)
    with psycopg.connect(db_url, autocommit=True) as conn:
        verify = conn.execute("SELECT * FROM wallet_verify()").fetchall()
        row = conn.execute("SELECT count(*) FROM wallets WHERE balance < 0").fetchone()
    check_verify(verify, row[0] if row else 0, stats)
    return res


async def resolve_unknown(
    ops: Mapping[str, Op], session: aiohttp.ClientSession, base: str, res: Resolution
) -> dict[str, dict[str, Any] | None]:
    """Operations whose outcome the client never learned: look them up by reference id."""
    unresolved = [op for op in ops.values() if not op.final]
    res.unknown = len(unresolved)
    looked_up: dict[str, dict[str, Any] | None] = {}
    for op in unresolved:
        looked_up[op.key] = await lookup(session, base, op.key)
        if looked_up[op.key] is None:
            res.unknown_not_committed += 1
        else:
            res.unknown_committed += 1
    return looked_up


async def lookup(session: aiohttp.ClientSession, base: str, key: str) -> dict[str, Any] | None:
    """GET /transactions/{key}: its body, or None when it does not exist (retried while unavailable)."""
    for _ in range(100):
        try:
            async with session.get(f"{base}/transactions/{key}", timeout=aiohttp.ClientTimeout(total=10)) as r:
                body = await r.json(content_type=None)
                if r.status == 200:
                    return dict(body)
                if r.status == 404 and body["error"]["code"] == "TRANSACTION_NOT_FOUND":
                    return None
        except (TimeoutError, aiohttp.ClientError, ValueError):
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"could not look up {key}")


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    for _ in range(100):
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as r:
                if r.status == 200:
                    return await r.json()
        except (TimeoutError, aiohttp.ClientError):
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"GET {url} kept failing")


def committed_in_db(url: str, run_id: str) -> tuple[dict[str, Tx], dict[Wallet, int]]:
    """Every transaction of this run (with its player leg, in commit order) and every player balance."""
    with psycopg.connect(url, autocommit=True) as conn:
        dups = conn.execute(
            "SELECT reference_id, count(*) FROM transactions WHERE reference_id LIKE %s GROUP BY 1 HAVING count(*) > 1",
            (run_id + "-%",),
        ).fetchall()
        rows = conn.execute(
            "SELECT t.reference_id, t.id::text, t.type::text, t.user_id, t.asset_code, t.amount,"
            "       e.id, e.amount, e.balance_after"
            "  FROM transactions t JOIN ledger_entries e ON e.transaction_id = t.id"
            "  JOIN wallets w ON w.id = e.wallet_id AND w.kind = 'PLAYER'"
            " WHERE t.reference_id LIKE %s ORDER BY e.id",
            (run_id + "-%",),
        ).fetchall()
        balances = conn.execute(
            "SELECT user_id, asset_code, balance FROM wallets WHERE user_id LIKE %s", (run_id + "-%",)
        ).fetchall()
    txs: dict[str, Tx] = {}
    for ref, txid, type_, user, asset_code, amount, entry_id, signed, after in rows:
        if ref in txs:
            txs[ref]["legs"] += 1
            continue
        txs[ref] = dict(
            transaction_id=txid,
            type=type_,
            user_id=user,
            asset_code=asset_code,
            amount=amount,
            entry_id=entry_id,
            signed=signed,
            balance_after=after,
            legs=1,
        )
    for ref, n in dups:
        txs.setdefault(ref, {})["duplicates"] = n
    return txs, {(u, a): b for u, a, b in balances}


def check_committed(ops: Mapping[str, Op], txs: Mapping[str, Tx], run_id: str, stats: Stats) -> None:
    """Every committed transaction: one per reference id, one player leg, sent by a client as committed."""
    for ref, tx in txs.items():
        if "duplicates" in tx:
            stats.violation(f"{ref}: {tx['duplicates']} transactions hold this reference id")
        if tx.get("legs", 1) != 1:
            stats.violation(f"{ref}: {tx['legs']} player legs")
        op = ops.get(ref)
        if op is None:
            if not ref.startswith(f"{run_id}-probe"):
                stats.violation(f"{ref}: committed but never sent")
            continue
        sent = dict(type=op.type, user_id=op.user_id, asset_code=op.asset_code, amount=op.amount)
        if {k: tx[k] for k in sent} != sent:
            stats.violation(f"{ref}: committed {tx}, sent {sent}")


def check_operations(
    ops: Mapping[str, Op],
    txs: Mapping[str, Tx],
    looked_up: Mapping[str, dict[str, Any] | None],
    stats: Stats,
    res: Resolution,
) -> None:
    """Every operation: its lookup agrees with the ledger; an acknowledged one is in the ledger as
    acknowledged; a refused one is not, unless an earlier or parallel attempt committed it."""
    for op in ops.values():
        tx = txs.get(op.key)
        if op.key in looked_up:
            found = looked_up[op.key]
            if (found is None) != (tx is None):
                stats.violation(f"{op.key}: lookup says {found}, the ledger says {tx}")
            if (
                found is not None
                and tx is not None
                and (found.get("transaction_id") != tx["transaction_id"] or found.get("amount") != op.amount)
            ):
                stats.violation(f"{op.key}: lookup answered {found}, the ledger holds {tx}")
        if op.acks:
            if tx is None:
                stats.violation(f"{op.key}: acknowledged {op.acks[0]} but not in the ledger (lost)")
                continue
            for ack in op.acks:
                if ack.get("transaction_id") != tx["transaction_id"] or ack.get("balance") != tx["balance_after"]:
                    stats.violation(f"{op.key}: acknowledged {ack}, the ledger holds {tx}")
        elif tx is not None and op.key not in looked_up:
            # refused at last, yet committed: only an earlier or parallel attempt still in flight can do that
            if op.ambiguous or op.overlapping:
                res.late_commits += 1
            else:
                stats.violation(f"{op.key}: answered {op.answers} but committed {tx}")


def check_model(
    ops: Mapping[str, Op], txs: Mapping[str, Tx], balances: Mapping[Wallet, int], run_id: str, stats: Stats
) -> dict[Wallet, set[int]]:
    """The model: replay every committed operation in commit order, wallet by wallet; every balance_after
    and every final balance must match it. Returns the balances each wallet went through."""
    running: dict[Wallet, int] = defaultdict(int)
    seen: dict[Wallet, set[int]] = defaultdict(lambda: {0})
    for ref, tx in sorted(txs.items(), key=lambda item: item[1].get("entry_id") or 0):
        if "entry_id" not in tx or ref not in ops:
            continue
        wallet = (tx["user_id"], tx["asset_code"])
        delta = -tx["amount"] if tx["type"] == "SPEND" else tx["amount"]
        if tx["signed"] != delta:
            stats.violation(f"{ref}: player leg {tx['signed']}, expected {delta}")
        running[wallet] += delta
        seen[wallet].add(running[wallet])
        if running[wallet] < 0:
            stats.violation(f"{ref}: balance of {wallet} would be {running[wallet]}")
        if tx["balance_after"] != running[wallet]:
            stats.violation(f"{ref}: balance_after {tx['balance_after']}, the model says {running[wallet]}")
    for wallet, balance in balances.items():
        if balance < 0:
            stats.violation(f"{wallet}: negative balance {balance}")
        if balance != running.get(wallet, 0) and not wallet[0].startswith(f"{run_id}-probe"):
            stats.violation(f"{wallet}: balance {balance}, the model says {running.get(wallet, 0)}")
    for wallet in running:
        if wallet not in balances:
            stats.violation(f"{wallet}: has transactions but no wallet")
    return seen


def check_refusals(ops: Mapping[str, Op], seen: Mapping[Wallet, set[int]], stats: Stats) -> None:
    """A refusal reports the balance it saw under the wallet's lock: one the wallet really had."""
    for op in ops.values():
        for _status, code, body in op.answers:
            if code == "INSUFFICIENT_FUNDS":
                details = body["error"].get("details", {})
                wallet = (op.user_id, op.asset_code)
                had = seen.get(wallet, {0})
                if (
                    details.get("required") != op.amount
                    or details.get("available", -1) >= op.amount
                    or details.get("available") not in had
                ):
                    stats.violation(f"{op.key}: refused with {details}; balances the wallet had: {sorted(had)[:20]}...")


def check_api_balances(api: Mapping[str, Any], balances: Mapping[Wallet, int], stats: Stats) -> None:
    """The API agrees with the ledger, for every player with a wallet (api: user -> GET .../balance body)."""
    for user, body in api.items():
        reported = {(user, b["asset_code"]): b["balance"] for b in body["balances"]}
        ledger = {w: b for w, b in balances.items() if w[0] == user}
        if reported != ledger:
            stats.violation(f"{user}: the API reports {reported}, the ledger holds {ledger}")


def check_verify(verify: list[tuple[Any, ...]], negative: int, stats: Stats) -> None:
    """wallet_verify() is empty, and no wallet holds a negative balance."""
    for invariant, subject, detail in verify:
        stats.violation(f"wallet_verify: {invariant} {subject}: {detail}")
    if negative:
        stats.violation(f"{negative} wallets with a negative balance")
