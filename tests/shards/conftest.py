"""A fresh sharded ledger per test: 1 PL/Proxy database + 2 shard databases in the session's test cluster
(tests/conftest.py), set up by service.shards.init and seeded through the proxy; plus a single-server twin
(the `db_url` fixture) to compare answers with."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from service import schema, shards
from tests.access import APP_LOGIN, app_login_url
from tests.conftest import ensure_extension_package


@dataclass(frozen=True)
class Sharded:
    proxy: str  # the superuser's URL of the proxy database
    shards: list[str]  # the superuser's URLs of the shards, s0 first

    @property
    def app_proxy(self) -> str:
        """The proxy as the service connects to it: a login holding only wallet_app."""
        return app_login_url(self.proxy)


@pytest.fixture
def sharded(postgresql_proc) -> Iterator[Sharded]:
    ensure_extension_package("plproxy", "plproxy")
    base = f"postgresql://{postgresql_proc.user}@{postgresql_proc.host}:{postgresql_proc.port}/"
    tag = uuid.uuid4().hex[:10]
    names = [f"px_{tag}", f"sh0_{tag}", f"sh1_{tag}"]
    with psycopg.connect(base + "postgres", autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    proxy, *shard_urls = (base + name for name in names)
    shards.init(proxy, shard_urls, partitions=8)
    schema.seed(proxy)
    schema.ensure_app_login(shard_urls[0], APP_LOGIN)  # a cluster-wide role: once is enough
    yield Sharded(proxy, shard_urls)
    with psycopg.connect(base + "postgres", autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
