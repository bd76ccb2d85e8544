"""What the clients did and heard: one Op per request sent under one reference id (a hold's captures and voids
are Ops too, kept with their hold; each new operation of a batch is an Op of its own), the batches (Batch: the
items sent together in one POST /wallets/batch), and the run's counters and violations."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

log = logging.getLogger("torture")

API = "/api/v1"
ASSETS = ("GOLD_COINS", "DIAMONDS", "LOYALTY_POINTS")
# kind -> (transaction type it posts, the request field that carries Op.value)
OPERATIONS: dict[str, tuple[str | None, str | None]] = {
    "topup": ("TOPUP", "payment_method"),
    "bonus": ("BONUS", "bonus_type"),
    "spend": ("SPEND", "item_id"),
    "purchase": ("PURCHASE", "item_id"),
    "reverse": ("REVERSAL", "reason"),
    "hold": (None, "item_id"),  # a hold posts nothing; its capture does
    "capture": ("CAPTURE", None),
    "void": (None, None),
}
POSTINGS = ("topup", "bonus", "spend")
# what a reversal does to the player: a refund of what the player paid, or the return of what was credited
DEBITS_PLAYER = ("SPEND", "PURCHASE", "CAPTURE")
AMBIGUOUS = "ambiguous"  # an attempt whose outcome the client did not learn

# (HTTP status, error code or None, JSON body or None); or (AMBIGUOUS, reason, body or None)
Answer = tuple[int | str, str | None, Any]
Legs = tuple[tuple[str, int], ...]  # (asset_code, amount) in asset order


@dataclass(eq=False)
class Op:
    """One logical operation: a request sent (again) until it gets a final answer.

    key is the reference id: the posting's, purchase's, reversal's or hold's own; a capture or void is sent
    for its hold (key = the hold's reference id, hold = the hold's Op)."""

    key: str
    kind: str  # topup | bonus | spend | purchase | reverse | hold | capture | void
    user_id: str
    asset_code: str | None  # None for a purchase (see legs) and a reversal of one
    amount: int | None  # None: all of it (a whole reversal, a capture of the whole hold)
    value: str | None  # payment_method / bonus_type / item_id / reason
    legs: Legs = ()  # a purchase's price
    original: Op | None = None  # a reversal's original
    hold: Op | None = None  # a capture's or void's hold
    expires_in: int | None = None  # a hold's
    after_expiry: bool = False  # a capture or void first sent only once the hold had expired (client clock)
    answers: list[Answer] = field(default_factory=list)
    answered_at: list[float] = field(default_factory=list)  # time.time() as each answer arrived
    acks: list[dict[str, Any]] = field(default_factory=list)  # 200/201 bodies
    ack_statuses: list[int] = field(default_factory=list)
    overlapping: bool = False  # two attempts were in flight at once
    final: bool = False  # an answer the client need not retry (acknowledged or refused)
    actions: list[Op] = field(default_factory=list)  # a hold's captures and voids
    batch: int | None = None  # the number of the batch it was sent in (None: sent alone)
    invalid: str | None = None  # a batch operation the API must refuse (400 VALIDATION_ERROR) naming this field

    @property
    def type(self) -> str | None:
        """The type of the transaction it posts (None: a hold, a void)."""
        return OPERATIONS[self.kind][0]

    @property
    def path(self) -> str:
        if self.kind in ("capture", "void"):
            return f"/holds/{self.key}/{self.kind}"
        return f"/wallets/{self.kind}"

    @property
    def expected_legs(self) -> Legs:
        """What it moves (asset order), if it posts: a reversal's whole amount comes from its original's
        request, a capture's from its hold's."""
        if self.kind == "purchase":
            return tuple(sorted(self.legs))
        if self.original is not None and self.amount is None:
            return self.original.expected_legs
        if self.original is not None:
            (asset_code, _), *_ = self.original.expected_legs
            return ((asset_code, self.amount or 0),)
        if self.hold is not None:
            return ((self.hold.asset_code or "", self.amount or self.hold.amount or 0),)
        return ((self.asset_code or "", self.amount or 0),)

    @property
    def credits_player(self) -> bool:
        """Whether its legs credit the player (a top-up, a bonus, a refund) or debit (the rest)."""
        if self.original is not None:
            return self.original.type in DEBITS_PLAYER
        return self.type not in DEBITS_PLAYER

    def body(self, order: int = 0, **changes: Any) -> dict[str, Any] | None:
        """The request body (None: no body); order rotates a purchase's price (the same request in any order)."""
        field_name = OPERATIONS[self.kind][1]
        body: dict[str, Any]
        if self.kind == "purchase":
            price = [{"asset_code": a, "amount": n} for a, n in self.legs]
            order %= max(len(price), 1)
            body = {"user_id": self.user_id, "reference_id": self.key, "price": price[order:] + price[:order]}
        elif self.kind == "reverse":
            assert self.original is not None
            body = {"reference_id": self.key, "original_reference_id": self.original.key}
            if self.amount is not None:
                body["amount"] = self.amount
        elif self.kind == "capture":
            body = {} if self.amount is None else {"amount": self.amount}
        elif self.kind == "void":
            return None
        else:
            body = {
                "user_id": self.user_id,
                "asset_code": self.asset_code,
                "amount": self.amount,
                "reference_id": self.key,
            }
            if self.expires_in is not None:
                body["expires_in"] = self.expires_in
        if field_name is not None and self.value is not None:
            body[field_name] = self.value
        body.update(changes)
        return body

    @property
    def ambiguous(self) -> bool:
        return any(a[0] == AMBIGUOUS for a in self.answers)

    def codes(self) -> set[str]:
        """The error codes it was answered with."""
        return {str(a[1]) for a in self.answers if isinstance(a[0], int) and a[1]}

    def expires_at(self) -> datetime | None:
        """A hold's expires_at, as acknowledged."""
        for ack in self.acks:
            if isinstance(ack.get("expires_at"), str):
                return datetime.fromisoformat(ack["expires_at"].replace("Z", "+00:00"))
        return None


