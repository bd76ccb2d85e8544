"""Schema management: yoyo migrations from sql/, then every function file from procedures/; and what the
command line and `serve` ask of the database besides: which migrations are applied, the rights of the role
they connect as, the service's login, API keys."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb
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


def chain_heads(database_url: str) -> list[dict[str, Any]]:
    """The head of every player wallet's hash chain (wallet_chain_heads()), to keep outside the database."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT wallet_id, user_id, asset_code, entry_id, entry_hash FROM wallet_chain_heads()")
        names = ("wallet_id", "user_id", "asset_code", "entry_id", "entry_hash")
        return [dict(zip(names, row, strict=True)) for row in rows]


def heads_digest(heads: list[dict[str, Any]]) -> str:
    """One SHA-256 over every chain head (wallet id, entry id, entry hash), in wallet order: short enough to
    write down or publish, and it changes when any wallet's history does."""
    lines = "".join(
        f"{h['wallet_id']}:{h['entry_id']}:{h['entry_hash']}\n" for h in sorted(heads, key=lambda h: h["wallet_id"])
    )
    return hashlib.sha256(lines.encode()).hexdigest()


def verify_anchor(database_url: str, heads: list[dict[str, Any]]) -> list[tuple]:
    """The anchored heads that no longer hold (wallet_verify_anchor()); empty when every one still does."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute("SELECT * FROM wallet_verify_anchor(%s)", (Jsonb(heads),)).fetchall()


# ---------------------------------------------------------------- migrations a database lacks


def shipped_migrations() -> list[str]:
    """The ids of the migrations this package ships (e.g. 0001.schema), in order."""
    return sorted(m.id for m in read_migrations(str(resource_dir("sql"))))


def missing_migrations(database_url: str) -> list[str]:
    """The shipped migrations the database has not applied (all of them when it lacks wallet_migrations()
    itself). Needs only wallet_app's rights. Raises psycopg errors as they come (unreachable server,
    permission denied)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        try:
            applied = {row[0] for row in conn.execute("SELECT migration_id FROM wallet_migrations()")}
        except psycopg.errors.UndefinedFunction:
            applied = set()
    return [m for m in shipped_migrations() if m not in applied]


# ---------------------------------------------------------------- roles


APP_ROLE = "wallet_app"  # the only rights the service needs (sql/0004.trust.sql)
OWNER_ROLE = "wallet_owner"


@dataclass(frozen=True)
class Rights:
    """What the role a URL connects as may do beyond wallet_app's EXECUTE on the wallet functions."""

    role: str
    superuser: bool
    owner_member: bool  # is wallet_owner or a member of it: may alter or drop every table and function
    owned_tables: list[str]  # tables it owns (directly or through a role it belongs to)


def rights(database_url: str) -> Rights:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            """
            SELECT current_user::text, r.rolsuper,
                   CASE WHEN EXISTS (SELECT 1 FROM pg_roles o WHERE o.rolname = %(owner)s)
                        THEN pg_has_role(current_user, %(owner)s, 'MEMBER') ELSE false END,
                   ARRAY(SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                          WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                            AND pg_has_role(current_user, c.relowner, 'MEMBER')
                          ORDER BY 1)
              FROM pg_roles r WHERE r.rolname = current_user
            """,
            {"owner": OWNER_ROLE},
        ).fetchone()
    assert row is not None
    return Rights(row[0], row[1], row[2], row[3])


def login_url(database_url: str, user: str, password: str | None = None) -> str:
    """database_url, connecting as another role (and without the URL's password unless one is given)."""
    if "://" not in database_url:  # a key=value connection string
        return make_conninfo(database_url, user=user, password=password)
    parts = urlsplit(database_url)
    host = parts.netloc.rpartition("@")[2]
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password is not None else "")
    return urlunsplit(parts._replace(netloc=f"{auth}@{host}"))


def grant_app_login(database_url: str, login: str) -> None:
    """Give an existing login wallet_app's rights and session limits (wallet_grant_role); run by a superuser
    or a role that may grant wallet_app."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT wallet_grant_role(%s, %s)", (login, APP_ROLE))


def ensure_app_login(database_url: str, login: str) -> bool:
    """The embedded mode's service login: created (LOGIN, no password: the embedded server trusts its Unix
    socket) unless it exists, then granted wallet_app. True if it was created now."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone() is not None
        if not exists:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(login)))
    grant_app_login(database_url, login)
    return not exists


# ---------------------------------------------------------------- API keys (admins: wallet_owner)


@dataclass(frozen=True)
class ApiKeyRow:
    name: str
    scopes: list[str]
    created_at: datetime
    created_by: str | None = None
    revoked_at: datetime | None = None


def key_hash(secret: str) -> bytes:
    """What api_keys stores for a secret: SHA-256 of its UTF-8 bytes (the secret never reaches the database
    after it was created there)."""
    return hashlib.sha256(secret.encode()).digest()


def create_key(database_url: str, name: str, scopes: list[str]) -> tuple[ApiKeyRow, str]:
    """A new API key and its secret (shown this once: only its hash is stored). WL006 on a bad or taken
    name or a bad scope."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT name, scopes, secret, created_at FROM wallet_key_create(%s, %s)", (name, scopes)
        ).fetchone()
    assert row is not None
    return ApiKeyRow(row[0], row[1], row[3]), row[2]


def list_keys(database_url: str) -> list[ApiKeyRow]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT name, scopes, created_at, created_by, revoked_at FROM wallet_key_list()")
        return [ApiKeyRow(*row) for row in rows]


def revoke_key(database_url: str, name: str) -> datetime:
    """Revoke a key (idempotent); when it was revoked. WL006 if no key has this name."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT revoked_at FROM wallet_key_revoke(%s)", (name,)).fetchone()
    assert row is not None
    revoked_at: datetime = row[0]
    return revoked_at


def active_key_name(database_url: str, secret: str) -> str | None:
    """The name of the active key this secret belongs to (None: unknown or revoked)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT name FROM wallet_authenticate(%s)", (key_hash(secret),)).fetchone()
    return None if row is None else str(row[0])
