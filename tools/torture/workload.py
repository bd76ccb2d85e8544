"""The clients: random top-ups, bonuses, spends, two-asset purchases, reversals (several clients at once on one
original, whole and in part), holds with a short expiry (captured, voided, or left to expire while the
client keeps trying to capture) and batches (POST /wallets/batch of several top-ups, bonuses and spends, some
invalid, some sending again a key used earlier or earlier in the same batch), over hot and cold players,
retried like real clients retry (the same reference id again; a batch: the same request again), with every
answer judged as it arrives."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aiohttp

from tools.torture.options import Options
from tools.torture.records import (
    AMBIGUOUS,
    ASSETS,
    CONFLICT,
    NEW,
    POSTINGS,
    REPLAY,
    Answer,
    Batch,
    BatchItem,
    Op,
    Stats,
)

# how often a client starts each kind of operation
KINDS = {"topup": 3.0, "bonus": 2.0, "spend": 5.0, "purchase": 2.0, "reverse": 1.5, "hold": 1.5, "batch": 1.5}
BATCH_KINDS = {"topup": 3.0, "bonus": 2.0, "spend": 5.0}  # the operations of a batch, as often as alone
BATCH_SIZES = (1, 8)  # operations of a new batch, at least and at most (before the keys it sends again)
PURCHASE_ASSETS = ("GOLD_COINS", "DIAMONDS")
HOLD_STATES = ("HELD", "CAPTURED", "VOIDED", "EXPIRED")
REVERSIBLE_KEPT = 5000  # the acknowledged originals a reversal picks from (the most recent ones)


class Workload:
    """`clients` concurrent clients against the API at `base` (http://host:port/api/v1)."""

    def __init__(self, options: Options, rng: random.Random, run_id: str, base: str, stats: Stats):
        self.o, self.rng, self.run_id, self.base, self.stats = options, rng, run_id, base, stats
        self.hot = [f"{run_id}-hot{i}" for i in range(options.hot_players)]
        self.cold = [f"{run_id}-cold{i}" for i in range(options.cold_players)]
        self.ops: dict[str, Op] = {}  # by reference id: postings, purchases, reversals, holds
        self.reversible: list[Op] = []  # acknowledged spends, purchases, top-ups and bonuses
        self.batches: list[Batch] = []
        self.counter = 0
        self.stop_new = asyncio.Event()  # no new operations after this
        self.give_up_at = float("inf")  # retries of pending operations stop at this time

    # ------------------------------------------------------------------ making operations

    def new_key(self, client: int) -> str:
        self.counter += 1
        return f"{self.run_id}-c{client}-{self.counter}"

    def register(self, op: Op) -> Op:
        if op.hold is not None:
            op.hold.actions.append(op)
        else:
            self.ops[op.key] = op
        self.stats.operations[op.kind] += 1
        return op

    def new_op(self, client: int, kind: str) -> Op:
        rng = self.rng
        hot = rng.random() < 0.7 or not self.cold
        user = rng.choice(self.hot) if hot else rng.choice(self.cold)
        asset_code = rng.choice(ASSETS) if rng.random() < 0.4 else "GOLD_COINS"
        key = self.new_key(client)
        if kind == "purchase":
            # both assets at once, listed in either order; mostly affordable, some not
            legs = [
                (a, rng.choice([rng.randint(1, 100), rng.randint(1, 100), rng.randint(50, 2000)]))
                for a in PURCHASE_ASSETS
            ]
            rng.shuffle(legs)
            return self.register(Op(key, kind, user, None, None, f"bundle_{rng.randint(1, 20)}", legs=tuple(legs)))
        if kind == "hold":
            amount = rng.choice([rng.randint(1, 100), rng.randint(1, 300), rng.randint(100, 3000)])
            item = rng.choice([None, f"item_{rng.randint(1, 50)}"])
            return self.register(Op(key, kind, user, asset_code, amount, item, expires_in=rng.randint(1, 3)))
        if kind == "spend":
            # mostly affordable, some far too large (must fail), some about the size of a balance
            amount = rng.choice(
                [rng.randint(1, 200), rng.randint(1, 200), rng.randint(100, 3000), rng.randint(10**6, 10**9)]
            )
            value = f"item_{rng.randint(1, 50)}"
        elif kind == "topup":
            amount, value = rng.randint(1, 1000), rng.choice(["stripe", "paypal", "apple_pay"])
        else:
            amount, value = rng.randint(1, 100), rng.choice(["DAILY_LOGIN", "REFERRAL", "LEVEL_UP"])
        return self.register(Op(key, kind, user, asset_code, amount, value))

    # ------------------------------------------------------------------ sending and judging

    async def send(self, session: aiohttp.ClientSession, op: Op, body: dict[str, Any] | None, timeout: float) -> Answer:
        """One attempt: (status, error code, body), or (AMBIGUOUS, reason, None)."""
        self.stats.attempts += 1
        answer: Answer
        try:
            async with session.post(
                f"{self.base}{op.path}", json=body, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                payload = await resp.json(content_type=None)
                code = payload.get("error", {}).get("code") if isinstance(payload, dict) else None
                replayed = resp.headers.get("Idempotent-Replayed") == "true"
                # (a void answers 200 when it voids: only its replays say so)
                if resp.status == 200 and not replayed and op.kind != "void":
                    self.stats.violation(f"{op.key}: 200 without Idempotent-Replayed: true")
                if replayed and (resp.status != 200 or (op.kind == "void" and payload.get("status") != "VOIDED")):
                    self.stats.violation(f"{op.key}: {op.kind} answered {resp.status} {payload} as a replay")
                if resp.status >= 500:
                    answer = (AMBIGUOUS, f"{resp.status} {code}", payload)
                else:
                    answer = (resp.status, code, payload)
        except TimeoutError:
            answer = (AMBIGUOUS, "timeout", None)
        except (aiohttp.ClientError, ValueError) as exc:  # refused, reset, truncated, not JSON
            answer = (AMBIGUOUS, type(exc).__name__, None)
        self.stats.answers[f"{answer[0]} {answer[1]}" if answer[1] else str(answer[0])] += 1
        return answer

    def expected_ack(self, op: Op) -> dict[str, Any]:
        """The fields an acknowledgement of op must carry as they are."""
        if op.kind in POSTINGS:
            return {
                "user_id": op.user_id,
                "asset_code": op.asset_code,
                "amount": op.amount,
                "transaction_type": op.type,
            }
        if op.kind == "purchase":
            return {"user_id": op.user_id, "transaction_type": "PURCHASE", "item_id": op.value}
        if op.kind == "reverse":
            assert op.original is not None
            return {"user_id": op.user_id, "transaction_type": "REVERSAL", "original_reference_id": op.original.key}
        if op.kind == "hold":
            return {"reference_id": op.key, "user_id": op.user_id, "asset_code": op.asset_code, "amount": op.amount}
        if op.kind == "capture":
            ((asset_code, amount),) = op.expected_legs
            return {
                "user_id": op.user_id,
                "asset_code": asset_code,
                "amount": amount,
                "transaction_type": "CAPTURE",
                "hold_reference_id": op.key,
            }
        return {"reference_id": op.key}

    def check_ack(self, op: Op, body: dict[str, Any], status: int, at: float) -> None:
        expected = self.expected_ack(op)
        got = {k: body.get(k) for k in expected}
        if got != expected:
            self.stats.violation(f"{op.key}: {op.kind} acknowledged {got}, sent {expected}")
        first = op.acks[0] if op.acks else None
        if op.kind in ("purchase", "reverse"):
            legs = body.get("legs")
            sent = [list(leg) for leg in op.expected_legs]
            if not isinstance(legs, list) or [[leg.get("asset_code"), leg.get("amount")] for leg in legs] != sent:
                self.stats.violation(f"{op.key}: {op.kind} acknowledged legs {legs}, expected {sent}")
            elif any(not isinstance(leg.get("balance"), int) or leg["balance"] < 0 for leg in legs):
                self.stats.violation(f"{op.key}: acknowledged balances {legs}")
            if first is not None and legs != first.get("legs"):
                self.stats.violation(f"{op.key}: acknowledged legs {legs} and {first.get('legs')}")
        elif op.kind == "hold":
            states = ("HELD",) if status == 201 else HOLD_STATES  # a replay tells the hold as it is now
            if body.get("status") not in states:
                self.stats.violation(f"{op.key}: hold acknowledged ({status}) as {body.get('status')}")
            if not isinstance(body.get("available"), int) or body["available"] < 0:
                self.stats.violation(f"{op.key}: hold acknowledged available {body.get('available')!r}")
            if first is not None and body.get("expires_at") != first.get("expires_at"):
                self.stats.violation(f"{op.key}: acknowledged expiring at {body.get('expires_at')} and {first}")
        elif op.kind == "void":
            self.check_void(op, body, at)
        else:  # a posting or a capture: one balance
            if not isinstance(body.get("balance"), int) or body["balance"] < 0:
                self.stats.violation(f"{op.key}: acknowledged balance {body.get('balance')!r}")
            if first is not None and body.get("balance") != first.get("balance"):
                self.stats.violation(f"{op.key}: acknowledged balance {body.get('balance')} and {first.get('balance')}")
        if op.kind == "capture" and op.after_expiry:
            self.stats.violation(f"{op.key}: captured although sent only after the hold expired: {body}")
        if first is not None and body.get("transaction_id") != first.get("transaction_id"):
            self.stats.violation(
                f"{op.key}: acknowledged as {body.get('transaction_id')} and as {first.get('transaction_id')}"
            )
        op.acks.append(body)
        op.ack_statuses.append(status)

    def check_void(self, op: Op, body: dict[str, Any], at: float) -> None:
        state = body.get("status")
        if state not in ("VOIDED", "EXPIRED") or not isinstance(body.get("available"), int) or body["available"] < 0:
            self.stats.violation(f"{op.key}: void answered {body}")
        if state == "EXPIRED":
            self.expired_by(op, at, "void answered EXPIRED")
        if op.acks and state != op.acks[0].get("status"):
            self.stats.violation(f"{op.key}: void answered {state}, then {op.acks[0].get('status')}")

    def expired_by(self, op: Op, at: float, what: str) -> None:
        """What says the hold expired arrived at `at`: no earlier than its expires_at (the same clock)."""
        assert op.hold is not None
        expires_at = op.hold.expires_at()
        if expires_at is None or at < expires_at.timestamp() - 0.001:
            self.stats.violation(f"{op.key}: {what} at {at:.3f}, before the hold's expires_at {expires_at}")

    def judge(self, op: Op, answer: Answer) -> bool:
        """Record an answer; True when it is final (no retry needed)."""
        status, code, body = answer
        at = time.time()
        op.answers.append(answer)
        op.answered_at.append(at)
        if op.invalid is not None and status != AMBIGUOUS:  # an invalid batch operation: refused, naming its field
            error = body.get("error") if isinstance(body, dict) else None
            errors = error.get("details", {}).get("errors") if isinstance(error, dict) else None
            fields = [e.get("field") for e in errors] if isinstance(errors, list) else None
            if (status, code) != (400, "VALIDATION_ERROR") or fields != [op.invalid]:
                self.stats.violation(f"{op.key}: invalid {op.invalid} answered {status} {code} {body}")
            return True
        if isinstance(status, int) and status in (200, 201):
            self.check_ack(op, body, status, at)
            return True
        if status == AMBIGUOUS:
            return False
        refusals = {
            "spend": {(422, "INSUFFICIENT_FUNDS"), (404, "WALLET_NOT_FOUND")},
            "purchase": {(422, "INSUFFICIENT_FUNDS"), (404, "WALLET_NOT_FOUND")},
            "hold": {(422, "INSUFFICIENT_FUNDS"), (404, "WALLET_NOT_FOUND")},
            # the other reversals of the original took what is left; a chargeback of credits spent already
            "reverse": {(422, "REVERSAL_EXCEEDS_ORIGINAL")}
            | ({(422, "INSUFFICIENT_FUNDS")} if op.credits_player is False else set()),
            "capture": {(409, "HOLD_EXPIRED")},
        }.get(op.kind, set())
        if (status, code) in refusals:
            if code == "HOLD_EXPIRED":
                self.expired_by(op, at, "capture refused as expired")
            return True
        self.stats.violation(f"{op.key}: unexpected answer {status} {code} {body} to a {op.kind} of {op.amount}")
        return True

    async def execute(self, session: aiohttp.ClientSession, op: Op) -> None:
        """Send op until it gets a final answer, retrying under the same reference id (a purchase's price in
        another order each time: the same request)."""
        rng, backoff, attempt = self.rng, 0.05, 0
        while True:
            timeout = rng.uniform(self.o.request_timeout / 10, self.o.request_timeout)
            if rng.random() < 0.03:  # an impatient client: gives up while the service is still working
                timeout = rng.uniform(0.001, 0.05)
            answers: list[Answer]
            if rng.random() < 0.05:  # a double click: two identical attempts in flight at once
                self.stats.overlapping_sends += 1
                op.overlapping = True
                body = op.body(attempt)
                answers = list(
                    await asyncio.gather(self.send(session, op, body, timeout), self.send(session, op, body, timeout))
                )
            else:
                answers = [await self.send(session, op, op.body(attempt), timeout)]
            attempt += 1
            final = [self.judge(op, a) for a in answers]
            op.final = any(final)
            if op.final or time.monotonic() > self.give_up_at:
                return
            if rng.random() < 0.05:  # the client crashed: it never learns the outcome (checked by lookup)
                self.stats.abandoned += 1
                return
            self.stats.retries += 1
            await asyncio.sleep(rng.uniform(0, backoff))
            backoff = min(backoff * 2, 1.0)

    # ------------------------------------------------------------------ the economy operations

    async def reversals(self, session: aiohttp.ClientSession, client: int) -> None:
        """Reverse an acknowledged original: one client, or two or three at once with different keys (whole,
        or in part for a single-asset original); together they may never take back more than it moved."""
        rng = self.rng
        original = rng.choice(self.reversible)
        ops = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            amount = None
            if original.kind != "purchase" and rng.random() < 0.6:
                amount = rng.randint(1, max((original.amount or 1) // 2, 1)) if rng.random() < 0.7 else original.amount
            reason = rng.choice(["refund", "chargeback", "goodwill", "fraud"])
            key = self.new_key(client)
            ops.append(
                self.register(
                    Op(key, "reverse", original.user_id, original.asset_code, amount, reason, original=original)
                )
            )
        if len(ops) > 1:
            self.stats.concurrent_reversals += 1
        await asyncio.gather(*(self.execute(session, op) for op in ops))

    async def settle(self, session: aiohttp.ClientSession, hold: Op) -> None:
        """An acknowledged hold: captured (whole or in part) or voided soon, or left to expire, after which the
        client still tries to capture it (every attempt must be refused as expired) and sometimes voids it."""
        rng = self.rng
        fate = rng.choices(["capture", "void", "expire"], weights=[45, 25, 30])[0]
        expires_at = hold.expires_at()
        if expires_at is None:
            return
        after_expiry = fate == "expire"
        if after_expiry:
            await asyncio.sleep(max(expires_at.timestamp() - time.time(), 0) + rng.uniform(0.01, 0.3))
        else:
            await asyncio.sleep(rng.uniform(0, 0.3))  # near expiry sometimes, with 1 s holds
        kind = "void" if fate == "void" else "capture"
        amount = None
        if kind == "capture" and rng.random() < 0.4:
            amount = rng.randint(1, hold.amount or 1)
        actions = [
            Op(hold.key, kind, hold.user_id, hold.asset_code, amount, None, hold=hold, after_expiry=after_expiry)
        ]
        if after_expiry and rng.random() < 0.3:
            actions.append(
                Op(hold.key, "void", hold.user_id, hold.asset_code, None, None, hold=hold, after_expiry=True)
            )
        for action in actions:
            await self.execute(session, self.register(action))
            if action.acks and rng.random() < 0.2:  # the same capture or void again: a replay
                await self.execute(
                    session,
                    self.register(
                        Op(hold.key, action.kind, hold.user_id, hold.asset_code, action.amount, None, hold=hold)
                    ),
                )

    async def replay_or_conflict(self, session: aiohttp.ClientSession, op: Op) -> None:
        """After an acknowledgement: the same request again (a replay; a purchase's price in another order) or
        the key for another request (409 naming the transaction)."""
        ack = op.acks[0]
        conflict = self.rng.random() < 0.4
        body: dict[str, Any] | None
        if not conflict:
            body = op.body(order=1)
        elif op.kind == "purchase":
            price = [{"asset_code": a, "amount": n + (i == 0)} for i, (a, n) in enumerate(op.legs)]
            body = op.body(price=price)
        else:
            body = op.body(amount=(op.amount or 0) + 1)
        for _ in range(50):
            status, code, payload = await self.send(session, op, body, self.o.request_timeout)
            if status == AMBIGUOUS:
                if time.monotonic() > self.give_up_at:
                    return
                await asyncio.sleep(0.1)
                continue
            if conflict:
                self.stats.conflicts_checked += 1
                details = (payload or {}).get("error", {}).get("details", {})
                if (
                    status != 409
                    or code != "IDEMPOTENCY_CONFLICT"
                    or details.get("transaction_id") != ack["transaction_id"]
                ):
                    self.stats.violation(f"{op.key}: reused for another amount answered {status} {payload}")
            else:
                self.stats.replays_checked += 1
                if status != 200 or {k: payload.get(k) for k in ack if k != "timestamp"} != {
                    k: v for k, v in ack.items() if k != "timestamp"
                }:
                    self.stats.violation(f"{op.key}: replay answered {status} {payload}, first {ack}")
            return

    # ------------------------------------------------------------------ batches

    def new_batch(self, client: int) -> Batch:
        """A batch of new top-ups, bonuses and spends (hot and cold players; now and then an invalid one),
        with now and then the key of an earlier acknowledged posting, or of an earlier top-up or bonus of the
        batch, sent again: the same request (a replay) or another amount (a conflict)."""
        rng = self.rng
        number = len(self.batches) + 1
        items: list[BatchItem] = []
        for _ in range(rng.randint(*BATCH_SIZES)):
            kind = rng.choices(list(BATCH_KINDS), weights=list(BATCH_KINDS.values()))[0]
            op = self.new_op(client, kind)
            op.batch = number
            if rng.random() < 0.05:  # refused alone, before the database: amount must be 1 or more
                op.amount, op.invalid = rng.choice([0, -1, -(10**6)]), "amount"
                self.stats.batches["invalid_items"] += 1
            items.append(BatchItem(op, NEW, {"operation": kind, **(op.body() or {})}))
            self.stats.batches["items"] += 1
        earlier = [op for op in self.reversible if op.kind in POSTINGS]
        for _ in range(rng.choice([0, 0, 0, 1, 2])):
            credits = [i.op for i in items if i.role == NEW and i.op.kind in ("topup", "bonus") and not i.op.invalid]
            in_batch = rng.random() < 0.5 and bool(credits)
            if not in_batch and not earlier:
                continue
            target = rng.choice(credits if in_batch else earlier)
            role = CONFLICT if rng.random() < 0.4 else REPLAY
            body = target.body() if role == REPLAY else target.body(amount=(target.amount or 0) + 1)
            # (a key of the batch: after its first item; an earlier posting's: anywhere)
            first = next((k + 1 for k, item in enumerate(items) if item.op is target), 0)
            position = rng.randint(first, len(items))
            items.insert(position, BatchItem(target, role, {"operation": target.kind, **(body or {})}, in_batch))
            self.stats.batches["items"] += 1
            self.stats.batches[f"{role}s_{'in_batch' if in_batch else 'of_earlier'}"] += 1
        batch = Batch(number, items)
        self.batches.append(batch)
        self.stats.batches["batches"] += 1
        return batch

    async def send_batch(self, session: aiohttp.ClientSession, batch: Batch, timeout: float) -> Answer:
        """One attempt of the whole request: (200, None, body), (status, error code, body) for a refusal of the
        whole request, or (AMBIGUOUS, reason, body or None) when its outcome is unknown."""
        self.stats.attempts += 1
        answer: Answer
        try:
            async with session.post(
                f"{self.base}/wallets/batch", json=batch.request(), timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                payload = await resp.json(content_type=None)
                code = payload.get("error", {}).get("code") if isinstance(payload, dict) else None
                if resp.status >= 500:
                    answer = (AMBIGUOUS, f"{resp.status} {code}", payload)
                else:
                    answer = (resp.status, code, payload)
        except TimeoutError:
            answer = (AMBIGUOUS, "timeout", None)
        except (aiohttp.ClientError, ValueError) as exc:
            answer = (AMBIGUOUS, type(exc).__name__, None)
        label = f"{answer[0]} {answer[1]}" if answer[1] else str(answer[0])
        self.stats.answers[f"batch {label}"] += 1
        return answer

    def judge_batch(self, batch: Batch, answer: Answer) -> bool:
        """Record the whole request's answer and judge each item's; True when no item needs the request again."""
        status, _code, body = answer
        batch.answers.append(answer)
        if status == AMBIGUOUS:
            return False
        results = body.get("results") if status == 200 and isinstance(body, dict) else None
        if not isinstance(results, list) or len(results) != len(batch.items):
            self.stats.violation(f"batch {batch.number} of {len(batch.items)} operations answered {status} {body}")
            return True  # nothing to retry: each new operation is looked up by its reference id at the end
        self.stats.batches["answered"] += 1
        answers: list[Answer] = []
        for result in results:
            item_status, item_body = (result.get("status"), result.get("body")) if isinstance(result, dict) else (0, 0)
            error = item_body.get("error") if isinstance(item_body, dict) else None
            item_code = error.get("code") if isinstance(error, dict) else None
            if not isinstance(item_status, int) or item_status >= 500:
                answers.append((AMBIGUOUS, f"batch item {item_status} {item_code}", item_body))
            else:
                answers.append((item_status, item_code, item_body))
        final = True
        for item, item_answer in zip(batch.items, answers, strict=True):
            if item.role == NEW:
                done = self.judge(item.op, item_answer)
                item.op.final = item.op.final or done
                final = final and done
            else:
                final = self.judge_again(batch, item, item_answer, answers) and final
        self.check_order(batch, answers)
        return final

    def judge_again(self, batch: Batch, item: BatchItem, answer: Answer, answers: list[Answer]) -> bool:
        """An item sending an earlier operation's key again: a replay answers that operation's acknowledgement
        (200, the same transaction and balance), a conflict is 409 IDEMPOTENCY_CONFLICT naming its transaction.
        The earlier operation is acknowledged, or an earlier item of this batch (judged by this same answer)."""
        status, code, body = answer
        if status == AMBIGUOUS:
            return False
        if item.in_batch:
            first = next(i for i, x in enumerate(batch.items) if x.op is item.op and x.role == NEW)
            earlier = answers[first]
            ack = earlier[2] if earlier[0] in (200, 201) else None
        else:
            ack = item.op.acks[0]
        if ack is None:
            return True  # the earlier item's outcome is not known: nothing to compare with
        if item.role == CONFLICT:
            self.stats.conflicts_checked += 1
            details = (body or {}).get("error", {}).get("details", {}) if isinstance(body, dict) else {}
            if (
                status != 409
                or code != "IDEMPOTENCY_CONFLICT"
                or details.get("transaction_id") != ack.get("transaction_id")
            ):
                self.stats.violation(
                    f"{item.op.key}: reused in batch {batch.number} for another amount answered {status} {body}"
                )
            return True
        self.stats.replays_checked += 1
        same = {k: v for k, v in ack.items() if k != "timestamp"}
        if status != 200 or not isinstance(body, dict) or {k: body.get(k) for k in same} != same:
            self.stats.violation(
                f"{item.op.key}: replayed in batch {batch.number} answered {status} {body}, first {ack}"
            )
        return True

    def check_order(self, batch: Batch, answers: list[Answer]) -> None:
        """The operations apply one after another in request order, the batch holding its wallets' locks: per
        wallet, each new posting (201) continues the balance the previous one left, by its signed amount, and a
        refusal for funds quotes what that balance left available (plus what holds kept)."""
        running: dict[tuple[str, str | None], int] = {}
        for item, (status, code, body) in zip(batch.items, answers, strict=True):
            if item.role != NEW or not isinstance(body, dict):
                continue
            op = item.op
            wallet = (op.user_id, op.asset_code)
            if status == 201 and isinstance(body.get("balance"), int):
                signed = -(op.amount or 0) if op.kind == "spend" else op.amount or 0
                if wallet in running and body["balance"] != running[wallet] + signed:
                    self.stats.violation(
                        f"{op.key}: batch {batch.number} posted {op.kind} {op.amount} to {wallet}, balance "
                        f"{body['balance']}, after {running[wallet]} from the item before it"
                    )
                running[wallet] = body["balance"]
                self.stats.batches["postings_checked_in_order"] += 1
            elif code == "INSUFFICIENT_FUNDS" and wallet in running:
                d = body.get("error", {}).get("details", {})
                if d.get("available", 0) + d.get("held", 0) != running[wallet]:
                    self.stats.violation(
                        f"{op.key}: batch {batch.number} refused with {d}, after a balance of {running[wallet]}"
                    )

    async def execute_batch(self, session: aiohttp.ClientSession, batch: Batch) -> None:
        """Send the batch until it is answered, the same request each time (timeouts, resets, 503s); sometimes two
        identical requests at once, sometimes given up (each new operation then looked up by reference id)."""
        rng, backoff = self.rng, 0.05
        while True:
            timeout = rng.uniform(self.o.request_timeout / 10, self.o.request_timeout)
            if rng.random() < 0.03:
                # an impatient client: gives up before any batch can be answered (a batch is rarer than a single
                # operation, so a short run must still see its retry: 0.1-1 ms, not the singles' 1-50 ms)
                timeout = rng.uniform(0.0001, 0.001)
            if rng.random() < 0.05:
                self.stats.overlapping_sends += 1
                for item in batch.items:
                    item.op.overlapping = item.op.overlapping or item.role == NEW
                answers = list(
                    await asyncio.gather(
                        self.send_batch(session, batch, timeout), self.send_batch(session, batch, timeout)
                    )
                )
            else:
                answers = [await self.send_batch(session, batch, timeout)]
            final = [self.judge_batch(batch, a) for a in answers]
            if any(final) or time.monotonic() > self.give_up_at:
                break
            if rng.random() < 0.05:
                self.stats.abandoned += 1
                break
            self.stats.retries += 1
            self.stats.batches["retried"] += 1
            await asyncio.sleep(rng.uniform(0, backoff))
            backoff = min(backoff * 2, 1.0)
        for item in batch.items:
            if item.role == NEW and item.op.acks:
                self.reversible.append(item.op)

    async def client(self, session: aiohttp.ClientSession, n: int) -> None:
        rng = self.rng
        while not self.stop_new.is_set():
            kind = rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
            if kind == "reverse":
                if self.reversible:
                    await self.reversals(session, n)
                continue
            if kind == "batch":
                await self.execute_batch(session, self.new_batch(n))
                continue
            op = self.new_op(n, kind)
            await self.execute(session, op)
            if not op.acks:
                continue
            if kind == "hold":
                await self.settle(session, op)
                continue
            self.reversible.append(op)
            if len(self.reversible) > 2 * REVERSIBLE_KEPT:
                del self.reversible[:REVERSIBLE_KEPT]
            if rng.random() < 0.05:
                await self.replay_or_conflict(session, op)
