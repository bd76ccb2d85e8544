"""The final checks, once the load has stopped: the clients' records (Op) against the ledger and the holds, the
ledger against a model replayed from the committed operations, the API against the ledger, and
wallet_verify().

check() gathers (lookups by reference id, the ledger, the holds, the API's balances) and runs every check; each
check is its own function over plain data, reporting through Stats.violation().
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import psycopg

from tools.torture.records import AMBIGUOUS, Legs, Op, Stats

Wallet = tuple[str, str]  # (user_id, asset_code)
# A committed transaction of the run: transaction_id, type, user_id, original (the reversed transaction's
# reference id), created_at, entries: its player entries [(entry id, asset, signed amount, balance_after)]
Tx = dict[str, Any]
# A hold of the run: user_id, asset_code, amount, status (EXPIRED once past expires_at, as the API says),
# stored_status, created_at, expires_at, closed_at, captured_amount, capture_transaction_id
Hold = dict[str, Any]


@dataclass
class Resolution:
    unknown: int = 0  # operations with no final answer at the end
    unknown_committed: int = 0
    unknown_not_committed: int = 0
    late_commits: int = 0  # refused (or ambiguous) answers, committed by an overlapping earlier attempt
    holds: Counter[str] = field(default_factory=Counter)  # the run's holds by how they ended
    players_by_shard: dict[str, int] = field(default_factory=dict)  # sharded: the run's players on each shard


async def check(
    ops: Mapping[str, Op],
    stats: Stats,
    session: aiohttp.ClientSession,
    base: str,
    db_url: str,
    run_id: str,
    shard_urls: Sequence[str] = (),
) -> Resolution:
    """Every check, over the operations of run `run_id`, against the API at `base` and the database: one
    server's (db_url), or, when shard_urls are given, the shards' (each read directly, every player at home on
    one of them) behind the PL/Proxy database db_url, whose wallet_verify() checks every shard."""
    res = Resolution()
    looked_up = await resolve_unknown(ops, session, base, res)
    views = await hold_views(ops, session, base)
    if shard_urls:
        check_server_errors(ops, stats)
        txs, holds, balances = committed_in_shards(shard_urls, run_id, stats, res)
    else:
        txs, holds, balances = committed_in_db(db_url, run_id)
    res.holds.update(h["status"] for h in holds.values())
    check_committed(ops, txs, holds, run_id, stats)
    check_operations(ops, txs, holds, looked_up, stats, res)
    check_hold_views(views, holds, stats)
    check_reversals(ops, txs, stats)
    check_holds(holds, txs, stats)
    seen = check_model(txs, balances, run_id, stats)
    check_available(txs, holds, stats)
    check_refusals(ops, seen, stats)
    users = sorted({u for u, _ in balances if not u.startswith(f"{run_id}-probe")})
    api = {user: await get_json(session, f"{base}/wallets/{user}/balance") for user in users}
    check_api_balances(api, balances, stats)
    negative = 0
    for url in shard_urls or [db_url]:
        with psycopg.connect(url, autocommit=True) as conn:
            # the crash recoveries reset the counters that make autovacuum analyze: without fresh statistics,
            # wallet_verify's plans over the whole ledger came from when it was small (minutes, not seconds)
            conn.execute("ANALYZE")
            row = conn.execute("SELECT count(*) FROM wallets WHERE balance < 0").fetchone()
            negative += row[0] if row else 0
    with psycopg.connect(db_url, autocommit=True) as conn:  # the proxy's wallet_verify() checks every shard
        verify = conn.execute("SELECT * FROM wallet_verify()").fetchall()
    check_verify(verify, negative, stats)
    return res


def all_ops(ops: Mapping[str, Op]) -> Iterator[Op]:
    """Every operation: those with a reference id of their own, and each hold's captures and voids."""
    for op in ops.values():
        yield op
        yield from op.actions


# ---------------------------------------------------------------------------------------------- gathering


def lookup_path(op: Op) -> str:
    """What tells op's outcome by reference id: its transaction, its hold (a hold, a void), or its hold's
    capture transaction (a capture)."""
    return f"/holds/{op.key}" if op.kind in ("hold", "void") else f"/transactions/{op.key}"


