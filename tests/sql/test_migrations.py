"""Migrating is repeatable: twice on an empty database is harmless, and functions re-apply cleanly."""

import psycopg
import pytest
from yoyo import get_backend, read_migrations

from service import schema

SCHEMA_QUERY = """
SELECT string_agg(format('%s.%s %s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull),
                  E'\\n' ORDER BY c.relname, a.attnum)
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped AND c.relname NOT LIKE '_yoyo%'
   AND c.relname NOT LIKE 'yoyo%'
"""
FUNCTIONS_QUERY = """
SELECT array_agg(p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
                 ORDER BY p.proname, pg_get_function_identity_arguments(p.oid))
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'public' AND p.proname LIKE '%wallet%'
"""


def snapshot(url: str) -> tuple:
    with psycopg.connect(url) as conn:
        return (
            conn.execute(SCHEMA_QUERY).fetchone()[0],
            conn.execute(FUNCTIONS_QUERY).fetchone()[0],
            conn.execute("SELECT count(*) FROM wallets").fetchone()[0],
        )


def test_migrate_empty_database_twice_is_harmless(empty_db_url):
    first = schema.migrate(empty_db_url)
    after_first = snapshot(empty_db_url)
    second = schema.migrate(empty_db_url)

    assert first[0] == len(list(schema.resource_dir("sql").glob("*.sql")))
    assert second[0] == 0, "nothing is pending the second time"
    assert first[1] == second[1] == len(schema.procedure_files())
    assert snapshot(empty_db_url) == after_first
    assert after_first[2] == 9, "three assets times three system wallets"


def test_every_procedure_file_creates_its_function(empty_db_url):
    schema.migrate(empty_db_url)
    functions = snapshot(empty_db_url)[1]
    names = {f.split("(")[0] for f in functions}
    assert {p.stem for p in schema.procedure_files()} <= names


def test_seed_twice_writes_nothing_new(empty_db_url):
    schema.migrate(empty_db_url)
    first = schema.seed(empty_db_url)
    second = schema.seed(empty_db_url)
    assert [row[7] for row in first] == [False] * 4
    assert [row[7] for row in second] == [True] * 4
    assert [row[0] for row in first] == [row[0] for row in second]
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM transactions").fetchone()[0] == 4
        assert conn.execute("SELECT count(*) FROM ledger_entries").fetchone()[0] == 8
    assert schema.verify(empty_db_url) == []


def test_between_the_migrations_and_the_functions_nothing_is_written_unchecked(empty_db_url):
    """migrate() applies sql/ first, then procedures/. In between, the placeholders of sql/0008 and sql/0009 refuse
    a player wallet and every ledger entry (fail closed) instead of letting them in without their checks (the
    foreign keys sql/0009 drops are checked by procedures/_wallet_check_new_entries.sql)."""
    backend = get_backend(schema.yoyo_url(empty_db_url))
    try:
        with backend.lock():
            backend.apply_migrations(backend.to_apply(read_migrations(str(schema.resource_dir("sql")))))
    finally:
        backend.connection.close()
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="no player wallet opens before the wallet functions"):
            conn.execute(
                "INSERT INTO wallets (asset_code, kind, user_id, name, balance) "
                "VALUES ('GOLD_COINS', 'PLAYER', 'p1', 'p1', 0)"
            )
        treasury, revenue = (
            conn.execute("SELECT id FROM wallets WHERE asset_code = 'GOLD_COINS' AND kind = %s", (kind,)).fetchone()[0]
            for kind in ("TREASURY", "REVENUE")
        )
        placeholder = "no ledger entry is written before the wallet functions"
        with pytest.raises(psycopg.errors.RaiseException, match=placeholder), conn.transaction():
            (tx,) = conn.execute(
                "INSERT INTO transactions (reference_id, type, user_id, asset_code, amount, description) "
                "VALUES ('r1', 'TOPUP', 'p1', 'GOLD_COINS', 1, 'x') RETURNING id"
            ).fetchall()[0]
            conn.execute(
                "INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount) "
                "VALUES (%s, %s, 'GOLD_COINS', -1), (%s, %s, 'GOLD_COINS', 1)",
                (tx, treasury, tx, revenue),
            )
    schema.migrate(empty_db_url)  # the functions installed: the same entries are judged by the real checks
    with (
        psycopg.connect(empty_db_url, autocommit=True) as conn,
        pytest.raises(psycopg.errors.ForeignKeyViolation, match=r"names transaction .*, which does not exist"),
    ):
        conn.execute(
            "INSERT INTO ledger_entries (transaction_id, wallet_id, asset_code, amount) "
            "VALUES (gen_random_uuid(), %s, 'GOLD_COINS', -1), (gen_random_uuid(), %s, 'GOLD_COINS', 1)",
            (treasury, revenue),
        )
