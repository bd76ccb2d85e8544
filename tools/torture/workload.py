"""The clients: random top-ups, bonuses and spends over hot and cold players, retried like real clients
retry (the same reference id again), with every answer judged as it arrives."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aiohttp

from tools.torture.options import Options
from tools.torture.records import AMBIGUOUS, ASSETS, Answer, Op, Stats


class Workload:
    """`clients` concurrent clients against the API at `base` (http://host:port/api/v1)."""

    def __init__(self, options: Options, rng: random.Random, run_id: str, base: str, stats: Stats):
        self.o, self.rng, self.run_id, self.base, self.stats = options, rng, run_id, base, stats
        self.hot = [f"{run_id}-hot{i}" for i in range(options.hot_players)]
        self.cold = [f"{run_id}-cold{i}" for i in range(options.cold_players)]
        self.ops: dict[str, Op] = {}
        self.counter = 0
        self.stop_new = asyncio.Event()  # no new operations after this
        self.give_up_at = float("inf")  # retries of pending operations stop at this time

    def new_op(self, client: int) -> Op:
        rng = self.rng
        hot = rng.random() < 0.7 or not self.cold
        user = rng.choice(self.hot) if hot else rng.choice(self.cold)
        asset_code = rng.choice(ASSETS) if rng.random() < 0.4 else "GOLD_COINS"
        kind = rng.choices(["topup", "bonus", "spend"], weights=[3, 2, 5])[0]
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
        self.counter += 1
        op = Op(f"{self.run_id}-c{client}-{self.counter}", kind, user, asset_code, amount, value)
        self.ops[op.key] = op
        self.stats.operations[kind] += 1
        return op

    async def send(self, session: aiohttp.ClientSession, op: Op, body: dict[str, Any], timeout: float) -> Answer:
        """One attempt: (status, error code, body), or (AMBIGUOUS, reason, None)."""
        self.stats.attempts += 1
        answer: Answer
        try:
            async with session.post(
                f"{self.base}/wallets/{op.kind}", json=body, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                payload = await resp.json(content_type=None)
                code = payload.get("error", {}).get("code") if isinstance(payload, dict) else None
                if resp.status == 200 and resp.headers.get("Idempotent-Replayed") != "true":
                    self.stats.violation(f"{op.key}: 200 without Idempotent-Replayed: true")
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

    def check_ack(self, op: Op, body: dict[str, Any], status: int) -> None:
        expected = {
            "user_id": op.user_id,
            "asset_code": op.asset_code,
            "amount": op.amount,
            "transaction_type": op.type,
        }
        got = {k: body.get(k) for k in expected}
        if got != expected:
            self.stats.violation(f"{op.key}: acknowledged {got}, sent {expected}")
        if not isinstance(body.get("balance"), int) or body["balance"] < 0:
            self.stats.violation(f"{op.key}: acknowledged balance {body.get('balance')!r}")
        if op.acks and body.get("transaction_id") != op.acks[0].get("transaction_id"):
            self.stats.violation(
                f"{op.key}: acknowledged as {body.get('transaction_id')} and as {op.acks[0].get('transaction_id')}"
            )
        if op.acks and body.get("balance") != op.acks[0].get("balance"):
            self.stats.violation(
                f"{op.key}: acknowledged balance {body.get('balance')} and {op.acks[0].get('balance')}"
            )
        op.acks.append(body)
        op.ack_statuses.append(status)

    def judge(self, op: Op, answer: Answer) -> bool:
        """Record an answer; True when it is final (no retry needed)."""
        status, code, body = answer
        op.answers.append(answer)
        if isinstance(status, int) and status in (200, 201):
            self.check_ack(op, body, status)
            return True
        if status == 422 and code in ("INSUFFICIENT_FUNDS", "BALANCE_LIMIT_EXCEEDED"):
            if code == "BALANCE_LIMIT_EXCEEDED" or op.kind != "spend":
                self.stats.violation(f"{op.key}: {code} for a {op.kind} of {op.amount}")
            return True
        if status == 404 and code == "WALLET_NOT_FOUND" and op.kind == "spend":
            return True
        if status == AMBIGUOUS:
            return False
        self.stats.violation(f"{op.key}: unexpected answer {status} {code} {body}")
        return True

    async def execute(self, session: aiohttp.ClientSession, op: Op) -> None:
        """Send op until it gets a final answer, retrying under the same reference id."""
        rng, backoff = self.rng, 0.05
        while True:
            timeout = rng.uniform(self.o.request_timeout / 10, self.o.request_timeout)
            if rng.random() < 0.03:  # an impatient client: gives up while the service is still working
                timeout = rng.uniform(0.001, 0.05)
            answers: list[Answer]
            if rng.random() < 0.05:  # a double click: two identical attempts in flight at once
                self.stats.overlapping_sends += 1
                op.overlapping = True
                answers = list(
                    await asyncio.gather(
                        self.send(session, op, op.body(), timeout), self.send(session, op, op.body(), timeout)
                    )
                )
            else:
                answers = [await self.send(session, op, op.body(), timeout)]
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

    async def replay_or_conflict(self, session: aiohttp.ClientSession, op: Op) -> None:
        """After an acknowledgement: the same request again (a replay) or the key for another request (409)."""
        ack = op.acks[0]
        conflict = self.rng.random() < 0.4
        body = op.body(amount=op.amount + 1) if conflict else op.body()
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
        while not self.stop_new.is_set():
            op = self.new_op(n)
            await self.execute(session, op)
            if op.acks and self.rng.random() < 0.05:
                await self.replay_or_conflict(session, op)
