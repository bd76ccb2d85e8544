"""Schema management: yoyo migrations from sql/, then every function file from procedures/."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from yoyo import get_backend, read_migrations

log = logging.getLogger(__name__)

# Any constant will do: it serialises concurrent `migrate` runs against one database.
_MIGRATE_LOCK_KEY = 0x77616C6C6574  # "wallet"


def resource_dir(name: str) -> Path:
    """sql/ or procedures/: inside the installed package, or beside it in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / name, here.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"{name}/ is neither in {here} nor in {here.parent}")


def yoyo_url(database_url: str) -> str:
    """yoyo picks its driver from the scheme: postgresql+psycopg means psycopg 3."""
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


def procedure_files() -> list[Path]:
    return sorted(resource_dir("procedures").glob("*.sql"))


def apply_procedures(conn: psycopg.Connection) -> int:
    """(Re)create every function, then re-apply ownership and grants (_wallet_secure), in one transaction;
    returns how many files were applied."""
    files = procedure_files()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK_KEY,))
        for path in files:
            conn.execute(path.read_text())
        conn.execute("SELECT _wallet_secure()")
    return len(files)


def migrate(database_url: str) -> tuple[int, int]:
    """Apply pending migrations, then re-apply all functions. Safe to run any number of times.

    Returns (migrations applied now, function files applied).
    """
    backend = get_backend(yoyo_url(database_url))
    try:
        migrations = read_migrations(str(resource_dir("sql")))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
    finally:
        backend.connection.close()
    with psycopg.connect(database_url, autocommit=True) as conn:
        applied = apply_procedures(conn)
    log.info("migrations applied: %d, function files applied: %d", len(pending), applied)
    return len(pending), applied


def seed(database_url: str) -> list[tuple]:
    """Post the demo players' opening balances (idempotent); returns the wallet_seed() rows."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute("SELECT * FROM wallet_seed()").fetchall()


def verify(database_url: str) -> list[tuple]:
    """Every invariant violation wallet_verify() finds; empty when the ledger is healthy."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute("SELECT * FROM wallet_verify()").fetchall()
