"""The embedded PostgreSQL: data kept across restarts, and a postmaster killed with -9 is started again."""

from __future__ import annotations

import os
import signal

import psycopg

from service import embedded, schema


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
