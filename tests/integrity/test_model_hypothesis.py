"""The SQL API against a plain Python model of the ledger (hypothesis stateful testing).

Random sequences of top-ups, bonuses and spends over several players (none of whom has a wallet when an
example starts) and all three assets (plus one that does not exist), with amounts from 1 up to 2^53-1 and
beyond, replays of earlier keys, conflicting replays and hostile ids. After every step the balances and
the error (SQLSTATE and its JSON DETAIL) must be exactly what the model predicts, and wallet_verify() must
find nothing.

Each example uses its own player ids and key prefix, so examples share one database without seeing each
other's state. `WALLET_HYPOTHESIS_PROFILE=long` runs many more and longer examples.
"""

# Request fields are Optional on purpose (the model sends NULLs too); the model code indexes them freely.
# mypy: disable-error-code="arg-type, operator"
from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field

import psycopg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from service.validation import forbidden_id

MAX = 2**53 - 1
ASSETS = ["GOLD_COINS", "DIAMONDS", "LOYALTY_POINTS"]
ASSET_NAMES = {"GOLD_COINS": "Gold Coins", "DIAMONDS": "Diamonds", "LOYALTY_POINTS": "Loyalty Points"}
PLAYERS = 3
OPS = {"TOPUP": "wallet_topup", "BONUS": "wallet_bonus", "SPEND": "wallet_spend"}
OP_FIELD = {"TOPUP": "p_payment_method", "BONUS": "p_bonus_type", "SPEND": "p_item_id"}