async def resolve_unknown(
    ops: Mapping[str, Op], session: aiohttp.ClientSession, base: str, res: Resolution
) -> dict[int, dict[str, Any] | None]:
    """Operations whose outcome the client never learned: look them up by reference id (by id(op))."""
    unresolved = [op for op in all_ops(ops) if not op.final]
    res.unknown = len(unresolved)
    found_all = await lookup_all(session, base, [lookup_path(op) for op in unresolved])
    looked_up: dict[int, dict[str, Any] | None] = {}
    for op, found in zip(unresolved, found_all, strict=True):
        looked_up[id(op)] = found
        committed = found is not None
        if op.kind == "void":  # the hold is there anyway: voided or not
            committed = found is not None and found.get("status") == "VOIDED"
        if committed:
            res.unknown_committed += 1
        else:
            res.unknown_not_committed += 1
    return looked_up


async def hold_views(ops: Mapping[str, Op], session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    """What GET /holds/{reference_id} says of every acknowledged hold (None: not found)."""
    acked = [op.key for op in ops.values() if op.kind == "hold" and op.acks]
    return dict(zip(acked, await lookup_all(session, base, [f"/holds/{key}" for key in acked]), strict=True))


async def lookup_all(
    session: aiohttp.ClientSession, base: str, paths: list[str], parallel: int = 16
) -> list[dict[str, Any] | None]:
    """lookup() of every path, a few at a time."""
    gate = asyncio.Semaphore(parallel)

    async def one(path: str) -> dict[str, Any] | None:
        async with gate:
            return await lookup(session, base, path)

    return list(await asyncio.gather(*(one(path) for path in paths)))


async def lookup(session: aiohttp.ClientSession, base: str, path: str) -> dict[str, Any] | None:
    """GET path (/transactions/{key} or /holds/{key}): its body, or None when it does not exist (retried while
    unavailable)."""
    for _ in range(100):
        try:
            async with session.get(f"{base}{path}", timeout=aiohttp.ClientTimeout(total=10)) as r:
                body = await r.json(content_type=None)
                if r.status == 200:
                    return dict(body)
                if r.status == 404 and body["error"]["code"] in ("TRANSACTION_NOT_FOUND", "HOLD_NOT_FOUND"):
                    return None
        except (TimeoutError, aiohttp.ClientError, ValueError):
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"could not look up {path}")


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


def committed_in_db(url: str, run_id: str) -> tuple[dict[str, Tx], dict[str, Hold], dict[Wallet, int]]:
    """Every transaction of this run (with its player entries), every hold of the run, every player balance."""
    like = (run_id + "-%",)
    with psycopg.connect(url, autocommit=True) as conn:
        dups = conn.execute(
            "SELECT reference_id, count(*) FROM transactions WHERE reference_id LIKE %s GROUP BY 1 HAVING count(*) > 1",
            like,
        ).fetchall()
        rows = conn.execute(
            "SELECT t.reference_id, t.id::text, t.type::text, t.user_id, o.reference_id, t.created_at,"
            "       e.id, e.asset_code, e.amount, e.balance_after"
            "  FROM transactions t LEFT JOIN transactions o ON o.id = t.original_id"
            "  JOIN ledger_entries e ON e.transaction_id = t.id"
            "  JOIN wallets w ON w.id = e.wallet_id AND w.kind = 'PLAYER'"
            " WHERE t.reference_id LIKE %s ORDER BY e.id",
            like,
        ).fetchall()
        hold_rows = conn.execute(
            "SELECT reference_id, user_id, asset_code, amount,"
            "       CASE WHEN status = 'HELD' AND expires_at <= clock_timestamp() THEN 'EXPIRED' ELSE status::text END,"
            "       status::text, created_at, expires_at, closed_at, captured_amount, capture_transaction_id::text"
            "  FROM holds WHERE reference_id LIKE %s",
            like,
        ).fetchall()
        balances = conn.execute(
            "SELECT user_id, asset_code, balance FROM wallets WHERE user_id LIKE %s", like
        ).fetchall()
    txs: dict[str, Tx] = {}
    for ref, txid, type_, user, original, created_at, entry_id, asset_code, signed, after in rows:
        tx = txs.setdefault(
            ref,
            dict(transaction_id=txid, type=type_, user_id=user, original=original, created_at=created_at, entries=[]),
        )
        tx["entries"].append((entry_id, asset_code, signed, after))
    for ref, n in dups:
        txs.setdefault(ref, {})["duplicates"] = n
    names = [
        "user_id",
        "asset_code",
        "amount",
        "status",
        "stored_status",
        "created_at",
        "expires_at",
        "closed_at",
        "captured_amount",
        "capture_transaction_id",
    ]
    holds = {row[0]: dict(zip(names, row[1:], strict=True)) for row in hold_rows}
    return txs, holds, {(u, a): b for u, a, b in balances}