# a batch item's role: a new operation (an Op of its own), or the key of an earlier operation sent again: the
# same request (a replay) or another one (a conflict); the earlier operation is an acknowledged one, or an
# earlier item of the same batch
NEW, REPLAY, CONFLICT = "new", "replay", "conflict"


@dataclass(eq=False)
class BatchItem:
    op: Op  # the new operation, or the earlier operation whose key it sends again
    role: str  # NEW | REPLAY | CONFLICT
    body: dict[str, Any]  # the operation as sent: {"operation": kind, ...the single route's body}
    in_batch: bool = False  # a replay or conflict of an earlier item of the same batch


@dataclass(eq=False)
class Batch:
    """One POST /wallets/batch: its items in request order, sent (again) as one identical request until it is
    answered 200 (each item then judged as its single route's answer would be)."""

    number: int
    items: list[BatchItem]
    answers: list[Answer] = field(default_factory=list)  # the whole request's answers

    def request(self) -> dict[str, Any]:
        return {"operations": [item.body for item in self.items]}


@dataclass
class Stats:
    operations: Counter[str] = field(default_factory=Counter)  # by kind
    attempts: int = 0
    retries: int = 0
    overlapping_sends: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # "201", "200", "422 INSUFFICIENT_FUNDS", "timeout", ...
    faults: Counter[str] = field(default_factory=Counter)
    terminated_sessions: int = 0
    terminated_by_database: Counter[str] = field(default_factory=Counter)  # sharded: by database
    outage_probes: Counter[str] = field(default_factory=Counter)  # sharded: answers while PostgreSQL was down
    recovery_seconds: list[float] = field(default_factory=list)  # sharded: until answered again after a restart
    abandoned: int = 0
    replays_checked: int = 0
    conflicts_checked: int = 0
    concurrent_reversals: int = 0  # originals reversed by several clients at once
    batches: Counter[str] = field(default_factory=Counter)  # sent, answered, items by role, checks made
    violations: list[str] = field(default_factory=list)

    def violation(self, message: str) -> None:
        if len(self.violations) < 1000:
            log.error("VIOLATION %s", message)
        self.violations.append(message)
