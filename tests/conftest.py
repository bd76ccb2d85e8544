"""A real PostgreSQL for every test: one server per session, started by pytest-postgresql through a
pg_ctl wrapper that runs it as the postgres user; a template database migrated and seeded once; each
test gets its own copy of the template.

The app under test connects as tests.access.APP_LOGIN, a login holding only wallet_app (fixture `app_url`),
and sends an admin API key of the test's database (fixtures `admin_key`, `auth_headers`); the `conn` and
`db_url` fixtures are the superuser's, for setting up and inspecting."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pytest_postgresql import factories

from service import schema
from tests.access import APP_LOGIN, app_login_url, bearer, create_key
from tools import pgbin

TESTS = Path(__file__).resolve().parent
PG_CTL = TESTS / "pg_ctl_as_postgres"


def pg_bindir() -> Path:
    """The server binaries (tools.pgbin), also exported as WALLET_PG_BINDIR for pg_ctl_as_postgres."""
    return pgbin.export_bindir()


def ensure_extension_package(extension: str, package: str) -> None:
    """Install Debian's postgresql-<version>-<package> for the test server if `extension` is missing."""
    pgbin.ensure_extension(extension, package, pg_bindir())


def ensure_pgtap() -> None:
    """pgTAP is pure SQL packaged by Debian; install it if this machine lacks it."""
    ensure_extension_package("pgtap", "pgtap")


def url_of(info) -> str:
    return f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}"


def load_template(host: str, port: int, user: str, dbname: str, **_: object) -> None:
    """Migrate and seed the template database that every test copies; the app's login (a cluster-wide role)."""
    url = f"postgresql://{user}@{host}:{port}/{dbname}"
    ensure_pgtap()
    schema.migrate(url)
    schema.seed(url)
    schema.ensure_app_login(url, APP_LOGIN)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgtap")


# resolved (and exported as WALLET_PG_BINDIR) before pytest-postgresql starts the server through pg_ctl_as_postgres
pg_bindir()
postgresql_proc = factories.postgresql_proc(
    executable=str(PG_CTL),
    host="127.0.0.1",
    load=[load_template],
    postgres_options="-c max_connections=200 -c shared_buffers=128MB",
)
postgresql = factories.postgresql("postgresql_proc")


@pytest.fixture
def db_url(postgresql: psycopg.Connection) -> str:
    """URL of this test's own database, a fresh copy of the migrated and seeded template."""
    return url_of(postgresql.info)


@pytest.fixture
def conn(db_url: str):
    """An autocommit connection to this test's database."""
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def app_url(db_url: str) -> str:
    """This test's database as the app connects to it: as a login holding only wallet_app."""
    return app_login_url(db_url)


@pytest.fixture
def admin_key(db_url: str) -> str:
    """The secret of an API key with the admin scope (named test-admin) in this test's database."""
    return create_key(db_url, ["admin"], "test-admin")


@pytest.fixture
def auth_headers(admin_key: str) -> dict[str, str]:
    """Authorization: Bearer <admin key>, for clients that may do everything."""
    return bearer(admin_key)


@pytest.fixture
def empty_db_url(postgresql_proc) -> Iterator[str]:
    """URL of a brand-new, empty database (no migrations), dropped after the test."""
    name = "empty_" + uuid.uuid4().hex[:12]
    admin = f"postgresql://{postgresql_proc.user}@{postgresql_proc.host}:{postgresql_proc.port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://{postgresql_proc.user}@{postgresql_proc.host}:{postgresql_proc.port}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