def committed_in_shards(
    urls: Sequence[str], run_id: str, stats: Stats, res: Resolution
) -> tuple[dict[str, Tx], dict[str, Hold], dict[Wallet, int]]:
    """committed_in_db() of every shard (s0, s1, ... in the order of urls), merged: a reference id committed on
    two shards counts as duplicated; a hold, or a wallet, on two shards is a violation. Each transaction
    and hold says its shard. Each shard numbers its own entries, but a wallet's entries are all on its
    player's shard, so their ids still order them."""
    txs: dict[str, Tx] = {}
    holds: dict[str, Hold] = {}
    balances: dict[Wallet, int] = {}
    where: dict[Wallet, str] = {}
    for n, url in enumerate(urls):
        shard = f"s{n}"
        shard_txs, shard_holds, shard_balances = committed_in_db(url, run_id)
        for ref, tx in shard_txs.items():
            tx["shard"] = shard
            if ref in txs:
                other = txs[ref]
                copies = other.get("duplicates", 1) + tx.get("duplicates", 1)
                stats.violation(f"{ref}: committed on {other.get('shard')} ({other}) and on {shard} ({tx})")
                other["duplicates"] = copies
            else:
                txs[ref] = tx
        for ref, hold in shard_holds.items():
            hold["shard"] = shard
            if ref in holds:
                stats.violation(f"{ref}: a hold on {holds[ref]['shard']} ({holds[ref]}) and on {shard} ({hold})")
            else:
                holds[ref] = hold
        for wallet, balance in shard_balances.items():
            if wallet in balances:
                stats.violation(f"{wallet}: a wallet on {where[wallet]} and on {shard}")
                continue
            balances[wallet], where[wallet] = balance, shard
        players = {user for user, _ in shard_balances if not user.startswith(f"{run_id}-probe")}
        res.players_by_shard[shard] = len(players)
    return txs, holds, balances


def legs_of(tx: Tx) -> Legs:
    """A committed transaction's legs as a request states them: (asset, amount) in asset order."""
    return tuple(sorted((asset_code, abs(signed)) for _, asset_code, signed, _ in tx.get("entries", [])))


def balances_of(tx: Tx) -> dict[str, int]:
    """The player's balance after the transaction, by asset."""
    return {asset_code: after for _, asset_code, _, after in tx.get("entries", [])}


# ---------------------------------------------------------------------------------------------- the checks


