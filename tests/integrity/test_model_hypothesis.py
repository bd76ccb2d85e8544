"""The SQL API against a plain Python model of the ledger (hypothesis stateful testing).

Random sequences of every operation over several players (none of whom has a wallet when an example starts)
and all three assets (plus one that does not exist): top-ups, bonuses and spends with amounts from 1 up to
2^53-1 and beyond; purchases of 1 to 3 assets (all legs or none, replays in any price order); reversals of
spends, top-ups, bonuses and purchases, whole and in part (never beyond the original, chargebacks only of
what is available), and of what cannot be reversed (reversals, holds, captures); holds, their captures
(whole, partial, too much), voids and expiry; replays of earlier keys, conflicting replays, one key used for a
posting and a hold, hostile ids and malformed prices. After every step the balances (balance, held,
available), the holds and the error (SQLSTATE and its JSON DETAIL) must be exactly what the model predicts,
and wallet_verify() must find nothing.

Expiry is deterministic: holds live for 10 minutes or more (no example lasts that long), and the rule
`expire` ends one by moving its expires_at into the past as the superuser, a test device (see there).

Each example runs in a transaction of its own, rolled back at its end (see LedgerMachine.__init__), with
its own player ids and key prefix. `WALLET_HYPOTHESIS_PROFILE=long` runs many more and longer examples.
"""

# Request fields are Optional on purpose (the model sends NULLs too); the model code indexes them freely.
# mypy: disable-error-code="arg-type, operator, list-item"
from __future__ import annotations

import itertools
import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from service.validation import forbidden_id

MAX = 2**53 - 1
MAX_HOLD_SECONDS = 86400
MAX_LEGS = 3
ASSETS = ["GOLD_COINS", "DIAMONDS", "LOYALTY_POINTS"]
ASSET_NAMES = {"GOLD_COINS": "Gold Coins", "DIAMONDS": "Diamonds", "LOYALTY_POINTS": "Loyalty Points"}
PLAYERS = 3
OPS = {"TOPUP": "wallet_topup", "BONUS": "wallet_bonus", "SPEND": "wallet_spend"}
OP_FIELD = {"TOPUP": "p_payment_method", "BONUS": "p_bonus_type", "SPEND": "p_item_id"}
# the system wallet on the other side of each type's legs (a reversal: its original's)
SYSTEM = {"TOPUP": "Treasury", "BONUS": "Bonus Pool", "SPEND": "Revenue", "PURCHASE": "Revenue", "CAPTURE": "Revenue"}
DEBITS_PLAYER = {"SPEND", "PURCHASE", "CAPTURE"}
# the column of created_at in each function's rows
CREATED_AT = {"TOPUP": 6, "BONUS": 6, "SPEND": 6, "PURCHASE": 7, "REVERSAL": 7, "CAPTURE": 7}

