"""Every HTTP API test that touches a database runs against both backends: "single" (one migrated server,
tests/conftest.py) and "sharded" (a PL/Proxy database in front of two shards, tests/sharding.py), e.g.
test_x[single] and test_x[sharded] (a test that touches no database runs once). test_schemathesis.py's
module database has the same two params of its own.

`db_url` is parametrized here (pytest_generate_tests, indirect), so every fixture built on it (`conn`,
`app_url`, `admin_key`, `auth_headers`, the clients) follows. In sharded mode db_url is the proxy database's
superuser URL: the proxy has the single server's functions and read-only views of the shards' tables.

A test that cannot go through a proxy by its nature (it writes shard tables or functions directly, or needs
what only one database has) is marked @pytest.mark.single_server("why"): it gets only the "single" variant,
so no sharded variant exists to be skipped."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.conftest import url_of
from tests.sharding import (  # noqa: F401 (sharded_db, sharded_template: fixtures)
    ShardedSet,
    copy_set,
    drop_set,
    server_url,
    sharded_db,
    sharded_template,
)

BACKENDS = ("single", "sharded")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "single_server(reason): runs only against one server, never through the sharding proxy (the reason says why)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_url" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("single_server")
    if marker is not None and not (marker.args and isinstance(marker.args[0], str) and marker.args[0].strip()):
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.single_server needs a reason")
    metafunc.parametrize("db_url", ["single"] if marker else list(BACKENDS), indirect=True)


@pytest.fixture
def db_url(request: pytest.FixtureRequest) -> str:
    """URL of this test's own database (the superuser's): a fresh copy of the single server's template, or the
    proxy database of a fresh copy of the sharded template."""
    if request.param == "single":
        return url_of(request.getfixturevalue("postgresql").info)
    databases: ShardedSet = request.getfixturevalue("sharded_db")
    return databases.proxy


@pytest.fixture
def home_db_url(request: pytest.FixtureRequest, db_url: str) -> Callable[[str], str]:
    """The database a player's rows live in, for a test that must act on them directly (lock a wallet row, keep
    a posting's transaction open): db_url on one server; through a proxy, the player's home shard."""
    if request.node.callspec.params["db_url"] == "single":
        return lambda user_id: db_url
    databases: ShardedSet = request.getfixturevalue("sharded_db")

    def home(user_id: str) -> str:
        with psycopg.connect(databases.proxy, autocommit=True) as proxy:
            row = proxy.execute(
                "SELECT name FROM proxy_shards WHERE (hashtext(%s) & (partition_count - 1)) = ANY (partitions)",
                (user_id,),
            ).fetchone()
        assert row is not None, f"no shard holds the partition of {user_id}"
        return databases.shards[int(row[0].removeprefix("s"))]

    return home


@pytest.fixture
def twin_db_url(request: pytest.FixtureRequest, postgresql_proc, db_url: str) -> Iterator[str]:
    """A second database of this test's backend, another copy of the template its db_url was copied from."""
    server = server_url(postgresql_proc)
    if request.node.callspec.params["db_url"] == "sharded":
        template: ShardedSet = request.getfixturevalue("sharded_template")
        twin = copy_set(server, template, prefix="twin")
        yield twin.proxy
        drop_set(server, twin)
        return
    name = "twin_" + uuid.uuid4().hex[:12]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgresql_proc.template_dbname}"')
    yield f"{server}/{name}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