def check_committed(
    ops: Mapping[str, Op], txs: Mapping[str, Tx], holds: Mapping[str, Hold], run_id: str, stats: Stats
) -> None:
    """Every committed transaction and hold: one per reference id, sent by a client, committed as sent (every
    leg of a purchase, a reversal with its original, a capture under its hold's reference id, in the
    direction of its type)."""
    for ref, tx in txs.items():
        if "duplicates" in tx:
            stats.violation(f"{ref}: {tx['duplicates']} transactions hold this reference id")
        op = ops.get(ref)
        if op is None:
            if not ref.startswith(f"{run_id}-probe"):
                stats.violation(f"{ref}: committed but never sent")
            continue
        if "entries" not in tx:
            continue
        if tx["type"] == "CAPTURE":
            captures = [a for a in op.actions if a.kind == "capture"]
            if op.kind != "hold" or not captures:
                stats.violation(f"{ref}: a capture committed, but no capture of a hold was sent under this key")
                continue
            if legs_of(tx) not in {a.expected_legs for a in captures}:
                stats.violation(f"{ref}: captured {legs_of(tx)}, sent {[a.expected_legs for a in captures]}")
            sent: dict[str, Any] = dict(type="CAPTURE", user_id=op.user_id, original=None)
        else:
            sent = dict(type=op.type, user_id=op.user_id, original=op.original.key if op.original else None)
            if legs_of(tx) != op.expected_legs:
                stats.violation(f"{ref}: committed legs {legs_of(tx)}, sent {op.expected_legs}")
        if {k: tx[k] for k in sent} != sent:
            stats.violation(f"{ref}: committed {tx}, sent {sent}")
        credits = op.credits_player if tx["type"] != "CAPTURE" else False
        if any((signed > 0) != credits for _, _, signed, _ in tx["entries"]):
            stats.violation(f"{ref}: player entries {tx['entries']} of a {tx['type']} go the wrong way")
    for ref, hold in holds.items():
        op = ops.get(ref)
        if op is None or op.kind != "hold":
            stats.violation(f"{ref}: a hold exists that no client sent")
            continue
        sent = dict(user_id=op.user_id, asset_code=op.asset_code, amount=op.amount)
        if {k: hold[k] for k in sent} != sent:
            stats.violation(f"{ref}: hold {hold}, sent {sent}")


def check_operations(
    ops: Mapping[str, Op],
    txs: Mapping[str, Tx],
    holds: Mapping[str, Hold],
    looked_up: Mapping[int, dict[str, Any] | None],
    stats: Stats,
    res: Resolution,
) -> None:
    """Every operation: its lookup agrees with the database; an acknowledged one is there as acknowledged
    (exactly once); a refused one is not, unless an earlier or parallel attempt committed it."""
    for op in all_ops(ops):
        if op.kind == "hold":
            check_hold_op(op, holds.get(op.key), looked_up, stats, res)
        elif op.kind == "void":
            check_void_op(op, holds.get(op.key), looked_up, stats)
        else:
            check_posting_op(op, txs.get(op.key), looked_up, stats, res)


def check_posting_op(
    op: Op, tx: Tx | None, looked_up: Mapping[int, dict[str, Any] | None], stats: Stats, res: Resolution
) -> None:
    """A posting, purchase, reversal or capture against its transaction."""
    if tx is not None and tx["type"] != op.type:
        tx = None  # (a capture's key is its hold's: only a CAPTURE is its transaction)
    if id(op) in looked_up:
        found = looked_up[id(op)]
        if (found is None) != (tx is None):
            stats.violation(f"{op.key}: lookup says {found}, the ledger says {tx}")
        if found is not None and tx is not None:
            legs = tuple((leg.get("asset_code"), leg.get("amount")) for leg in found.get("legs") or [])
            if found.get("transaction_id") != tx["transaction_id"] or legs != legs_of(tx):
                stats.violation(f"{op.key}: lookup answered {found}, the ledger holds {tx}")
            single = None if len(legs) != 1 else legs[0][1]
            if op.kind != "capture" and op.kind != "purchase" and found.get("amount") != single:
                stats.violation(f"{op.key}: lookup answered amount {found.get('amount')}, the ledger holds {tx}")
    if op.acks:
        if tx is None:
            stats.violation(f"{op.key}: {op.kind} acknowledged {op.acks[0]} but not in the ledger (lost)")
            return
        for ack in op.acks:
            if "legs" in ack:
                acked = {leg.get("asset_code"): leg.get("balance") for leg in ack["legs"]}
            else:
                acked = {ack.get("asset_code"): ack.get("balance")}
            if ack.get("transaction_id") != tx["transaction_id"] or acked != balances_of(tx):
                stats.violation(f"{op.key}: acknowledged {ack}, the ledger holds {tx}")
    elif tx is not None and id(op) not in looked_up:
        if op.kind == "capture" and op.hold is not None and any(a.acks for a in op.hold.actions if a.kind == "capture"):
            return  # another capture of the hold (a replay) was acknowledged: that one is checked
        # refused at last, yet committed: only an earlier or parallel attempt still in flight can do that
        if op.ambiguous or op.overlapping:
            res.late_commits += 1
        else:
            stats.violation(f"{op.key}: answered {op.answers} but committed {tx}")


