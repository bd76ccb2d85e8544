"""The `wallet-service` command: --help everywhere; migrate (with --app-login and --seed), seed, verify and the
API keys (create, list, revoke) against a real database."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from service import schema
from tests.access import app_login_url

WALLET_SERVICE = Path(sys.executable).parent / "wallet-service"


def run(*args: str, database_url: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if database_url:
        env["DATABASE_URL"] = database_url
    return subprocess.run([str(WALLET_SERVICE), *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["migrate"],
        ["seed"],
        ["verify"],
        ["keys"],
        ["keys", "create"],
        ["keys", "list"],
        ["keys", "revoke"],
        ["grant"],
    ],
)
def test_every_command_has_help(command):
    result = run(*command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: wallet-service")


def test_serve_help_names_host_and_port():
    out = run("serve", "--help").stdout
    assert "--host" in out and "--port" in out


def test_migrate_seed_verify_on_an_empty_database(empty_db_url):
    migrated = run("migrate", database_url=empty_db_url)
    assert migrated.returncode == 0, migrated.stderr
    seeded = run("seed", database_url=empty_db_url)
    assert seeded.returncode == 0 and seeded.stdout.count("posted") == 4
    again = run("seed", database_url=empty_db_url)
    assert again.returncode == 0 and again.stdout.count("already there") == 4
    verified = run("verify", database_url=empty_db_url)
    assert verified.returncode == 0 and "0 violation(s)" in verified.stdout


def test_verify_exits_non_zero_and_prints_violations(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        # corrupt a stored balance behind the triggers' back, as only a superuser could
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE wallets SET balance = balance + 1 WHERE user_id = 'user_bob'")
    result = run("verify", database_url=db_url)
    assert result.returncode == 1
    assert "VIOLATION" in result.stdout and "user_bob" in result.stdout


def test_migrate_help_names_the_app_login_and_seed_options():
    out = run("migrate", "--help").stdout
    assert "--app-login" in out and "--seed" in out


def test_migrate_grants_wallet_app_to_the_app_login_and_seeds(empty_db_url, conn):
    login = f"cli_app_{uuid.uuid4().hex[:12]}"
    conn.execute(f"CREATE ROLE {login} LOGIN")
    try:
        result = run("migrate", "--app-login", login, "--seed", database_url=empty_db_url)
        assert result.returncode == 0, result.stderr
        assert f"{login}: granted wallet_app" in result.stdout and result.stdout.count("posted") == 4
        with psycopg.connect(empty_db_url, autocommit=True) as admin:
            member = admin.execute("SELECT pg_has_role(%s, 'wallet_app', 'MEMBER')", (login,)).fetchone()[0]
            assert member is True
        # that login now serves: it may call the functions, and read no table
        with psycopg.connect(schema.login_url(empty_db_url, login), autocommit=True) as app:
            assert app.execute("SELECT count(*) FROM wallet_balances('user_alice')").fetchone()[0] == 2
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("SELECT * FROM wallets")
        unknown = run("migrate", "--app-login", "no_such_login_role", database_url=empty_db_url)
        assert unknown.returncode == 2 and "no login role is named no_such_login_role" in unknown.stderr
    finally:
        conn.execute(f"DROP OWNED BY {login}")
        conn.execute(f"DROP ROLE {login}")


def test_keys_create_list_revoke(db_url, conn):
    created = run("keys", "create", "game-backend", "--scopes", "read,spend", database_url=db_url)
    assert created.returncode == 0, created.stderr
    *text, last = created.stdout.splitlines()
    assert re.fullmatch(r"wsk_[0-9a-f]{64}", last)  # the secret, alone on the last line
    assert "game-backend" in text[0] and "read,spend" in text[0]
    assert last not in created.stderr and not any(last in line for line in text)
    assert schema.active_key_name(db_url, last) == "game-backend"
    # only its hash is stored
    stored = conn.execute("SELECT key_hash FROM api_keys WHERE name = 'game-backend'").fetchone()[0]
    assert bytes(stored) == schema.key_hash(last)
    dump = conn.execute("SELECT string_agg(t::text, ' ') FROM api_keys t").fetchone()[0]
    assert last[4:] not in dump

    listed = run("keys", "list", database_url=db_url)
    assert listed.returncode == 0
    header, row = listed.stdout.splitlines()
    assert header.split()[:2] == ["NAME", "SCOPES"]
    assert row.split()[:2] == ["game-backend", "read,spend"] and row.split()[-2:] == ["postgres", "-"]
    assert last[4:] not in listed.stdout

    revoked = run("keys", "revoke", "game-backend", database_url=db_url)
    assert revoked.returncode == 0 and "revoked API key game-backend" in revoked.stdout
    assert schema.active_key_name(db_url, last) is None
    listed = run("keys", "list", database_url=db_url).stdout.splitlines()[1]
    assert listed.split()[-1] != "-"  # its revocation time
    assert run("keys", "revoke", "game-backend", database_url=db_url).returncode == 0  # idempotent


@pytest.mark.parametrize(
    "args,message",
    [
        (["create", "taken", "--scopes", "read"], "an API key named taken already exists"),
        (["create", "fresh", "--scopes", "read,launch"], "invalid argument scopes"),
        (["create", "bad name", "--scopes", "read"], "invalid argument name"),
        (["revoke", "nobody"], "no API key is named nobody"),
    ],
)
def test_keys_refuse_bad_arguments(db_url, args, message):
    schema.create_key(db_url, "taken", ["read"])
    result = run("keys", *args, database_url=db_url)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not re.search(r"wsk_[0-9a-f]{64}", result.stdout)


def test_keys_need_the_owner(db_url):
    result = run("keys", "create", "sneaky", "--scopes", "admin", database_url=app_login_url(db_url))
    assert result.returncode == 1 and "permission denied" in result.stderr and "wallet_owner" in result.stderr
    assert [k.name for k in schema.list_keys(db_url)] == []


def test_verify_anchor_catches_a_rewrite_that_recomputed_the_hash_chain(db_url, tmp_path):
    anchor = tmp_path / "anchor.json"
    saved = run("verify", "--save-anchor", str(anchor), database_url=db_url)
    assert saved.returncode == 0, saved.stdout + saved.stderr
    digest = re.search(r"chain heads: 4 wallets, digest sha256:([0-9a-f]{64})", saved.stdout)
    assert digest, saved.stdout
    assert json.loads(anchor.read_text())["digest"] == digest.group(1)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SELECT wallet_topup('user_bob', 'GOLD_COINS', 5, 'cli_anchor_1', 'card')")
    later = run("verify", "--anchor", str(anchor), database_url=db_url)
    assert later.returncode == 0, later.stdout  # history only grows: the anchored heads still hold
    assert digest.group(1) not in later.stdout  # ... while the digest of today's heads moved on
    with psycopg.connect(db_url, autocommit=True) as conn:
        # a superuser rewrites charlie's opening balance and recomputes his chain: wallet_verify() is blind to it
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE transactions SET amount = 1 WHERE reference_id = 'init_charlie_gold_001'")
        conn.execute(
            "UPDATE ledger_entries e SET amount = sign(e.amount), "
            "balance_after = CASE WHEN e.balance_after IS NOT NULL THEN 1 END "
            "FROM transactions t WHERE t.id = e.transaction_id AND t.reference_id = 'init_charlie_gold_001'"
        )
        conn.execute("UPDATE wallets SET balance = 1 WHERE user_id = 'user_charlie'")
        conn.execute(
            "UPDATE ledger_entries e "
            "SET entry_hash = _wallet_entry_hash(NULL, t, e.wallet_id, e.amount, e.balance_after) "
            "FROM transactions t WHERE t.id = e.transaction_id AND t.reference_id = 'init_charlie_gold_001' "
            "AND e.balance_after IS NOT NULL"
        )
    blind = run("verify", database_url=db_url)
    assert "entry_hash_mismatch" not in blind.stdout
    caught = run("verify", "--anchor", str(anchor), database_url=db_url)
    assert caught.returncode == 1
    assert "VIOLATION anchor_mismatch" in caught.stdout and "had hash" in caught.stdout