# CI: the same examples on every run (derandomize), so the coverage asserted at the end cannot come and go with
# the seed; the long profile explores new ones each time
settings.register_profile(
    "wallet-ci",
    max_examples=60,
    stateful_step_count=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "wallet-long",
    max_examples=500,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile("wallet-" + os.environ.get("WALLET_HYPOTHESIS_PROFILE", "ci"))

player_index = st.integers(0, PLAYERS - 1)
asset = st.sampled_from(ASSETS)
asset_or_unknown = st.sampled_from([*ASSETS, "RUBIES"])
op = st.sampled_from(list(OPS))
# small amounts (most postings succeed), amounts near the 2^53-1 limit, and out-of-range ones
valid_amount = st.one_of(
    st.integers(1, 1000),
    st.integers(MAX - 1000, MAX),
    st.sampled_from([1, MAX, MAX // 2, MAX // 2 + 1]),
)
any_amount = st.one_of(
    valid_amount,
    st.sampled_from([0, -1, MAX + 1, 2**63 - 1, -(2**63)]),
    st.integers(-(2**63), 2**63 - 1),
)
small_amount = st.integers(1, 300)
op_value = st.sampled_from(["stripe", "paypal", "DAILY_LOGIN", "sword_01", "x" * 128])
reason = st.sampled_from(["refund", "chargeback", "fraud", "item never delivered", "r" * 128])
nul_free = st.characters(codec="utf-8", exclude_characters="\x00")  # valid UTF-8 PostgreSQL can hold
metadata = st.one_of(
    st.none(), st.dictionaries(st.text(nul_free, max_size=5), st.integers() | st.text(nul_free, max_size=5), max_size=3)
)
hostile_metadata = st.one_of(
    st.none(), st.integers(), st.lists(st.integers(), max_size=2), st.text(nul_free, max_size=3), metadata
)
# a hold's lifetime: the default (600 s) or longer; no example lasts that long, so holds end only by the rules
expires_in = st.one_of(st.none(), st.integers(600, MAX_HOLD_SECONDS))
any_expires_in = st.one_of(expires_in, st.sampled_from([0, -1, MAX_HOLD_SECONDS + 1, 2**31 - 1, -(2**31)]))

# a price: 1 to 3 distinct assets (one may not exist), and malformed ones
# (an amount may be written 5.0: the same integer)
price_leg = st.fixed_dictionaries(
    {
        "asset_code": st.sampled_from([*ASSETS, *ASSETS, "RUBIES"]),
        "amount": st.one_of(small_amount, small_amount.map(float), valid_amount),
    }
)
good_price = st.lists(price_leg, min_size=1, max_size=MAX_LEGS, unique_by=lambda leg: leg["asset_code"])
bad_leg = st.one_of(
    st.fixed_dictionaries(
        {"asset_code": asset, "amount": st.sampled_from([0, -1, MAX + 1, 2**64, 1.5, "10", None, True])}
    ),
    st.fixed_dictionaries({"asset_code": st.sampled_from([None, 5, ["GOLD_COINS"], True]), "amount": small_amount}),
    st.fixed_dictionaries({"asset_code": asset}),
    st.fixed_dictionaries({"amount": small_amount}),
    st.fixed_dictionaries({"asset_code": asset, "amount": small_amount, "price": st.just(1)}),
    st.integers(),
    st.text(nul_free, max_size=3),
    st.none(),
    st.lists(st.integers(), max_size=1),
)
hostile_price = st.one_of(
    st.none(),
    st.just([]),
    st.integers(),
    st.text(nul_free, max_size=3),
    st.fixed_dictionaries({"asset_code": asset, "amount": small_amount}),
    st.lists(price_leg, min_size=MAX_LEGS + 1, max_size=MAX_LEGS + 2),
    # an asset twice
    st.lists(
        st.sampled_from([{"asset_code": "GOLD_COINS", "amount": 1}, {"asset_code": "GOLD_COINS", "amount": 2}]),
        min_size=2,
        max_size=3,
    ),
    st.lists(st.one_of(price_leg, bad_leg), min_size=1, max_size=MAX_LEGS),
)


# the SQL rule for ids (_wallet_printable, sql/0004.trust.sql) is the table the HTTP layer uses too
def valid_id(value: str | None) -> bool:
    return value is not None and 1 <= len(value) <= 128 and not any(forbidden_id(ch) for ch in value)


# hostile ids: empty, too long, NUL-free unicode of any length (controls, bidi and zero-width included)
hostile_text = st.one_of(st.just(""), st.just("y" * 129), st.text(nul_free, max_size=140))


# ---------------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    """A top-up, bonus or spend as the SQL API receives it."""

    type: str
    user_id: str | None
    asset_code: str | None
    amount: int | None
    reference_id: str | None
    op_value: str | None
    metadata: object = None

    def same_as(self, other: object) -> bool:
        # metadata is not part of what a replay compares
        return isinstance(other, Request) and (
            self.type,
            self.user_id,
            self.asset_code,
            self.amount,
            self.op_value,
        ) == (other.type, other.user_id, other.asset_code, other.amount, other.op_value)


@dataclass(frozen=True, eq=False)
class Purchase:
    user_id: str | None
    reference_id: str | None
    item_id: str | None
    price: Any  # what is sent as p_price (None: SQL NULL)
    metadata: object = None


@dataclass(frozen=True)
class Reversal:
    reference_id: str | None
    original: str | None
    reason: str | None
    amount: int | None = None
    metadata: object = None


@dataclass(frozen=True)
class HoldRequest:
    user_id: str | None
    asset_code: str | None
    amount: int | None
    reference_id: str | None
    expires_in: int | None = None
    item_id: str | None = None
    metadata: object = None


@dataclass(frozen=True)
class Capture:
    reference_id: str | None
    amount: int | None = None


@dataclass(frozen=True)
class Void:
    reference_id: str | None


AnyRequest = Request | Purchase | Reversal | HoldRequest | Capture | Void
Legs = list[tuple[str, int]]  # (asset_code, amount), in asset order


def price_error(price: Any) -> str | None:
    """The field _wallet_price_legs names for a malformed price, or None when it is well formed."""
    if not isinstance(price, list) or not 1 <= len(price) <= MAX_LEGS:
        return "price"
    for i, leg in enumerate(price):
        if not isinstance(leg, dict) or set(leg) - {"asset_code", "amount"}:
            return f"price[{i}]"
        if not isinstance(leg.get("asset_code"), str):
            return f"price[{i}].asset_code"
        amount = leg.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount != int(amount):
            return f"price[{i}].amount"
        if not 1 <= amount <= MAX:
            return f"price[{i}].amount"
    if len({leg["asset_code"] for leg in price}) < len(price):
        return "price"
    return None


def price_legs(price: list[dict[str, Any]]) -> Legs:
    return sorted((leg["asset_code"], int(leg["amount"])) for leg in price)


# ---------------------------------------------------------------------------------------------- the model


@dataclass
class Tx:
    """A committed transaction as the model knows it."""

    request: AnyRequest
    transaction_id: str
    type: str
    user_id: str
    legs: Legs
    balances: dict[str, int]  # asset -> the player's balance right after
    created_at: datetime
    original: Tx | None = None  # a reversal's
    reference_id: str = ""

    @property
    def multi(self) -> bool:
        """Stored with legs (asset_code and amount NULL): a purchase, and a purchase's reversal."""
        return self.type == "PURCHASE" or (self.original is not None and self.original.type == "PURCHASE")

    @property
    def credits_player(self) -> bool:
        if self.original is not None:
            return self.original.type in DEBITS_PLAYER
        return self.type not in DEBITS_PLAYER

    @property
    def system(self) -> str:
        return SYSTEM[(self.original or self).type]


@dataclass
class Hold:
    request: HoldRequest
    status: str = "HELD"  # HELD, CAPTURED, VOIDED, EXPIRED
    captured: int | None = None
    capture: Tx | None = None


Expected = tuple[str | None, dict[str, Any]]  # (None | "replay" | SQLSTATE, expected DETAIL subset)
NEW: Expected = (None, {})
REPLAY: Expected = ("replay", {})


def invalid(name: str) -> Expected:
    return "WL006", {"field": name}


@dataclass
class Model:
    balances: dict[tuple[str, str], int] = field(default_factory=dict)  # (player, asset) -> balance
    opened: dict[str, list[str]] = field(default_factory=dict)  # player -> assets in the order opened
    posted: dict[str, Tx] = field(default_factory=dict)  # reference id -> its transaction
    holds: dict[str, Hold] = field(default_factory=dict)  # reference id -> the hold
    history: dict[tuple[str, str], list[Tx]] = field(default_factory=dict)  # oldest first
    reversed: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))  # (original, asset)

    def has_player(self, user_id: str) -> bool:
        return bool(self.opened.get(user_id))

    def held(self, user_id: str, asset_code: str) -> int:
        held = 0
        for h in self.holds.values():
            if h.status == "HELD" and (h.request.user_id, h.request.asset_code) == (user_id, asset_code):
                held += h.request.amount
        return held

    def available(self, user_id: str, asset_code: str) -> int:
        return self.balances.get((user_id, asset_code), 0) - self.held(user_id, asset_code)

    def funds(self, user_id: str, asset_code: str, required: int) -> dict[str, Any]:
        """The DETAIL of WL001 for this wallet and amount."""
        return {
            "user_id": user_id,
            "asset_code": asset_code,
            "required": required,
            "available": self.available(user_id, asset_code),
            "held": self.held(user_id, asset_code),
        }

    def key_taken(self, key: str) -> Expected | None:
        """WL004 when a new posting or hold finds its key taken by the other kind."""
        if key in self.posted:
            return "WL004", {"reference_id": key, "transaction_id": self.posted[key].transaction_id}
        if key in self.holds:
            return "WL004", {"reference_id": key, "hold_reference_id": key}
        return None

    # ---------------------------------------------------------------- what each request should do

    def expect(self, r: AnyRequest) -> Expected:
        """NEW when the request posts a new transaction (or makes a new hold, or voids one), REPLAY when it
        answers from an earlier one, else (SQLSTATE, expected DETAIL subset)."""
        method = {
            Request: self.expect_posting,
            Purchase: self.expect_purchase,
            Reversal: self.expect_reversal,
            HoldRequest: self.expect_hold,
            Capture: self.expect_capture,
            Void: self.expect_void,
        }[type(r)]
        return method(r)

    def expect_posting(self, r: Request) -> Expected:
        for name, value in (("user_id", r.user_id), ("reference_id", r.reference_id)):
            if not valid_id(value):
                return invalid(name)
        if r.asset_code is None:
            return invalid("asset_code")
        if r.amount is None or not 1 <= r.amount <= MAX:
            return invalid("amount")
        field_name = OP_FIELD[r.type][2:]
        if (r.op_value is None and r.type != "TOPUP") or (r.op_value is not None and not valid_id(r.op_value)):
            return invalid(field_name)
        if r.metadata is not None and not isinstance(r.metadata, dict):
            return invalid("metadata")
        if r.reference_id in self.posted and r.same_as(self.posted[r.reference_id].request):
            return REPLAY
        taken = self.key_taken(r.reference_id)
        if taken:
            return taken
        if r.asset_code not in ASSETS:
            return "WL003", {"asset_code": r.asset_code}
        balance = self.balances.get((r.user_id, r.asset_code), 0)
        if r.type == "SPEND":
            if not self.has_player(r.user_id):
                return "WL002", {"user_id": r.user_id}
            if self.available(r.user_id, r.asset_code) < r.amount:
                return "WL001", self.funds(r.user_id, r.asset_code, r.amount)
        elif balance + r.amount > MAX:
            return "WL007", {"amount": r.amount, "balance": balance}
        return NEW

    def expect_purchase(self, r: Purchase) -> Expected:
        for name, value in (("user_id", r.user_id), ("reference_id", r.reference_id), ("item_id", r.item_id)):
            if not valid_id(value):
                return invalid(name)
        if r.metadata is not None and not isinstance(r.metadata, dict):
            return invalid("metadata")
        wrong = "price" if r.price is None else price_error(r.price)
        if wrong:
            return invalid(wrong)
        legs = price_legs(r.price)
        tx = self.posted.get(r.reference_id)
        if tx is not None:
            same = tx.type == "PURCHASE" and tx.user_id == r.user_id and tx.request.item_id == r.item_id
            if same and tx.legs == legs:
                return REPLAY
        taken = self.key_taken(r.reference_id)
        if taken:
            return taken
        for asset_code, _ in legs:
            if asset_code not in ASSETS:
                return "WL003", {"asset_code": asset_code}
        if not self.has_player(r.user_id):
            return "WL002", {"user_id": r.user_id}
        for asset_code, amount in legs:
            if self.available(r.user_id, asset_code) < amount:
                return "WL001", self.funds(r.user_id, asset_code, amount)
        return NEW

    def reversal_legs(self, r: Reversal) -> Legs | Expected:
        """What r asks to reverse of its original, or the error about the original."""
        original = self.posted.get(r.original)
        about = {"original_reference_id": r.original}
        if original is None:
            if r.original in self.holds:
                return "WL010", dict(about, reason="hold")
            return "WL005", {"reference_id": r.original}
        if original.type == "CAPTURE":
            return "WL010", dict(about, reason="hold")
        if original.type == "REVERSAL":
            return "WL010", dict(about, reason="reversal")
        if original.type == "PURCHASE":
            if r.amount is not None:
                return "WL010", dict(about, reason="partial_purchase")
            return list(original.legs)
        ((asset_code, amount),) = original.legs
        if r.amount is not None and r.amount > amount:
            already = self.reversed[(r.original, asset_code)]
            return "WL009", dict(
                about, asset_code=asset_code, original_amount=amount, reversed=already, requested=r.amount
            )
        return [(asset_code, amount if r.amount is None else r.amount)]

    def expect_reversal(self, r: Reversal) -> Expected:
        for name, value in (
            ("reference_id", r.reference_id),
            ("original_reference_id", r.original),
            ("reason", r.reason),
        ):
            if not valid_id(value):
                return invalid(name)
        if r.amount is not None and not 1 <= r.amount <= MAX:
            return invalid("amount")
        if r.metadata is not None and not isinstance(r.metadata, dict):
            return invalid("metadata")
        legs = self.reversal_legs(r)
        if isinstance(legs, tuple):
            return legs
        tx = self.posted.get(r.reference_id)
        if tx is not None:
            original = self.posted[r.original]
            if tx.type == "REVERSAL" and tx.original is original and tx.request.reason == r.reason and tx.legs == legs:
                return REPLAY
        taken = self.key_taken(r.reference_id)
        if taken:
            return taken
        original = self.posted[r.original]
        original_amounts = dict(original.legs)
        for asset_code, amount in legs:
            already = self.reversed[(r.original, asset_code)]
            if already + amount > original_amounts[asset_code]:
                return "WL009", {
                    "original_reference_id": r.original,
                    "asset_code": asset_code,
                    "original_amount": original_amounts[asset_code],
                    "reversed": already,
                    "requested": amount,
                }
            balance = self.balances[(original.user_id, asset_code)]
            if original.type in DEBITS_PLAYER:  # a refund
                if balance + amount > MAX:
                    return "WL007", {"amount": amount, "balance": balance, "asset_code": asset_code}
            elif self.available(original.user_id, asset_code) < amount:  # a chargeback or clawback
                return "WL001", self.funds(original.user_id, asset_code, amount)
        return NEW

    def expect_hold(self, r: HoldRequest) -> Expected:
        if not valid_id(r.user_id):
            return invalid("user_id")
        if r.asset_code is None:
            return invalid("asset_code")
        if r.amount is None or not 1 <= r.amount <= MAX:
            return invalid("amount")
        if not valid_id(r.reference_id):
            return invalid("reference_id")
        if r.expires_in is not None and not 1 <= r.expires_in <= MAX_HOLD_SECONDS:
            return invalid("expires_in")
        if r.item_id is not None and not valid_id(r.item_id):
            return invalid("item_id")
        if r.metadata is not None and not isinstance(r.metadata, dict):
            return invalid("metadata")
        hold = self.holds.get(r.reference_id)
        if hold is not None:
            h = hold.request
            if (h.user_id, h.asset_code, h.amount, h.item_id) == (r.user_id, r.asset_code, r.amount, r.item_id):
                return REPLAY
            return "WL004", {"reference_id": r.reference_id, "hold_reference_id": r.reference_id}
        taken = self.key_taken(r.reference_id)
        if taken:
            return taken
        if r.asset_code not in ASSETS:
            return "WL003", {"asset_code": r.asset_code}
        if not self.has_player(r.user_id):
            return "WL002", {"user_id": r.user_id}
        if self.available(r.user_id, r.asset_code) < r.amount:
            return "WL001", self.funds(r.user_id, r.asset_code, r.amount)
        return NEW

    def expect_capture(self, r: Capture) -> Expected:
        if not valid_id(r.reference_id):
            return invalid("reference_id")
        if r.amount is not None and not 1 <= r.amount <= MAX:
            return invalid("amount")
        hold = self.holds.get(r.reference_id)
        if hold is None:
            return "WL011", {"reference_id": r.reference_id}
        if hold.status == "CAPTURED":
            if (hold.request.amount if r.amount is None else r.amount) == hold.captured:
                return REPLAY
            return "WL012", {"reference_id": r.reference_id, "status": "CAPTURED", "captured_amount": hold.captured}
        if hold.status == "VOIDED":
            return "WL012", {"reference_id": r.reference_id, "status": "VOIDED", "captured_amount": None}
        if hold.status == "EXPIRED":
            return "WL013", {"reference_id": r.reference_id}
        if r.amount is not None and r.amount > hold.request.amount:
            return "WL014", {"reference_id": r.reference_id, "amount": r.amount, "held": hold.request.amount}
        return NEW

    def expect_void(self, r: Void) -> Expected:
        if not valid_id(r.reference_id):
            return invalid("reference_id")
        hold = self.holds.get(r.reference_id)
        if hold is None:
            return "WL011", {"reference_id": r.reference_id}
        if hold.status == "CAPTURED":
            return "WL012", {"reference_id": r.reference_id, "status": "CAPTURED", "captured_amount": hold.captured}
        return NEW if hold.status == "HELD" else REPLAY

    # ---------------------------------------------------------------- the changes

    def post(
        self,
        request: AnyRequest,
        reference_id: str,
        type: str,
        user_id: str,
        legs: Legs,
        row: tuple,
        original: Tx | None = None,
    ) -> Tx:
        """A new transaction (row: the function's first row, with transaction_id first and created_at at
        `CREATED_AT[type]`) moves each leg between the player and a system wallet."""
        tx = Tx(request, str(row[0]), type, user_id, legs, {}, row[CREATED_AT[type]], original, reference_id)
        self.posted[reference_id] = tx
        for asset_code, amount in legs:
            key = (user_id, asset_code)
            if key not in self.balances:
                self.balances[key] = 0
                self.opened.setdefault(user_id, []).append(asset_code)
            self.balances[key] += amount if tx.credits_player else -amount
            tx.balances[asset_code] = self.balances[key]
            self.history.setdefault(key, []).append(tx)
            if original is not None:
                self.reversed[(original.reference_id, asset_code)] += amount
        return tx


def call(conn: psycopg.Connection, r: AnyRequest) -> list[tuple] | psycopg.Error:
    """Call the wallet function for r with named arguments; returns its rows or the psycopg error."""

    def js(value: object) -> str | None:
        return None if value is None else json.dumps(value)

    if isinstance(r, Request):
        sql = (
            f"SELECT (p).* FROM (SELECT {OPS[r.type]}(p_user_id => %s, p_asset_code => %s, p_amount => %s::bigint,"
            f" p_reference_id => %s, {OP_FIELD[r.type]} => %s, p_metadata => %s::jsonb) AS p) s"
        )
        args: tuple = (r.user_id, r.asset_code, r.amount, r.reference_id, r.op_value, js(r.metadata))
    elif isinstance(r, Purchase):
        sql = (
            "SELECT * FROM wallet_purchase(p_user_id => %s, p_reference_id => %s, p_item_id => %s,"
            " p_price => %s::jsonb, p_metadata => %s::jsonb)"
        )
        args = (r.user_id, r.reference_id, r.item_id, js(r.price), js(r.metadata))
    elif isinstance(r, Reversal):
        sql = (
            "SELECT * FROM wallet_reverse(p_reference_id => %s, p_original_reference_id => %s, p_reason => %s,"
            " p_amount => %s::bigint, p_metadata => %s::jsonb)"
        )
        args = (r.reference_id, r.original, r.reason, r.amount, js(r.metadata))
    elif isinstance(r, HoldRequest):
        sql = (
            "SELECT * FROM wallet_hold(p_user_id => %s, p_asset_code => %s, p_amount => %s::bigint,"
            " p_reference_id => %s, p_expires_in => %s::integer, p_item_id => %s, p_metadata => %s::jsonb)"
        )
        args = (r.user_id, r.asset_code, r.amount, r.reference_id, r.expires_in, r.item_id, js(r.metadata))
    elif isinstance(r, Capture):
        sql = "SELECT * FROM wallet_capture(p_reference_id => %s, p_amount => %s::bigint)"
        args = (r.reference_id, r.amount)
    else:
        sql = "SELECT * FROM wallet_void(p_reference_id => %s)"
        args = (r.reference_id,)
    try:
        return query(conn, sql, args, commit_checks=True)
    except psycopg.Error as error:
        return error


def query(conn: psycopg.Connection, sql: str, args: tuple = (), commit_checks: bool = False) -> list[tuple]:
    """The rows of one statement, run in a savepoint: an error (raised) leaves the example's transaction usable.
    commit_checks: then run the deferred constraint triggers (what a commit would run), as the call's own."""
    with conn.transaction():
        rows = conn.execute(sql, args).fetchall()
        if commit_checks:
            conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # checks what is outstanding, now
            conn.execute("SET CONSTRAINTS ALL DEFERRED")
        return rows


# ---------------------------------------------------------------------------------------------- the machine


class LedgerMachine(RuleBasedStateMachine):
    """Subclassed per test with `conn` (an autocommit connection to the test's database, as the superuser)."""

    conn: psycopg.Connection
    examples = itertools.count()

    keys = Bundle("keys")  # reference ids that hold a transaction
    holds = Bundle("holds")  # reference ids of holds
    failed = Bundle("failed")  # requests that were refused for lack of funds / balance limit

    made: Counter[str]  # what the examples made (transactions by type, holds by how they ended): see the test

    def __init__(self) -> None:
        super().__init__()
        n = next(self.examples)
        self.prefix = f"hyp{n}-"  # no LIKE wildcard in it
        self.players = [f"{self.prefix}p{i}" for i in range(PLAYERS)]
        self.model = Model()
        self.counter = itertools.count()
        # The example runs in one transaction, rolled back at its end: every example starts from the seeded
        # database, and wallet_verify() (after every step) reads one example's ledger, not all of them so far.
        # Each statement runs in a savepoint (an error undoes it alone, as in autocommit), and the deferred
        # constraint triggers run right after each wallet function, as at the commit of an autocommitted call.
        self.example = self.conn.transaction(force_rollback=True)
        self.example.__enter__()

    def teardown(self) -> None:
        try:
            for type_, count in self.conn.execute(
                "SELECT type::text, count(*) FROM transactions WHERE reference_id LIKE %s GROUP BY 1",
                (self.prefix + "%",),
            ).fetchall():
                self.made[type_] += count
            self.made["wallets"] += len(self.model.balances)
            for hold in self.model.holds.values():
                self.made["hold " + hold.status] += 1
        finally:
            self.example.__exit__(None, None, None)

    def new_key(self) -> str:
        return f"{self.prefix}k{next(self.counter)}"

    def own(self, key: str | None) -> str | None:
        """A hostile id that happens to be valid, made one of this example's own (never another example's)."""
        return self.prefix + key[: 128 - len(self.prefix)] if valid_id(key) else key

    # ------------------------------------------------------------------ sending, checking, applying

    def send(self, r: AnyRequest) -> Tx | Hold | str | None:
        """Send r and check the outcome against the model, then apply it. Returns the transaction (new or
        replayed), the hold (made, replayed, voided), or the SQLSTATE of the expected refusal."""
        expected, detail = self.model.expect(r)
        result = call(self.conn, r)
        if expected is None or expected == "replay":
            assert not isinstance(result, psycopg.Error), f"{r} failed: {result!r}, expected {expected or 'success'}"
            checker = {
                Request: self.posting_done,
                Purchase: self.purchase_done,
                Reversal: self.reversal_done,
                HoldRequest: self.hold_done,
                Capture: self.capture_done,
                Void: self.void_done,
            }[type(r)]
            return checker(r, result, expected == "replay")
        assert isinstance(result, psycopg.Error), f"{r} succeeded, expected {expected} {detail}: {result}"
        assert result.sqlstate == expected, f"{r}: {result.sqlstate} {result}, expected {expected} {detail}"
        got = json.loads(result.diag.message_detail)
        for name, value in detail.items():
            assert name in got and got[name] == value, f"{r}: DETAIL {got}, expected {name}={value!r}"
        if expected == "WL006":
            assert result.diag.column_name == detail["field"]
        return expected

    def replayed_tx(self, key: str, rows: list[tuple], transaction_id_column: int = 0) -> Tx:
        tx = self.model.posted[key]
        assert {str(row[transaction_id_column]) for row in rows} == {tx.transaction_id}
        assert all(row[-1] is True for row in rows), "a replay says replayed"
        return tx

    def posting_done(self, r: Request, rows: list[tuple], replay: bool) -> Tx:
        ((_, user_id, asset_code, amount, balance, tx_type, _, replayed),) = rows
        assert (user_id, asset_code, amount, tx_type) == (r.user_id, r.asset_code, r.amount, r.type)
        if replay:
            tx = self.replayed_tx(r.reference_id, rows)
            assert balance == tx.balances[r.asset_code], "a replay reports the balance the original left"
            return tx
        assert replayed is False
        tx = self.model.post(r, r.reference_id, r.type, r.user_id, [(r.asset_code, r.amount)], rows[0])
        assert balance == tx.balances[r.asset_code]
        return tx

    def legs_done(self, rows: list[tuple], tx: Tx, first_columns: tuple) -> None:
        """Rows of a purchase or reversal: one per leg, in asset order, each with the balance it left."""
        assert [(row[4], row[5], row[6]) for row in rows] == [(a, n, tx.balances[a]) for a, n in tx.legs]
        assert {row[1:4] for row in rows} == {first_columns}
        assert len({row[7] for row in rows}) == 1  # one created_at

    def purchase_done(self, r: Purchase, rows: list[tuple], replay: bool) -> Tx:
        if replay:
            tx = self.replayed_tx(r.reference_id, rows)
        else:
            assert {row[-1] for row in rows} == {False}
            assert len({row[0] for row in rows}) == 1
            legs = price_legs(r.price)
            tx = self.model.post(r, r.reference_id, "PURCHASE", r.user_id, legs, rows[0])
        self.legs_done(rows, tx, (r.user_id, "PURCHASE", r.item_id))
        return tx

    def reversal_done(self, r: Reversal, rows: list[tuple], replay: bool) -> Tx:
        original = self.model.posted[r.original]
        if replay:
            tx = self.replayed_tx(r.reference_id, rows)
        else:
            assert {row[-1] for row in rows} == {False}
            assert len({row[0] for row in rows}) == 1
            legs = self.model.reversal_legs(r)
            assert isinstance(legs, list)
            tx = self.model.post(r, r.reference_id, "REVERSAL", original.user_id, legs, rows[0], original)
        self.legs_done(rows, tx, (original.user_id, "REVERSAL", r.original))
        return tx

    def hold_done(self, r: HoldRequest, rows: list[tuple], replay: bool) -> Hold:
        ((reference_id, user_id, asset_code, amount, status, expires_at, available, replayed),) = rows
        assert (reference_id, user_id, asset_code, amount) == (r.reference_id, r.user_id, r.asset_code, r.amount)
        if replay:
            hold = self.model.holds[r.reference_id]
            assert replayed is True
        else:
            assert replayed is False
            hold = self.model.holds[r.reference_id] = Hold(r)
            assert expires_at is not None
        assert status == hold.status
        assert available == self.model.available(r.user_id, r.asset_code)
        return hold

    def capture_done(self, r: Capture, rows: list[tuple], replay: bool) -> Tx:
        ((_, user_id, asset_code, amount, balance, tx_type, hold_reference_id, _, replayed),) = rows
        hold = self.model.holds[r.reference_id]
        h = hold.request
        assert (user_id, asset_code, tx_type, hold_reference_id) == (h.user_id, h.asset_code, "CAPTURE", h.reference_id)
        if replay:
            tx = self.replayed_tx(r.reference_id, rows)
        else:
            assert replayed is False
            captured = h.amount if r.amount is None else r.amount
            hold.status, hold.captured = "CAPTURED", captured
            tx = self.model.post(r, h.reference_id, "CAPTURE", h.user_id, [(h.asset_code, captured)], rows[0])
            hold.capture = tx
        assert amount == hold.captured
        assert balance == tx.balances[h.asset_code]
        return tx

    def void_done(self, r: Void, rows: list[tuple], replay: bool) -> Hold:
        ((reference_id, status, available, replayed),) = rows
        hold = self.model.holds[r.reference_id]
        if hold.status == "HELD":
            hold.status = "VOIDED"
        assert (reference_id, status) == (r.reference_id, hold.status)
        assert replayed is (replay and hold.status == "VOIDED"), "voiding a voided hold replays; an expired one not"
        assert available == self.model.available(hold.request.user_id, hold.request.asset_code)
        return hold

    def count_transactions(self) -> int:
        return self.conn.execute(
            "SELECT count(*) FROM transactions WHERE reference_id LIKE %s", (self.prefix + "%",)
        ).fetchone()[0]

    def unchanged(self, r: AnyRequest) -> None:
        """Send r, which must write nothing (a replay or a refusal)."""
        count = self.count_transactions()
        self.send(r)
        assert self.count_transactions() == count

    @staticmethod
    def kept(outcome: object, key: str | None) -> Any:
        """For a rule targeting a bundle: the key when something new was made, else nothing."""
        return key if isinstance(outcome, Tx | Hold) else multiple()

    @staticmethod
    def refused(outcome: object, r: AnyRequest) -> Any:
        """For a rule targeting `failed`: the request when it was refused for funds or the balance limit."""
        return r if outcome in ("WL001", "WL007") else multiple()

    # ------------------------------------------------------------------ top-ups, bonuses, spends

    @initialize(target=keys, funding=st.lists(st.tuples(player_index, asset, st.integers(1, 2000)), max_size=6))
    def fund(self, funding):
        """Most examples start with a few wallets funded, so that purchases, holds and reversals mostly run;
        some start with no player holding any wallet."""
        for p, asset_code, amount in funding:
            self.send(Request("TOPUP", self.players[p], asset_code, amount, self.new_key(), "stripe"))
        return multiple(*self.model.posted)

    @rule(
        target=keys, type=op, p=player_index, asset=asset_or_unknown, amount=valid_amount, value=op_value, meta=metadata
    )
    def post_new(self, type, p, asset, amount, value, meta):
        r = Request(type, self.players[p], asset, amount, self.new_key(), value, meta)
        return self.kept(self.send(r), r.reference_id)

    @rule(
        target=failed,
        type=st.sampled_from(["TOPUP", "BONUS"]),
        p=player_index,
        asset=asset,
        value=op_value,
        delta=st.integers(-2, 2),
    )
    def credit_to_the_limit(self, type, p, asset, value, delta):
        """Credit what takes the balance to exactly 2^53-1, or just past it (WL007)."""
        balance = self.model.balances.get((self.players[p], asset), 0)
        amount = MAX - balance + delta
        if not 1 <= amount <= MAX:
            return multiple()
        r = Request(type, self.players[p], asset, amount, self.new_key(), value)
        return self.refused(self.send(r), r)

    def funded(self) -> list[tuple[str, str]]:
        return sorted(k for k in self.model.balances if self.model.available(*k) > 0)

    @precondition(lambda self: self.funded())
    @rule(target=failed, data=st.data(), delta=st.integers(-2, 1), item=op_value)
    def spend_about_everything(self, data, delta, item):
        """Spend what a funded wallet has available, a bit less, or a bit more (WL001)."""
        user, asset_code = data.draw(st.sampled_from(self.funded()))
        amount = self.model.available(user, asset_code) - delta
        if amount < 1:
            return multiple()
        r = Request("SPEND", user, asset_code, amount, self.new_key(), item)
        return self.refused(self.send(r), r)

    @rule(p=player_index, asset=asset_or_unknown, type=op, amount=any_amount, value=op_value)
    def post_any_amount(self, p, asset, type, amount, value):
        """Amounts outside 1..2^53-1 are WL006; the rest behave like any posting."""
        self.send(Request(type, self.players[p], asset, amount, self.new_key(), value))

    # ------------------------------------------------------------------ purchases

    @rule(target=keys, p=player_index, price=good_price, item=op_value, meta=metadata)
    def purchase(self, p, price, item, meta):
        """1 to 3 assets at once: all debited, or (WL001 in any, WL002, WL003) none."""
        r = Purchase(self.players[p], self.new_key(), item, price, meta)
        return self.kept(self.send(r), r.reference_id)

    @precondition(lambda self: self.funded())
    @rule(target=keys, data=st.data(), item=op_value)
    def purchase_affordable(self, data, item):
        """A price a player can pay, in 1 to 3 of the assets it has available (most such purchases succeed)."""
        user = data.draw(st.sampled_from(sorted({u for u, _ in self.funded()})))
        assets = [a for u, a in self.funded() if u == user]
        assets = data.draw(st.lists(st.sampled_from(assets), min_size=1, max_size=len(assets), unique=True))
        price = [{"asset_code": a, "amount": data.draw(st.integers(1, self.model.available(user, a)))} for a in assets]
        r = Purchase(user, self.new_key(), item, data.draw(st.permutations(price)))
        return self.kept(self.send(r), r.reference_id)

    @precondition(lambda self: self.funded())
    @rule(target=failed, data=st.data(), item=op_value)
    def purchase_about_everything(self, data, item):
        """A price of about what a player has available in 1 to 3 assets: one leg a bit short refuses them all."""
        user = data.draw(st.sampled_from(sorted({u for u, _ in self.funded()})))
        assets = data.draw(st.lists(st.sampled_from(ASSETS), min_size=1, max_size=MAX_LEGS, unique=True))
        price = []
        for asset_code in assets:
            amount = self.model.available(user, asset_code) - data.draw(st.integers(-1, 2))
            price.append({"asset_code": asset_code, "amount": max(amount, 1)})
        r = Purchase(user, self.new_key(), item, price)
        return self.refused(self.send(r), r)

    # ------------------------------------------------------------------ reversals

    @rule(
        target=keys,
        original=keys,
        how=st.sampled_from(["whole", "whole", "half", "one", "rest", "rest+1", "more", "any"]),
        any=small_amount,
        why=reason,
        meta=metadata,
    )
    def reverse(self, original, how, any, why, meta):
        """Reverse an earlier transaction, whole or in part (or too much, or what cannot be reversed)."""
        tx = self.model.posted[original]
        amount = tx.legs[0][1]
        rest = amount - self.model.reversed[(original, tx.legs[0][0])]
        part = {"whole": None, "half": max(amount // 2, 1), "one": 1, "rest": rest, "rest+1": rest + 1}
        part.update({"more": amount + 1, "any": any})
        r = Reversal(self.new_key(), original, why, part[how], meta)
        outcome = self.send(r)
        return r.reference_id if isinstance(outcome, Tx) else multiple()

    @rule(target=failed, original=keys, why=reason)
    def reverse_whole(self, original, why):
        """A whole reversal (a chargeback may be refused: WL001; the same one again is WL009)."""
        r = Reversal(self.new_key(), original, why)
        return self.refused(self.send(r), r)

    @precondition(lambda self: any(h.status == "HELD" for h in self.model.holds.values()))
    @rule(target=failed, data=st.data(), why=reason)
    def chargeback_of_held_credits(self, data, why):
        """Take back a top-up or bonus of a wallet that a hold reserves credits of: what counts is what is
        available, not the balance (WL001 naming what is held)."""
        wallets = sorted(
            {(h.request.user_id, h.request.asset_code) for h in self.model.holds.values() if h.status == "HELD"}
        )
        user, asset_code = data.draw(st.sampled_from(wallets))
        credits = sorted(
            k
            for k, tx in self.model.posted.items()
            if tx.type in ("TOPUP", "BONUS") and tx.user_id == user and tx.legs[0][0] == asset_code
        )
        if not credits:
            return multiple()
        r = Reversal(self.new_key(), data.draw(st.sampled_from(credits)), why)
        return self.refused(self.send(r), r)

    @rule(original=st.one_of(holds, st.just("never-posted")), why=reason, amount=st.none() | small_amount)
    def reverse_what_is_no_posting(self, original, why, amount):
        """A hold's key (captured or not) is WL010 'hold'; a key nobody used is WL005."""
        if original == "never-posted":
            original = self.prefix + original
        self.send(Reversal(self.new_key(), original, why, amount))

    # ------------------------------------------------------------------ holds

    @rule(
        target=holds,
        p=player_index,
        asset=asset_or_unknown,
        amount=st.one_of(small_amount, valid_amount),
        expires=expires_in,
        item=st.none() | op_value,
        meta=metadata,
    )
    def hold(self, p, asset, amount, expires, item, meta):
        r = HoldRequest(self.players[p], asset, amount, self.new_key(), expires, item, meta)
        return self.kept(self.send(r), r.reference_id)

    @precondition(lambda self: self.funded())
    @rule(target=holds, data=st.data(), delta=st.integers(-1, 2), expires=expires_in)
    def hold_about_available(self, data, delta, expires):
        """Hold what a wallet has available, a bit less, or a bit more (WL001)."""
        user, asset_code = data.draw(st.sampled_from(self.funded()))
        amount = max(self.model.available(user, asset_code) - delta, 1)
        r = HoldRequest(user, asset_code, amount, self.new_key(), expires)
        return self.kept(self.send(r), r.reference_id)

    @rule(
        target=keys,
        ref=holds,
        how=st.sampled_from(["whole", "whole", "all", "half", "one", "more"]),
    )
    def capture(self, ref, how):
        """Capture a hold, whole or in part (or more than it holds: WL014; too late: WL012, WL013)."""
        held = self.model.holds[ref].request.amount
        amount = {"whole": None, "all": held, "half": max(held // 2, 1), "one": 1, "more": held + 1}[how]
        if amount is not None and amount > MAX:
            amount = MAX
        captured_before = self.model.holds[ref].status == "CAPTURED"
        outcome = self.send(Capture(ref, amount))
        return ref if isinstance(outcome, Tx) and not captured_before else multiple()

    @rule(ref=holds)
    def void(self, ref):
        """Release a hold (VOIDED; an expired one answers EXPIRED; a captured one is WL012)."""
        self.send(Void(ref))

    @rule(ref=holds)
    def expire(self, ref):
        """The hold reaches expires_at. A TEST DEVICE: as the superuser, with the holds table's guard trigger
        off for this one statement (session_replication_role = replica, local to the transaction), its
        expires_at moves to just after its creation, in the past; nothing else changes. The model then treats
        the hold as expired, as the functions must (no job, no status change needed)."""
        hold = self.model.holds[ref]
        if hold.status != "HELD":
            return
        with self.conn.transaction():
            self.conn.execute("SET LOCAL session_replication_role = replica")
            updated = self.conn.execute(
                "UPDATE holds SET expires_at = created_at + interval '1 microsecond'"
                " WHERE reference_id = %s AND status = 'HELD'",
                (ref,),
            ).rowcount
            self.conn.execute("SET LOCAL session_replication_role = origin")  # (SET LOCAL outlives the savepoint)
        assert updated == 1
        hold.status = "EXPIRED"

    @rule(ref=holds)
    def hold_status(self, ref):
        hold = self.model.holds[ref]
        h = hold.request
        row = query(
            self.conn,
            "SELECT user_id, asset_code, amount, status, captured_amount, item_id, capture_transaction_id::text,"
            "       closed_at IS NULL FROM wallet_hold_status(%s)",
            (ref,),
        )
        capture = hold.capture.transaction_id if hold.capture else None
        assert row == [
            (h.user_id, h.asset_code, h.amount, hold.status, hold.captured, h.item_id, capture, hold.status == "HELD")
        ]

    # ------------------------------------------------------------------ hostile input

    @rule(
        kind=st.sampled_from(["posting", "purchase", "reversal", "hold", "capture", "void", "status"]),
        user=st.one_of(st.none(), hostile_text, st.just("player")),
        key=st.one_of(st.none(), hostile_text, st.just("key")),
        meta=hostile_metadata,
        data=st.data(),
    )
    def hostile(self, kind, user, key, meta, data):
        """Hostile ids, amounts, prices, lifetimes and metadata, to every function: WL006 naming the field (or,
        when they happen to be valid, judged like any request: e.g. a hold or original nobody made is WL011 or
        WL005)."""
        user = self.players[0] if valid_id(user) else user
        key = self.own(key)
        draw = data.draw
        r: AnyRequest
        if kind == "posting":
            asset_code, amount = draw(st.none() | asset_or_unknown), draw(st.none() | any_amount)
            r = Request(draw(op), user, asset_code, amount, key, draw(st.none() | hostile_text | op_value), meta)
        elif kind == "purchase":
            r = Purchase(user, key, draw(st.none() | hostile_text | op_value), draw(hostile_price), meta)
        elif kind == "reversal":
            original, why = self.own(draw(st.none() | hostile_text)), draw(st.none() | hostile_text | reason)
            r = Reversal(key, original, why, draw(st.none() | any_amount), meta)
        elif kind == "hold":
            asset_code, amount = draw(st.none() | asset_or_unknown), draw(st.none() | any_amount)
            item = draw(st.none() | hostile_text)
            r = HoldRequest(user, asset_code, amount, key, draw(any_expires_in), item, meta)
        elif kind == "capture":
            r = Capture(key, draw(st.none() | any_amount))
        elif kind == "void":
            r = Void(key)
        else:
            self.hold_status_of_nothing(key)
            return
        self.send(r)

    def hold_status_of_nothing(self, key):
        if key in self.model.holds:
            return
        try:
            query(self.conn, "SELECT * FROM wallet_hold_status(%s)", (key,))
        except psycopg.Error as error:
            assert error.sqlstate == ("WL011" if valid_id(key) else "WL006")
        else:
            raise AssertionError(f"wallet_hold_status({key!r}) found a hold that was never made")

    # ------------------------------------------------------------------ replays and key collisions

    @rule(key=keys, meta=metadata, data=st.data())
    def replay(self, key, meta, data):
        """The same request again (metadata aside; a price in another order; an amount given or left out when
        that resolves to the same): the same transaction, replayed, nothing written."""
        tx = self.model.posted[key]
        r = tx.request
        if isinstance(r, Request):
            r = replace(r, metadata=meta)
        elif isinstance(r, Purchase):
            r = Purchase(r.user_id, r.reference_id, r.item_id, data.draw(st.permutations(r.price)), meta)
        elif isinstance(r, Reversal):
            whole = tx.original.legs[0][1] if not tx.multi else None
            if whole is not None and tx.legs[0][1] == whole:
                r = replace(r, amount=data.draw(st.sampled_from([None, whole])))
            r = replace(r, metadata=meta)
        elif isinstance(r, Capture):
            held = self.model.holds[key].request.amount
            if tx.legs[0][1] == held:
                r = Capture(key, data.draw(st.sampled_from([None, held])))
        self.unchanged(r)

    @rule(ref=holds, expires=expires_in)
    def replay_hold(self, ref, expires):
        """The same hold again (any expires_in): the hold as it is now, replayed."""
        self.send(replace(self.model.holds[ref].request, expires_in=expires))

    @rule(
        key=keys,
        change=st.sampled_from(["type", "user_id", "asset_code", "amount", "op_value", "other"]),
        p=player_index,
        other_asset=asset_or_unknown,
        amount=valid_amount,
        value=op_value,
        type=op,
        data=st.data(),
    )
    def conflicting_replay(self, key, change, p, other_asset, amount, value, type, data):
        """The key again with a different request of the same kind: WL004 naming the original transaction
        (or the error about the request that comes first, or a replay when nothing actually changed)."""
        tx = self.model.posted[key]
        r = tx.request
        if isinstance(r, Request):
            changed = {
                "type": type,
                "user_id": self.players[p],
                "asset_code": other_asset,
                "amount": amount,
                "op_value": value if r.type != "TOPUP" else None,
                "other": value,
            }[change]
            fields = dict(type=r.type, user_id=r.user_id, asset_code=r.asset_code, amount=r.amount, op_value=r.op_value)
            fields[change if change != "other" else "op_value"] = changed
            if change == "type" and type != r.type and type != "TOPUP" and fields["op_value"] is None:
                fields["op_value"] = value  # a bonus or spend needs its field
            r = Request(reference_id=key, **fields)
        elif isinstance(r, Purchase):
            price = [dict(leg) for leg in r.price]
            if change in ("type", "asset_code") and len(price) > 1:
                price.pop()
            elif change in ("type", "asset_code"):
                price.append({"asset_code": next(a for a in ASSETS if a != price[0]["asset_code"]), "amount": 1})
            elif change == "amount":
                price[0]["amount"] = amount
            r = Purchase(
                self.players[p] if change == "user_id" else r.user_id,
                key,
                value if change in ("op_value", "other") else r.item_id,
                price,
            )
        elif isinstance(r, Reversal):
            if change in ("op_value", "other"):
                r = replace(r, reason=r.reason + "!" if len(r.reason) < 128 else "other")
            elif change == "amount":
                r = replace(r, amount=data.draw(st.sampled_from([None, 1, amount])))
            else:
                r = replace(r, original=data.draw(st.sampled_from(sorted(self.model.posted))))
        elif isinstance(r, Capture):
            r = Capture(key, data.draw(st.sampled_from([None, 1, amount])))
        self.unchanged(r)

    @rule(
        key=st.one_of(keys, holds),
        kind=st.sampled_from(["topup", "spend", "purchase", "hold", "reversal"]),
        p=player_index,
        asset=asset,
    )
    def reuse_key_elsewhere(self, key, kind, p, asset):
        """One key space for postings and holds: a posting under a hold's key, a hold under a posting's key,
        a purchase or a reversal under either, is WL004 naming what holds the key."""
        user = self.players[p]
        r: AnyRequest
        if kind in ("topup", "spend"):
            r = Request(kind.upper(), user, asset, 1, key, "stripe" if kind == "topup" else "sword_01")
        elif kind == "purchase":
            r = Purchase(user, key, "sword_01", [{"asset_code": asset, "amount": 1}])
        elif kind == "hold":
            r = HoldRequest(user, asset, 1, key)
        else:
            others = sorted(k for k, tx in self.model.posted.items() if tx.type not in ("REVERSAL", "CAPTURE"))
            if not others:
                return
            r = Reversal(key, others[0], "refund", 1 if not self.model.posted[others[0]].multi else None)
        if kind == "hold" and key in self.model.holds:
            self.send(r)  # the hold's own key: a replay or a WL004 about the hold
        else:
            self.unchanged(r)

    @rule(r=consumes(failed))
    def retry_refused(self, r):
        """A request refused for funds or limit claimed no key: retrying it is judged afresh."""
        self.send(r)

    # ------------------------------------------------------------------ reads

    @rule(p=player_index, asset=st.one_of(st.none(), asset_or_unknown))
    def balances(self, p, asset):
        """All of a player's balances, or one asset's (0 and never updated if the player never held it)."""
        if asset is not None:
            return self.balance_of_asset(p, asset)
        user = self.players[p]
        try:
            rows = query(
                self.conn, "SELECT asset_code, asset_name, balance, held, available FROM wallet_balances(%s)", (user,)
            )
        except psycopg.Error as error:
            assert not self.model.has_player(user), error
            assert error.sqlstate == "WL002"
            return
        m = self.model
        expected = [
            (a, ASSET_NAMES[a], m.balances[(user, a)], m.held(user, a), m.available(user, a)) for a in m.opened[user]
        ]
        assert rows == expected

    def balance_of_asset(self, p, asset):
        user = self.players[p]
        try:
            rows = query(
                self.conn,
                "SELECT asset_code, balance, held, available, last_updated IS NULL FROM wallet_balances(%s, %s)",
                (user, asset),
            )
        except psycopg.Error as error:
            expected = "WL003" if asset not in ASSETS else "WL002"
            assert error.sqlstate == expected
            assert expected == "WL003" or not self.model.has_player(user)
            return
        assert asset in ASSETS and self.model.has_player(user)
        has_wallet = (user, asset) in self.model.balances
        m = self.model
        assert rows == [
            (asset, m.balances.get((user, asset), 0), m.held(user, asset), m.available(user, asset), not has_wallet)
        ]

    @rule(p=player_index, asset=asset, data=st.data())
    def balance_at(self, p, asset, data):
        """wallet_balances(..., p_at): the balance left by the wallet's newest entry at or before the instant."""
        user = self.players[p]
        entries = self.model.history.get((user, asset))
        if not entries:
            return
        i = data.draw(st.integers(0, len(entries) - 1))
        before = data.draw(st.booleans())
        at = entries[i].created_at - (timedelta(microseconds=1) if before else timedelta(0))
        rows = query(
            self.conn,
            "SELECT asset_code, balance, held, available, last_updated FROM wallet_balances(%s, %s, %s)",
            (user, asset, at),
        )
        if before:
            previous = entries[i - 1] if i else None
            last = (previous.balances[asset], previous.created_at) if previous else (0, None)
            expected = (asset, last[0], None, None, last[1])
        else:
            expected = (asset, entries[i].balances[asset], None, None, entries[i].created_at)
        assert rows == [expected]

    @rule(p=player_index, asset=asset, limit=st.integers(1, 5))
    def history(self, p, asset, limit):
        """Newest first, paged by the entry-id cursor, equal to the model's list of postings."""
        user = self.players[p]
        if not self.model.has_player(user):
            try:
                query(self.conn, "SELECT * FROM wallet_history(%s, %s)", (user, asset))
            except psycopg.Error as error:
                assert error.sqlstate == "WL002"
            else:
                raise AssertionError("history of a player without a wallet must be WL002")
            return
        got, cursor = [], None
        while True:
            page = query(
                self.conn,
                "SELECT entry_id, transaction_id::text, type::text, amount, balance_after, reference_id,"
                "       original_reference_id"
                "  FROM wallet_history(%s, %s, p_limit => %s, p_before_entry_id => %s)",
                (user, asset, limit, cursor),
            )
            got += [row[1:] for row in page]
            if len(page) < limit:
                break
            cursor = page[-1][0]
        expected = [
            (
                x.transaction_id,
                x.type,
                dict(x.legs)[asset],
                x.balances[asset],
                x.reference_id,
                x.original.reference_id if x.original else None,
            )
            for x in reversed(self.model.history.get((user, asset), []))
        ]
        assert got == expected

    @rule(key=keys)
    def transaction(self, key):
        """The lookup: the transaction, its legs, and two entries per leg (the player's, the system wallet's)."""
        tx = self.model.posted[key]
        rows = query(
            self.conn,
            "SELECT transaction_id::text, type::text, user_id, asset_code, amount, legs, original_reference_id,"
            "       reason, wallet_name, entry_asset_code, entry_type, entry_amount FROM wallet_transaction(%s)",
            (key,),
        )
        single = (None, None) if tx.multi else tx.legs[0]
        legs = [{"asset_code": a, "amount": n} for a, n in tx.legs]
        reason = tx.request.reason if isinstance(tx.request, Reversal) else None
        original = tx.original.reference_id if tx.original else None
        assert {(*row[:5], json.dumps(row[5], sort_keys=True), *row[6:8]) for row in rows} == {
            (tx.transaction_id, tx.type, tx.user_id, *single, json.dumps(legs, sort_keys=True), original, reason)
        }
        player_side, system_side = ("CREDIT", "DEBIT") if tx.credits_player else ("DEBIT", "CREDIT")
        expected = []
        for a, n in tx.legs:
            expected += [(tx.user_id, a, player_side, n), (f"{ASSET_NAMES[a]} {tx.system}", a, system_side, n)]
        assert sorted(row[8:] for row in rows) == sorted(expected)

    @rule(key=st.one_of(hostile_text, st.just("never-used"), holds))
    def transaction_unknown(self, key):
        """No transaction under a key nobody posted, nor under a hold's key until it is captured."""
        if key in self.model.posted:
            return
        if key not in self.model.holds:
            key = key if not valid_id(key) else self.prefix + "unknown_" + key[:100]
        try:
            query(self.conn, "SELECT * FROM wallet_transaction(%s)", (key,))
        except psycopg.Error as error:
            assert error.sqlstate == ("WL005" if valid_id(key) else "WL006")
        else:
            raise AssertionError(f"wallet_transaction({key!r}) found a transaction that was never posted")

    # ------------------------------------------------------------------ invariants

    @invariant()
    def ledger_is_healthy(self):
        assert self.conn.execute("SELECT * FROM wallet_verify()").fetchall() == []

    @invariant()
    def one_transaction_per_posted_key(self):
        assert self.count_transactions() == len(self.model.posted)

    @invariant()
    def balances_and_holds_match_model(self):
        """Stored balances, wallet_balances() (balance, held, available) and every hold's state."""
        m = self.model
        rows = self.conn.execute(
            "SELECT w.user_id, w.asset_code, w.balance, b.balance, b.held, b.available"
            "  FROM wallets w CROSS JOIN LATERAL wallet_balances(w.user_id, w.asset_code) b"
            " WHERE w.user_id LIKE %s",
            (self.prefix + "%",),
        ).fetchall()
        stored = {(u, a): b for u, a, b, *_ in rows}
        assert stored == m.balances, (stored, m.balances)
        for user, asset_code, stored, balance, held, available in rows:
            assert (balance, held, available) == (stored, m.held(user, asset_code), m.available(user, asset_code))
            assert available >= 0
        holds = self.conn.execute(
            "SELECT reference_id, status::text, captured_amount FROM holds WHERE reference_id LIKE %s",
            (self.prefix + "%",),
        ).fetchall()
        assert len(holds) == len(m.holds)
        for ref, status, captured in holds:
            hold = m.holds[ref]
            # an expired hold may still read HELD in the table: it stopped counting at expires_at all the same
            assert status == hold.status or (hold.status, status) == ("EXPIRED", "HELD"), (ref, status, hold)
            assert captured == hold.captured


def test_sql_api_matches_the_ledger_model(db_url):
    made: Counter[str] = Counter()
    with psycopg.connect(db_url, autocommit=True) as conn:
        machine = type("Machine", (LedgerMachine,), {"conn": conn, "made": made})
        run_state_machine_as_test(machine, settings=PROFILE)
    # the examples really exercised the ledger: many transactions of every kind, over many wallets, and holds
    # that ended every way
    types = ("TOPUP", "BONUS", "SPEND", "PURCHASE", "REVERSAL", "CAPTURE")
    assert sum(made[t] for t in types) > 50 and made["wallets"] > 10, made
    assert [t for t in types if not made[t]] == [], made
    assert [s for s in ("HELD", "CAPTURED", "VOIDED", "EXPIRED") if not made["hold " + s]] == [], made