def check_hold_op(
    op: Op,
    hold: Hold | None,
    looked_up: Mapping[int, dict[str, Any] | None],
    stats: Stats,
    res: Resolution,
) -> None:
    """A hold: there as acknowledged, in the state its captures and voids were told (or a later legal one)."""
    if id(op) in looked_up:
        found = looked_up[id(op)]
        if (found is None) != (hold is None):
            stats.violation(f"{op.key}: lookup says {found}, the holds say {hold}")
        elif found is not None and hold is not None:
            got = {k: found.get(k) for k in ("user_id", "asset_code", "amount", "captured_amount")}
            if got != {k: hold[k] for k in got} or not later_or_same(found.get("status"), hold["status"]):
                stats.violation(f"{op.key}: lookup answered {found}, the holds say {hold}")
    if op.acks:
        if hold is None:
            stats.violation(f"{op.key}: hold acknowledged {op.acks[0]} but not in the holds (lost)")
            return
        expires_at = op.expires_at()
        if expires_at is None or abs((hold["expires_at"] - expires_at).total_seconds()) >= 0.001:
            stats.violation(f"{op.key}: acknowledged expiring at {expires_at}, the hold says {hold['expires_at']}")
        for ack in op.acks:  # a replay tells the state then: it may only have moved on since
            if not later_or_same(ack.get("status"), hold["status"]):
                stats.violation(f"{op.key}: acknowledged as {ack.get('status')}, the hold is {hold['status']}")
    elif hold is not None and id(op) not in looked_up:
        if op.ambiguous or op.overlapping:
            res.late_commits += 1
        else:
            stats.violation(f"{op.key}: answered {op.answers} but the hold exists: {hold}")
    if hold is None:
        return
    captures = [a for a in op.actions if a.kind == "capture"]
    for capture in captures:
        if capture.acks and (
            hold["status"] != "CAPTURED"
            or hold["captured_amount"] != capture.acks[0].get("amount")
            or hold["capture_transaction_id"] != capture.acks[0].get("transaction_id")
        ):
            stats.violation(f"{op.key}: capture acknowledged {capture.acks[0]}, the hold is {hold}")
        if "HOLD_EXPIRED" in capture.codes() and hold["status"] == "CAPTURED":
            stats.violation(f"{op.key}: a capture was refused as expired, yet the hold is captured: {hold}")
    if hold["status"] == "CAPTURED" and not captures:
        stats.violation(f"{op.key}: captured, but no client sent a capture: {hold}")
    if hold["status"] == "VOIDED" and not any(a.kind == "void" for a in op.actions):
        stats.violation(f"{op.key}: voided, but no client sent a void: {hold}")


def later_or_same(told: Any, now: str) -> bool:
    """A hold's state as told earlier is its state now, or it was HELD (and ended since)."""
    return told in (now, "HELD")


def check_hold_views(views: Mapping[str, dict[str, Any] | None], holds: Mapping[str, Hold], stats: Stats) -> None:
    """GET /holds/{reference_id} of every acknowledged hold agrees with the holds table."""
    for ref, view in views.items():
        hold = holds.get(ref)
        if view is None or hold is None:
            stats.violation(f"{ref}: acknowledged hold: the API says {view}, the holds table {hold}")
            continue
        got = {k: view.get(k) for k in ("user_id", "asset_code", "amount", "captured_amount")}
        if got != {k: hold[k] for k in got} or not later_or_same(view.get("status"), hold["status"]):
            stats.violation(f"{ref}: the API says {view}, the holds table {hold}")


def check_void_op(op: Op, hold: Hold | None, looked_up: Mapping[int, dict[str, Any] | None], stats: Stats) -> None:
    """A void: the hold ended as the void said (VOIDED, or EXPIRED when it had expired)."""
    if hold is None:
        if op.acks or looked_up.get(id(op)) is not None:
            stats.violation(f"{op.key}: a void was answered {op.acks or looked_up.get(id(op))}, but no hold exists")
        return
    found = looked_up.get(id(op))
    if found is not None and not later_or_same(found.get("status"), hold["status"]):
        stats.violation(f"{op.key}: lookup answered {found}, the hold is {hold}")
    for ack in op.acks:
        if ack.get("status") != hold["status"]:
            stats.violation(f"{op.key}: void answered {ack}, the hold is {hold}")


