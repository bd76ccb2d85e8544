"""Runs every pgTAP file in tests/sql/ as one pytest item, each against its own fresh copy of the
migrated and seeded template database.

A file passes only when its TAP output has the `1..N` plan line, exactly N `ok` lines, no `not ok`
and no SKIP/TODO; a file that fails to execute (a syntax error, an uncaught exception) fails the item.
On failure the whole TAP output, `#` diagnostics included, is the assertion message.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

SQL_DIR = Path(__file__).resolve().parent
SQL_FILES = sorted(SQL_DIR.glob("*.sql"))
PRELUDE = SQL_DIR / "helpers" / "prelude.sql"  # shared helper functions, created before each file

PLAN = re.compile(r"^1\.\.(\d+)$")
OK = re.compile(r"^ok \d+\b")
NOT_OK = re.compile(r"^not ok \d+\b")


def run_tap(url: str, path: Path) -> list[str]:
    """Execute one pgTAP file (it holds its own BEGIN/ROLLBACK); every line of every result set."""
    lines: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        # no parameters: psycopg sends a file as one simple query, so it may hold many statements
        cur.execute(PRELUDE.read_text())
        cur.execute(path.read_text())
        while True:
            if cur.description is not None:
                for row in cur.fetchall():
                    for value in row:
                        if value is not None:
                            lines.extend(str(value).splitlines())
            if not cur.nextset():
                break
    return lines


def judge(lines: list[str]) -> list[str]:
    """What is wrong with this TAP output; empty when it is a clean pass."""
    problems = []
    plans = [int(m.group(1)) for m in map(PLAN.match, lines) if m]
    oks = [line for line in lines if OK.match(line)]
    if len(plans) != 1:
        problems.append(f"expected exactly one plan line 1..N, found {len(plans)}")
    elif plans[0] == 0 or len(oks) != plans[0]:
        problems.append(f"planned {plans[0]} tests, {len(oks)} passed")
    failed = [line for line in lines if NOT_OK.match(line)]
    if failed:
        problems.append(f"{len(failed)} failed: " + "; ".join(failed))
    skipped = [line for line in lines if re.search(r"#\s*(SKIP|TODO)\b", line, re.IGNORECASE)]
    if skipped:
        problems.append(f"{len(skipped)} skipped or TODO (not counted as passing)")
    return problems


@pytest.mark.parametrize("path", SQL_FILES, ids=[p.stem for p in SQL_FILES])
def test_pgtap_file(db_url: str, path: Path) -> None:
    try:
        lines = run_tap(db_url, path)
    except psycopg.Error as error:
        pytest.fail(f"{path.name} did not run to the end: {type(error).__name__}: {error}", pytrace=False)
    problems = judge(lines)
    if problems:
        pytest.fail(f"{path.name}: " + ", ".join(problems) + "\n" + "\n".join(lines), pytrace=False)


def test_there_is_a_pgtap_file_per_public_function() -> None:
    names = {p.stem for p in SQL_FILES}
    public = {p.stem for p in (SQL_DIR.parent.parent / "procedures").glob("wallet_*.sql")}
    assert public and public <= names, f"no pgTAP file for {sorted(public - names)}"


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        (["1..2", "ok 1 - a"], "planned 2 tests, 1 passed"),
        (["1..2", "ok 1 - a", "not ok 2 - b", "# have: 1"], "1 failed"),
        (["ok 1 - a"], "exactly one plan line"),
        (["1..1", "ok 1 - a # SKIP no reason"], "skipped"),
    ],
)
def test_judge_rejects_incomplete_output(output: list[str], problem: str) -> None:
    assert problem in ", ".join(judge(output))


def test_judge_accepts_clean_output() -> None:
    assert judge(["1..2", "ok 1 - a", "ok 2 - b"]) == []


def test_a_file_with_a_syntax_error_fails(db_url: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.sql"
    broken.write_text("BEGIN; SELECT plan(1); SELEC ok(true); SELECT * FROM finish(); ROLLBACK;\n")
    with pytest.raises(psycopg.errors.SyntaxError):
        run_tap(db_url, broken)
