"""What the clients did and heard: one Op per reference id, and the run's counters and violations."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("torture")

API = "/api/v1"
ASSETS = ("GOLD_COINS", "DIAMONDS", "LOYALTY_POINTS")
# kind -> (transaction type, the request field the kind adds)
OPERATIONS = {"topup": ("TOPUP", "payment_method"), "bonus": ("BONUS", "bonus_type"), "spend": ("SPEND", "item_id")}
AMBIGUOUS = "ambiguous"  # an attempt whose outcome the client did not learn

# (HTTP status, error code or None, JSON body or None); or (AMBIGUOUS, reason, body or None)
Answer = tuple[int | str, str | None, Any]


@dataclass
class Op:
    """One logical operation: a reference id and the request sent (again) under it."""

    key: str
    kind: str  # topup | bonus | spend
    user_id: str
    asset_code: str
    amount: int
    value: str  # payment_method / bonus_type / item_id
    answers: list[Answer] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)  # 200/201 bodies
    ack_statuses: list[int] = field(default_factory=list)
    overlapping: bool = False  # two attempts were in flight at once
    final: bool = False  # an answer the client need not retry (acknowledged or refused)

    @property
    def type(self) -> str:
        return OPERATIONS[self.kind][0]

    def body(self, **changes: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "user_id": self.user_id,
            "asset_code": self.asset_code,
            "amount": self.amount,
            "reference_id": self.key,
            OPERATIONS[self.kind][1]: self.value,
        }
        body.update(changes)
        return body

    @property
    def ambiguous(self) -> bool:
        return any(a[0] == AMBIGUOUS for a in self.answers)


@dataclass
class Stats:
    operations: Counter[str] = field(default_factory=Counter)  # by kind
    attempts: int = 0
    retries: int = 0
    overlapping_sends: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # "201", "200", "422 INSUFFICIENT_FUNDS", "timeout", ...
    faults: Counter[str] = field(default_factory=Counter)
    terminated_sessions: int = 0
    abandoned: int = 0
    replays_checked: int = 0
    conflicts_checked: int = 0
    violations: list[str] = field(default_factory=list)

    def violation(self, message: str) -> None:
        if len(self.violations) < 1000:
            log.error("VIOLATION %s", message)
        self.violations.append(message)