def check_reversals(ops: Mapping[str, Op], txs: Mapping[str, Tx], stats: Stats) -> None:
    """The reversals of each original never took back more than it moved, in any asset; a refusal for that
    reason quoted the original and what its reversals had taken."""
    reversed_: dict[tuple[str, str], int] = defaultdict(int)
    for tx in txs.values():
        if tx.get("type") == "REVERSAL" and tx.get("original"):
            for asset_code, amount in legs_of(tx):
                reversed_[(tx["original"], asset_code)] += amount
    for (original, asset_code), amount in reversed_.items():
        moved = dict(legs_of(txs[original])) if original in txs else {}
        if amount > moved.get(asset_code, 0):
            stats.violation(f"{original}: reversals took back {amount} {asset_code}, it moved {moved}")
    for op in ops.values():
        if op.kind != "reverse" or op.original is None:
            continue
        for _status, code, body in op.answers:
            if code != "REVERSAL_EXCEEDS_ORIGINAL":
                continue
            d = body["error"].get("details", {})
            moved = dict(op.original.expected_legs)
            requested = dict(op.expected_legs).get(d.get("asset_code"))
            if (
                d.get("original_amount") != moved.get(d.get("asset_code"))
                or d.get("requested") != requested
                or not isinstance(d.get("reversed"), int)
                or d["reversed"] + (requested or 0) <= d["original_amount"]
                or d["reversed"] > reversed_[(op.original.key, d["asset_code"])]
            ):
                stats.violation(f"{op.key}: refused as exceeding {op.original.key} with {d}")


def check_holds(holds: Mapping[str, Hold], txs: Mapping[str, Tx], stats: Stats) -> None:
    """A captured hold: captured no more than it held, before it expired, as a CAPTURE under its reference id."""
    for ref, hold in holds.items():
        if hold["status"] != "CAPTURED":
            if ref in txs:
                stats.violation(f"{ref}: {hold['status']} hold, yet a transaction holds its key: {txs[ref]}")
            continue
        tx = txs.get(ref)
        if tx is None or tx.get("type") != "CAPTURE" or tx["transaction_id"] != hold["capture_transaction_id"]:
            stats.violation(f"{ref}: captured hold {hold}, its transaction is {tx}")
            continue
        if hold["captured_amount"] > hold["amount"] or legs_of(tx) != ((hold["asset_code"], hold["captured_amount"]),):
            stats.violation(f"{ref}: hold {hold} captured as {legs_of(tx)}")
        if tx["created_at"] >= hold["expires_at"]:
            stats.violation(f"{ref}: captured at {tx['created_at']}, after the hold expired at {hold['expires_at']}")


def check_model(
    txs: Mapping[str, Tx], balances: Mapping[Wallet, int], run_id: str, stats: Stats
) -> dict[Wallet, set[int]]:
    """The model: replay every committed entry in commit order, wallet by wallet; every balance_after and every
    final balance must match it. Returns the balances each wallet went through."""
    running: dict[Wallet, int] = defaultdict(int)
    seen: dict[Wallet, set[int]] = defaultdict(lambda: {0})
    entries = sorted((entry, ref, tx["user_id"]) for ref, tx in txs.items() for entry in tx.get("entries", []))
    for (_entry_id, asset_code, signed, after), ref, user in entries:
        wallet = (user, asset_code)
        running[wallet] += signed
        seen[wallet].add(running[wallet])
        if running[wallet] < 0:
            stats.violation(f"{ref}: balance of {wallet} would be {running[wallet]}")
        if after != running[wallet]:
            stats.violation(f"{ref}: balance_after {after}, the model says {running[wallet]}")
    for wallet, balance in balances.items():
        if balance < 0:
            stats.violation(f"{wallet}: negative balance {balance}")
        if balance != running.get(wallet, 0) and not wallet[0].startswith(f"{run_id}-probe"):
            stats.violation(f"{wallet}: balance {balance}, the model says {running.get(wallet, 0)}")
    for wallet in running:
        if wallet not in balances:
            stats.violation(f"{wallet}: has transactions but no wallet")
    return seen


