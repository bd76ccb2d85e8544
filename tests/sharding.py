"""The sharded test backend: one PL/Proxy database in front of SHARDS shard databases, all in the one test
server (postgresql_proc of tests/conftest.py).

Like the single-server backend, a template is built once per session and every test gets its own copy: the
template set is SHARDS shard databases and a proxy database installed by service.shards.init and seeded
through the proxy; a test's set is a CREATE DATABASE ... TEMPLATE copy of each, its proxy re-pointed at its
own shard copies (service.shards.attach, same order), all dropped after the test.

Fixtures: `sharded_template` (session), `sharded_db` (a test's own set). Superuser URLs throughout; the
app's login works through the proxy as on one server (roles are cluster-wide)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from service import schema
from service import shards as sharding
from tests.access import APP_LOGIN
from tests.conftest import ensure_extension_package

SHARDS = 2
TEMPLATE_PREFIX = "sharded_tmpl"


@dataclass(frozen=True)
class ShardedSet:
    """One proxy database and its shard databases (superuser URLs, shard order as the proxy knows it)."""

    proxy: str
    shards: tuple[str, ...]

    @property
    def urls(self) -> tuple[str, ...]:
        """Every database of the set, the proxy first."""
        return (self.proxy, *self.shards)


def server_url(proc) -> str:
    """The test server, as its superuser, without a database name."""
    return f"postgresql://{proc.user}@{proc.host}:{proc.port}"


def dbname_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _names(prefix: str, shards: int) -> tuple[str, list[str]]:
    return f"{prefix}_proxy", [f"{prefix}_s{i}" for i in range(shards)]


def _admin(server: str) -> psycopg.Connection:
    return psycopg.connect(f"{server}/postgres", autocommit=True)


def _drop(admin: psycopg.Connection, names: list[str]) -> None:
    for name in names:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def build_template(server: str, prefix: str = TEMPLATE_PREFIX, shards: int = SHARDS) -> ShardedSet:
    """Empty databases made into a migrated, installed and seeded sharded set (any earlier one of this prefix
    is dropped first); nothing stays connected to it afterwards, so it can be copied."""
    ensure_extension_package("plproxy", "plproxy")
    proxy_name, shard_names = _names(prefix, shards)
    with _admin(server) as admin:
        _drop(admin, [proxy_name, *shard_names])
        for name in [*shard_names, proxy_name]:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    template = ShardedSet(f"{server}/{proxy_name}", tuple(f"{server}/{name}" for name in shard_names))
    sharding.init(template.proxy, list(template.shards))
    schema.seed(template.proxy)
    # roles are cluster-wide, and the proxy has no wallet_grant_role (each shard grants): any shard will do
    schema.ensure_app_login(template.shards[0], APP_LOGIN)
    return template


def _create_copy(server: str, name: str, template: str) -> None:
    with _admin(server) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))


def copy_set(server: str, template: ShardedSet, prefix: str = "sharded") -> ShardedSet:
    """A new copy of every database of the template (CREATE DATABASE ... TEMPLATE, the copies made at once:
    each waits mostly on its WAL flush), the copied proxy attached to the copied shards."""
    from service import shards as sharding

    tag = uuid.uuid4().hex[:12]
    proxy_name = f"{prefix}_{tag}_proxy"
    shard_names = [f"{prefix}_{tag}_s{i}" for i in range(len(template.shards))]
    copy = ShardedSet(f"{server}/{proxy_name}", tuple(f"{server}/{name}" for name in shard_names))
    sources = [dbname_of(url) for url in template.urls]
    try:
        with ThreadPoolExecutor(len(sources)) as pool:
            for made in [
                pool.submit(_create_copy, server, dbname_of(url), source)
                for url, source in zip(copy.urls, sources, strict=True)
            ]:
                made.result()
        sharding.attach(copy.proxy, list(copy.shards))
    except BaseException:
        drop_set(server, copy)
        raise
    return copy


def drop_set(server: str, databases: ShardedSet) -> None:
    """Drop every database of the set (the proxy first: its sessions hold connections to the shards)."""
    with _admin(server) as admin:
        _drop(admin, [dbname_of(url) for url in databases.urls])


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def sharded_template(postgresql_proc) -> Iterator[ShardedSet]:
    """The session's template set, built on first use."""
    server = server_url(postgresql_proc)
    template = build_template(server)
    yield template
    drop_set(server, template)


@pytest.fixture
def sharded_db(postgresql_proc, sharded_template: ShardedSet) -> Iterator[ShardedSet]:
    """This test's own sharded set, a fresh copy of the template, dropped after the test."""
    server = server_url(postgresql_proc)
    databases = copy_set(server, sharded_template)
    yield databases
    drop_set(server, databases)