settings.register_profile(
    "wallet-ci",
    max_examples=60,
    stateful_step_count=40,
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
op_value = st.sampled_from(["stripe", "paypal", "DAILY_LOGIN", "sword_01", "x" * 128])
nul_free = st.characters(codec="utf-8", exclude_characters="\x00")  # valid UTF-8 PostgreSQL can hold
metadata = st.one_of(
    st.none(), st.dictionaries(st.text(nul_free, max_size=5), st.integers() | st.text(nul_free, max_size=5), max_size=3)
)


# the SQL rule for ids (_wallet_printable, sql/0004.trust.sql) is the table the HTTP layer uses too
def valid_id(value: str | None) -> bool:
    return value is not None and 1 <= len(value) <= 128 and not any(forbidden_id(ch) for ch in value)


# hostile ids: empty, too long, NUL-free unicode of any length (controls, bidi and zero-width included)
hostile_text = st.one_of(st.just(""), st.just("y" * 129), st.text(nul_free, max_size=140))


@dataclass(frozen=True)
class Request:
    """One posting request as the SQL API receives it."""

    type: str
    user_id: str | None
    asset_code: str | None
    amount: int | None
    reference_id: str | None
    op_value: str | None
    metadata: object = None

    def same_as(self, other: Request) -> bool:
        # metadata is not part of what a replay compares
        return (self.type, self.user_id, self.asset_code, self.amount, self.op_value) == (
            other.type,
            other.user_id,
            other.asset_code,
            other.amount,
            other.op_value,
        )


@dataclass
class Posted:
    request: Request
    transaction_id: str
    balance: int


@dataclass
class Model:
    balances: dict[tuple[str, str], int] = field(default_factory=dict)  # (player, asset) -> balance
    opened: dict[str, list[str]] = field(default_factory=dict)  # player -> assets in the order opened
    posted: dict[str, Posted] = field(default_factory=dict)  # reference id -> its transaction
    history: dict[tuple[str, str], list[Posted]] = field(default_factory=dict)  # oldest first

    def has_player(self, user_id: str) -> bool:
        return bool(self.opened.get(user_id))

    def expect(self, r: Request) -> tuple[str | None, dict]:
        """(None, {}) when the request posts a new transaction, else (SQLSTATE, expected DETAIL subset)."""
        for name, value in (("user_id", r.user_id), ("reference_id", r.reference_id)):
            if not valid_id(value):
                return "WL006", {"field": name}
        if r.asset_code is None:
            return "WL006", {"field": "asset_code"}
        if r.amount is None or not 1 <= r.amount <= MAX:
            return "WL006", {"field": "amount"}
        field_name = OP_FIELD[r.type][2:]
        if (r.op_value is None and r.type != "TOPUP") or (r.op_value is not None and not valid_id(r.op_value)):
            return "WL006", {"field": field_name}
        if r.metadata is not None and not isinstance(r.metadata, dict):
            return "WL006", {"field": "metadata"}
        if r.reference_id in self.posted:
            original = self.posted[r.reference_id]
            if original.request.same_as(r):
                return "replay", {}
            return "WL004", {"transaction_id": original.transaction_id, "reference_id": r.reference_id}
        if r.asset_code not in ASSETS:
            return "WL003", {"asset_code": r.asset_code}
        balance = self.balances.get((r.user_id, r.asset_code), 0)
        if r.type == "SPEND":
            if not self.has_player(r.user_id):
                return "WL002", {"user_id": r.user_id}
            if balance < r.amount:
                return "WL001", {
                    "required": r.amount,
                    "available": balance,
                    "user_id": r.user_id,
                    "asset_code": r.asset_code,
                }
        elif balance + r.amount > MAX:
            return "WL007", {"amount": r.amount, "balance": balance}
        return None, {}

    def apply(self, r: Request, transaction_id: str) -> Posted:
        key = (r.user_id, r.asset_code)
        if key not in self.balances:
            self.balances[key] = 0
            self.opened.setdefault(r.user_id, []).append(r.asset_code)
        self.balances[key] += -r.amount if r.type == "SPEND" else r.amount
        posted = Posted(r, transaction_id, self.balances[key])
        self.posted[r.reference_id] = posted
        self.history.setdefault(key, []).append(posted)
        return posted


def call(conn: psycopg.Connection, r: Request):
    """Call wallet_topup/bonus/spend with named arguments; returns the row or the psycopg error."""
    sql = (
        f"SELECT (p).* FROM (SELECT {OPS[r.type]}(p_user_id => %s, p_asset_code => %s, p_amount => %s::bigint,"
        f" p_reference_id => %s, {OP_FIELD[r.type]} => %s, p_metadata => %s::jsonb) AS p) s"
    )
    meta = None if r.metadata is None else json.dumps(r.metadata)
    try:
        return conn.execute(sql, (r.user_id, r.asset_code, r.amount, r.reference_id, r.op_value, meta)).fetchone()
    except psycopg.Error as error:
        return error


class LedgerMachine(RuleBasedStateMachine):
    """Subclassed per test with `conn` (an autocommit connection to the test's database)."""

    conn: psycopg.Connection
    examples = itertools.count()

    keys = Bundle("keys")  # reference ids that hold a transaction
    failed = Bundle("failed")  # requests that were refused for lack of funds / balance limit

    def __init__(self) -> None:
        super().__init__()
        n = next(self.examples)
        self.prefix = f"hyp{n}-"  # no LIKE wildcard in it
        self.players = [f"{self.prefix}p{i}" for i in range(PLAYERS)]
        self.model = Model()
        self.counter = itertools.count()

    def new_key(self) -> str:
        return f"{self.prefix}k{next(self.counter)}"

    # ------------------------------------------------------------------ postings

    def post(self, r: Request):
        """Post r, check the outcome against the model; returns the Posted (or None when refused)."""
        expected, detail = self.model.expect(r)
        result = call(self.conn, r)
        if expected is None or expected == "replay":
            assert not isinstance(result, psycopg.Error), f"{r} failed: {result!r}"
            transaction_id, user_id, asset_code, amount, balance, tx_type, _created_at, replayed = result
            assert (user_id, asset_code, amount, tx_type) == (r.user_id, r.asset_code, r.amount, r.type)
            if expected == "replay":
                original = self.model.posted[r.reference_id]
                assert replayed is True
                assert str(transaction_id) == original.transaction_id
                assert balance == original.balance, "a replay reports the balance the original left"
                return original
            assert replayed is False
            posted = self.model.apply(r, str(transaction_id))
            assert balance == posted.balance
            return posted
        assert isinstance(result, psycopg.Error), f"{r} succeeded, expected {expected}: {result}"
        assert result.sqlstate == expected, f"{r}: {result.sqlstate} {result}, expected {expected}"
        got = json.loads(result.diag.message_detail)
        for name, value in detail.items():
            assert got[name] == value, f"{r}: DETAIL {got}, expected {name}={value!r}"
        if expected == "WL006":
            assert result.diag.column_name == detail["field"]
        return None

    @rule(
        target=keys, type=op, p=player_index, asset=asset_or_unknown, amount=valid_amount, value=op_value, meta=metadata
    )
    def post_new(self, type, p, asset, amount, value, meta):
        r = Request(type, self.players[p], asset, amount, self.new_key(), value, meta)
        posted = self.post(r)
        if posted is None:
            return multiple()
        return posted.request.reference_id

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
        posted = self.post(r)
        return multiple() if posted is not None else r

    def funded(self) -> list[tuple[str, str]]:
        return sorted(k for k, b in self.model.balances.items() if b > 0)

    @precondition(lambda self: self.funded())
    @rule(target=failed, data=st.data(), delta=st.integers(-2, 1), item=op_value)
    def spend_about_everything(self, data, delta, item):
        """Spend a funded wallet's whole balance, a bit less, or a bit more (WL001)."""
        user, asset_code = data.draw(st.sampled_from(self.funded()))
        amount = self.model.balances[(user, asset_code)] - delta
        if amount < 1:
            return multiple()
        r = Request("SPEND", user, asset_code, amount, self.new_key(), item)
        posted = self.post(r)
        return multiple() if posted is not None else r

    @rule(p=player_index, asset=asset_or_unknown, type=op, amount=any_amount, value=op_value)
    def post_any_amount(self, p, asset, type, amount, value):
        """Amounts outside 1..2^53-1 are WL006; the rest behave like any posting."""
        self.post(Request(type, self.players[p], asset, amount, self.new_key(), value))

    @rule(
        type=op,
        user=st.one_of(st.none(), hostile_text),
        key=st.one_of(st.none(), hostile_text),
        asset=st.one_of(st.none(), asset_or_unknown),
        value=st.one_of(st.none(), hostile_text),
        meta=st.one_of(st.none(), st.integers(), st.lists(st.integers(), max_size=2), st.text(nul_free, max_size=3)),
    )
    def post_hostile(self, type, user, key, asset, value, meta):
        """Hostile ids and metadata: WL006 (or, when they happen to be valid, an ordinary posting)."""
        if valid_id(key):
            key = self.prefix + key[: 128 - len(self.prefix)]  # never collide with another example
        if valid_id(user):
            user = self.players[0]
        self.post(Request(type, user, asset, 100, key, value, meta))

    @rule(key=keys, meta=metadata)
    def replay(self, key, meta):
        """The same request again: the same transaction, replayed, nothing written."""
        original = self.model.posted[key].request
        count = self.count_transactions()
        self.post(
            Request(original.type, original.user_id, original.asset_code, original.amount, key, original.op_value, meta)
        )
        assert self.count_transactions() == count

    @rule(
        key=keys,
        change=st.sampled_from(["type", "user_id", "asset_code", "amount", "op_value"]),
        p=player_index,
        other_asset=asset_or_unknown,
        amount=valid_amount,
        value=op_value,
        type=op,
    )
    def conflicting_replay(self, key, change, p, other_asset, amount, value, type):
        """The key again with a different request: WL004 naming the original transaction."""
        original = self.model.posted[key].request
        changed = {
            "type": type,
            "user_id": self.players[p],
            "asset_code": other_asset,
            "amount": amount,
            "op_value": value if original.type != "TOPUP" else None,
        }[change]
        fields = dict(
            type=original.type,
            user_id=original.user_id,
            asset_code=original.asset_code,
            amount=original.amount,
            op_value=original.op_value,
        )
        fields[change] = changed
        if change == "type" and type != original.type and type != "TOPUP" and fields["op_value"] is None:
            fields["op_value"] = value  # a bonus or spend needs its field
        r = Request(reference_id=key, **fields)
        count = self.count_transactions()
        self.post(r)  # the model says WL004, or replay when nothing actually changed
        assert self.count_transactions() == count

    @rule(r=consumes(failed))
    def retry_refused(self, r):
        """A request refused for funds or limit claimed no key: retrying it is judged afresh."""
        self.post(r)

    # ------------------------------------------------------------------ reads

    @rule(p=player_index, asset=st.one_of(st.none(), asset_or_unknown))
    def balances(self, p, asset):
        """All of a player's balances, or one asset's (0 and never updated if the player never held it)."""
        if asset is not None:
            return self.balance_of_asset(p, asset)
        user = self.players[p]
        try:
            rows = self.conn.execute(
                "SELECT asset_code, asset_name, balance FROM wallet_balances(%s)", (user,)
            ).fetchall()
        except psycopg.Error as error:
            assert not self.model.has_player(user), error
            assert error.sqlstate == "WL002"
            return
        expected = [(a, ASSET_NAMES[a], self.model.balances[(user, a)]) for a in self.model.opened[user]]
        assert rows == expected

    def balance_of_asset(self, p, asset):
        user = self.players[p]
        try:
            rows = self.conn.execute(
                "SELECT asset_code, balance, last_updated IS NULL FROM wallet_balances(%s, %s)", (user, asset)
            ).fetchall()
        except psycopg.Error as error:
            expected = "WL003" if asset not in ASSETS else "WL002"
            assert error.sqlstate == expected
            assert expected == "WL003" or not self.model.has_player(user)
            return
        assert asset in ASSETS and self.model.has_player(user)
        held = (user, asset) in self.model.balances
        assert rows == [(asset, self.model.balances.get((user, asset), 0), not held)]

    @rule(p=player_index, asset=asset, limit=st.integers(1, 5))
    def history(self, p, asset, limit):
        """Newest first, paged by the entry-id cursor, equal to the model's list of postings."""
        user = self.players[p]
        if not self.model.has_player(user):
            try:
                self.conn.execute("SELECT * FROM wallet_history(%s, %s)", (user, asset))
            except psycopg.Error as error:
                assert error.sqlstate == "WL002"
            else:
                raise AssertionError("history of a player without a wallet must be WL002")
            return
        got, cursor = [], None
        while True:
            page = self.conn.execute(
                "SELECT entry_id, transaction_id::text, type::text, amount, balance_after, reference_id"
                "  FROM wallet_history(%s, %s, p_limit => %s, p_before_entry_id => %s)",
                (user, asset, limit, cursor),
            ).fetchall()
            got += [row[1:] for row in page]
            if len(page) < limit:
                break
            cursor = page[-1][0]
        expected = [
            (x.transaction_id, x.request.type, x.request.amount, x.balance, x.request.reference_id)
            for x in reversed(self.model.history.get((user, asset), []))
        ]
        assert got == expected

    @rule(key=keys)
    def transaction(self, key):
        posted = self.model.posted[key]
        r = posted.request
        rows = self.conn.execute(
            "SELECT transaction_id::text, type::text, user_id, asset_code, amount, wallet_name, entry_type,"
            "       entry_amount FROM wallet_transaction(%s)",
            (key,),
        ).fetchall()
        assert {row[:5] for row in rows} == {(posted.transaction_id, r.type, r.user_id, r.asset_code, r.amount)}
        system = ASSET_NAMES[r.asset_code] + {"TOPUP": " Treasury", "BONUS": " Bonus Pool", "SPEND": " Revenue"}[r.type]
        player_side, system_side = ("DEBIT", "CREDIT") if r.type == "SPEND" else ("CREDIT", "DEBIT")
        legs = sorted((row[5], row[6], row[7]) for row in rows)
        assert legs == sorted([(r.user_id, player_side, r.amount), (system, system_side, r.amount)])

    @rule(key=st.one_of(hostile_text, st.just("never-used")))
    def transaction_unknown(self, key):
        key = key if not valid_id(key) else self.prefix + "unknown_" + key[:100]
        try:
            self.conn.execute("SELECT * FROM wallet_transaction(%s)", (key,)).fetchall()
        except psycopg.Error as error:
            assert error.sqlstate == ("WL005" if valid_id(key) else "WL006")
        else:
            raise AssertionError(f"wallet_transaction({key!r}) found a transaction that was never posted")

    # ------------------------------------------------------------------ invariants

    def count_transactions(self) -> int:
        return self.conn.execute(
            "SELECT count(*) FROM transactions WHERE reference_id LIKE %s", (self.prefix + "%",)
        ).fetchone()[0]

    @invariant()
    def ledger_is_healthy(self):
        assert self.conn.execute("SELECT * FROM wallet_verify()").fetchall() == []

    @invariant()
    def one_transaction_per_posted_key(self):
        assert self.count_transactions() == len(self.model.posted)

    @invariant()
    def stored_balances_match_model(self):
        rows = self.conn.execute(
            "SELECT user_id, asset_code, balance FROM wallets WHERE user_id LIKE %s", (self.prefix + "%",)
        ).fetchall()
        assert {(u, a): b for u, a, b in rows} == self.model.balances
        assert all(b >= 0 for _, _, b in rows)


def test_sql_api_matches_the_ledger_model(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        machine = type("Machine", (LedgerMachine,), {"conn": conn})
        run_state_machine_as_test(machine, settings=PROFILE)
        # the examples really exercised the ledger: many transactions, over many wallets
        posted = conn.execute("SELECT count(*) FROM transactions WHERE reference_id LIKE 'hyp%'").fetchone()[0]
        wallets = conn.execute("SELECT count(*) FROM wallets WHERE user_id LIKE 'hyp%'").fetchone()[0]
    assert posted > 50 and wallets > 10
