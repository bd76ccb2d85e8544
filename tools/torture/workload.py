"""The clients: random top-ups, bonuses, spends, two-asset purchases, reversals (several clients at once on one
original, whole and in part) and holds with a short expiry (captured, voided, or left to expire while the
client keeps trying to capture), over hot and cold players, retried like real clients retry (the same
reference id again), with every answer judged as it arrives."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aiohttp

from tools.torture.options import Options
from tools.torture.records import AMBIGUOUS, ASSETS, POSTINGS, Answer, Op, Stats

# how often a client starts each kind of operation
KINDS = {"topup": 3.0, "bonus": 2.0, "spend": 5.0, "purchase": 2.0, "reverse": 1.5, "hold": 1.5}
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

    async def client(self, session: aiohttp.ClientSession, n: int) -> None:
        rng = self.rng
        while not self.stop_new.is_set():
            kind = rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
            if kind == "reverse":
                if self.reversible:
                    await self.reversals(session, n)
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
