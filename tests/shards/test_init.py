"""`wallet-service shards init`: the proxy has every public function of a shard with the same signature and
the same rights, the layout is checked and kept across re-runs, and a function without a routing rule stops
the set-up."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from service import shards
from tests.shards.conftest import Sharded

WALLET_SERVICE = Path(sys.executable).parent / "wallet-service"

SIGNATURES = """
SELECT p.proname::text, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid)
  FROM pg_proc p
 WHERE p.pronamespace = 'public'::regnamespace AND p.proname ~ '^wallet_' AND p.proname !~ '^wallet_shard_'
   AND p.proname <> 'wallet_grant_role'
 ORDER BY 1
"""

APP_MAY_EXECUTE = """
SELECT p.proname::text FROM pg_proc p
 WHERE p.pronamespace = 'public'::regnamespace AND p.proname ~ '^wallet_' AND p.proname !~ '^wallet_shard_'
   AND p.proname <> 'wallet_grant_role' AND has_function_privilege('wallet_app', p.oid, 'EXECUTE')
 ORDER BY 1
"""


def rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [tuple(r) for r in conn.execute(query)]


def test_the_proxy_has_every_public_function_with_its_signature_and_rights(sharded: Sharded):
    shard = rows(sharded.shards[0], SIGNATURES)
    assert len(shard) > 20
    assert rows(sharded.proxy, SIGNATURES) == shard
    assert rows(sharded.proxy, APP_MAY_EXECUTE) == rows(sharded.shards[0], APP_MAY_EXECUTE)
    assert "wallet_seed" not in {r[0] for r in rows(sharded.proxy, APP_MAY_EXECUTE)}


def test_every_public_function_has_a_routing_rule_and_every_rule_a_function():
    # one file per function in procedures/: the public ones are wallet_*, the shard side's wallet_shard_*
    procedures = Path(__file__).resolve().parents[2] / "procedures"
    names = {p.stem for p in procedures.glob("wallet_*.sql") if not p.stem.startswith("wallet_shard_")}
    assert names == set(shards.ROUTES), (sorted(names - set(shards.ROUTES)), sorted(set(shards.ROUTES) - names))


def test_init_is_rerunnable_and_keeps_the_recorded_layout(sharded: Sharded):
    with psycopg.connect(sharded.shards[0], autocommit=True) as s0:
        before = s0.execute("SELECT name, partition_count, partitions FROM shard_identity").fetchone()
    assert before == ("s0", 8, [0, 2, 4, 6])
    with psycopg.connect(sharded.proxy, autocommit=True) as proxy:
        proxy.execute("SELECT wallet_topup('user_bob', 'GOLD_COINS', 5, 'before_rerun')")
    run = subprocess.run(
        [str(WALLET_SERVICE), "shards", "init", "--proxy", sharded.proxy, "--partitions", "8"]
        + [arg for url in sharded.shards for arg in ("--shard", url)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "s0: " in run.stdout and "partitions 4 of 8" in run.stdout
    with psycopg.connect(sharded.proxy, autocommit=True) as proxy:
        rows_ = proxy.execute("SELECT reference_id FROM wallet_events(0)").fetchall()
        assert "before_rerun" in {r[0] for r in rows_}, "the proxy's event feed survives a re-run"
        assert proxy.execute("SELECT * FROM wallet_verify()").fetchall() == []
        replay = proxy.execute("SELECT replayed FROM wallet_topup('user_bob', 'GOLD_COINS', 5, 'before_rerun')")
        assert replay.fetchone()[0] is True


def test_init_refuses_a_bad_layout(sharded: Sharded):
    base = [arg for url in sharded.shards for arg in ("--shard", url)]
    for extra, message in (
        (["--partitions", "6"], "power of two"),
        (["--partitions", "1"], "at least the number of shards"),
        (["--partitions", "16"], "has 8 partitions recorded, not 16"),
    ):
        run = subprocess.run(
            [str(WALLET_SERVICE), "shards", "init", "--proxy", sharded.proxy, *base, *extra],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 2, (extra, run.stdout, run.stderr)
        assert message in run.stderr, (extra, run.stderr)
    with pytest.raises(shards.ShardError, match="the same shard is given twice"):
        shards.layout([sharded.shards[0], sharded.shards[0]], 8)
    with pytest.raises(shards.ShardError, match="partition 2 is recorded on both s0 and s1"):
        shards.check_layout([shards.Shard("s0", "a", [0, 2]), shards.Shard("s1", "b", [1, 2, 3])], 4)
    with pytest.raises(shards.ShardError, match=r"no shard holds partition\(s\) \[3\]"):
        shards.check_layout([shards.Shard("s0", "a", [0, 2]), shards.Shard("s1", "b", [1])], 4)


def test_a_public_function_without_a_routing_rule_stops_init(sharded: Sharded):
    name = f"wallet_unrouted_{uuid.uuid4().hex[:6]}"
    for url in sharded.shards:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE FUNCTION {name}() RETURNS integer LANGUAGE sql RETURN 1")
    with pytest.raises(shards.ShardError, match=f"no proxy route for {name}"):
        shards.init(sharded.proxy, sharded.shards, partitions=8)
    with psycopg.connect(sharded.proxy, autocommit=True) as proxy:  # the failed run changed nothing
        assert proxy.execute("SELECT count(*) FROM wallet_balances('user_bob')").fetchone()[0] == 1


def test_init_refuses_a_ledger_database_as_the_proxy(sharded: Sharded, db_url: str):
    """The proxy's re-install drops every wallet function and view of its database: never on a ledger."""
    for proxy in (db_url, sharded.shards[1]):
        with pytest.raises(shards.ShardError, match=r"is a ledger database .* not a proxy"):
            shards.init(proxy, [sharded.shards[0]], partitions=8)
        with psycopg.connect(proxy, autocommit=True) as conn:
            guards = conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'wallets_player_at_home'")
            assert guards.fetchone()[0] == 1
            assert conn.execute("SELECT to_regproc('wallet_topup') IS NOT NULL").fetchone()[0]
