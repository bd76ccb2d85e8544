"""Migrating is repeatable: twice on an empty database is harmless, and functions re-apply cleanly."""

import psycopg

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
