"""The `wallet-service` command: --help everywhere; migrate, seed and verify against a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

WALLET_SERVICE = Path(sys.executable).parent / "wallet-service"


def run(*args: str, database_url: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if database_url:
        env["DATABASE_URL"] = database_url
    return subprocess.run([str(WALLET_SERVICE), *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", [[], ["serve"], ["migrate"], ["seed"], ["verify"]])
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