def check_available(txs: Mapping[str, Tx], holds: Mapping[str, Hold], stats: Stats) -> None:
    """Available (balance minus active holds) never went negative: replay each wallet's entries and holds in
    time order (all taken under the wallet's lock, so their times order them; the postings of one batch share
    one time, and their entry ids order them); a hold counts from its creation until it is captured, voided,
    or expires."""
    # (at, order, entry id or 0, delta, what)
    events: dict[Wallet, list[tuple[datetime, int, int, int, str]]] = defaultdict(list)
    for ref, tx in txs.items():
        for entry_id, asset_code, signed, _ in tx.get("entries", []):
            events[(tx["user_id"], asset_code)].append((tx["created_at"], 1, entry_id, signed, ref))
    for ref, hold in holds.items():
        wallet = (hold["user_id"], hold["asset_code"])
        end = min(hold["expires_at"], hold["closed_at"] or hold["expires_at"])
        events[wallet].append((hold["created_at"], 2, 0, -hold["amount"], ref))
        events[wallet].append((end, 0, 0, hold["amount"], ref))  # (released before what happens at that instant)
    for wallet, timeline in events.items():
        available = 0
        for at, _order, _entry, delta, ref in sorted(timeline):
            available += delta
            if available < 0:
                stats.violation(f"{wallet}: available {available} at {at} ({ref})")
                break


def check_refusals(ops: Mapping[str, Op], seen: Mapping[Wallet, set[int]], stats: Stats) -> None:
    """A refusal for funds reports what it saw under the wallet's lock: a balance the wallet really had, what
    active holds reserved of it, and what was left: less than required."""
    for op in all_ops(ops):
        for _status, code, body in op.answers:
            if code != "INSUFFICIENT_FUNDS":
                continue
            d = body["error"].get("details", {})
            wallet = (op.user_id, d.get("asset_code"))
            required = dict(op.expected_legs).get(d.get("asset_code"))
            had = seen.get(wallet, {0})
            available, held = d.get("available"), d.get("held")
            if (
                d.get("required") != required
                or not isinstance(available, int)
                or not isinstance(held, int)
                or available >= (required or 0)
                or held < 0
                or available + held not in had
            ):
                stats.violation(f"{op.key}: refused with {d}; balances the wallet had: {sorted(had)[:20]}...")


def check_api_balances(api: Mapping[str, Any], balances: Mapping[Wallet, int], stats: Stats) -> None:
    """The API agrees with the ledger, for every player with a wallet (api: user -> GET .../balance body), and
    reports available = balance - held, never negative."""
    for user, body in api.items():
        reported = {(user, b["asset_code"]): b["balance"] for b in body["balances"]}
        ledger = {w: b for w, b in balances.items() if w[0] == user}
        if reported != ledger:
            stats.violation(f"{user}: the API reports {reported}, the ledger holds {ledger}")
        for b in body["balances"]:
            held, available = b.get("held"), b.get("available")
            if not isinstance(held, int) or held < 0 or available != b["balance"] - held or available < 0:
                stats.violation(f"{user}: the API reports {b}")


def check_server_errors(ops: Mapping[str, Op], stats: Stats) -> None:
    """Sharded: no answer was a 500 (the proxy raises what it cannot map as XX000: a bug of the proxy, where one
    server answers or says 503). Each operation so answered is named with the answer; a batch answered 500 is
    counted (its request is in the clients' records)."""
    for op in all_ops(ops):
        for status, code, body in op.answers:
            if status == AMBIGUOUS and "500" in str(code).split():
                stats.violation(f"{op.key}: {op.kind} {op.body()} answered {code} {body}")
    for answer, count in stats.answers.items():
        if answer.startswith("batch") and " 500" in answer:
            stats.violation(f"{count} batches answered {answer}")


def check_verify(verify: list[tuple[Any, ...]], negative: int, stats: Stats) -> None:
    """wallet_verify() is empty, and no wallet holds a negative balance."""
    for invariant, subject, detail in verify:
        stats.violation(f"wallet_verify: {invariant} {subject}: {detail}")
    if negative:
        stats.violation(f"{negative} wallets with a negative balance")
