"""`wallet-service grant`: credits from a CSV file through wallet_post_batch, against a real PostgreSQL: every
row posted once, a re-run all replays, bad rows refused with their line and the rest posted, a run killed with
SIGKILL resumed where its batches had committed (nothing doubled), a stale state file of another file
ignored, a wallet locked past lock_timeout retried, a run that stops part-way resumed later."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import psycopg
import pytest

from service import grant

WALLET_SERVICE = Path(sys.executable).parent / "wallet-service"
HEADER = ["user_id", "asset_code", "amount", "reference_id"]


def write_csv(path: Path, header: list[str], rows: Sequence[Sequence[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def grant_run(path: Path, url: str, **options: object) -> int:
    return grant.run(grant.Options(file=path, **options), url)  # type: ignore[arg-type]


def command(path: Path, url: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.Popen(
        [str(WALLET_SERVICE), "grant", "--file", str(path), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def transactions(conn: psycopg.Connection, prefix: str) -> dict[str, tuple]:
    """reference_id -> (user_id, asset_code, amount, type, bonus_type, payment_method, metadata, actor)"""
    rows = conn.execute(
        "SELECT reference_id, user_id, asset_code, amount, type::text, bonus_type, payment_method, metadata, actor "
        "FROM transactions WHERE starts_with(reference_id, %s)",
        (prefix,),
    ).fetchall()
    found = Counter(row[0] for row in rows)
    assert max(found.values(), default=1) == 1  # (the unique constraint guarantees it; checked anyway)
    return {row[0]: row[1:] for row in rows}


def balances(conn: psycopg.Connection, prefix: str) -> dict[tuple[str, str], int]:
    rows = conn.execute(
        "SELECT user_id, asset_code, balance FROM wallets WHERE kind = 'PLAYER' AND starts_with(user_id, %s)",
        (prefix,),
    ).fetchall()
    return {(user, asset): balance for user, asset, balance in rows}


def expected_balances(rows: list[list[object]]) -> dict[tuple[str, str], int]:
    total: Counter[tuple[str, str]] = Counter()
    for user, asset, amount, *_ in rows:
        total[(str(user), str(asset))] += int(str(amount))
    return dict(total)


def rejects(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as file:
        return list(csv.DictReader(file))


def verify_is_empty(conn: psycopg.Connection) -> None:
    assert conn.execute("SELECT * FROM wallet_verify()").fetchall() == []


SMALL = [
    ["gs_ann", "GOLD_COINS", 100, "gs-1", "", "", "", ""],
    ["gs_ann", "DIAMONDS", 7, "gs-2", "bonus", "SEASON_7", "", '{"season": 7, "rank": "gold"}'],
    ["gs_bob", "GOLD_COINS", 250, "gs-3", "topup", "", "psp-import", ""],
    ["gs_bob", "GOLD_COINS", 1, "gs-4", "topup", "", "", ""],
    ["gs_cid", "LOYALTY_POINTS", 9007199254740991 // 2, "gs-5", "", "", "", ""],
    ["gs_ann", "GOLD_COINS", 300, "gs-6", "bonus", "", "", ""],
]
SMALL_HEADER = [*HEADER, "operation", "bonus_type", "payment_method", "metadata"]


def test_grant_posts_every_row_once_and_the_balances_add_up(tmp_path, app_url, conn, capsys):
    path = write_csv(tmp_path / "rewards.csv", SMALL_HEADER, SMALL)
    assert grant_run(path, app_url, batch_size=4, bonus_type="COMPENSATION", actor="ops-ticket-42") == 0
    out = capsys.readouterr().out
    assert "6 rows: 6 posted, 0 replayed, 0 refused" in out
    posted = transactions(conn, "gs-")
    assert posted == {
        "gs-1": ("gs_ann", "GOLD_COINS", 100, "BONUS", "COMPENSATION", None, None, "ops-ticket-42"),
        "gs-2": ("gs_ann", "DIAMONDS", 7, "BONUS", "SEASON_7", None, {"season": 7, "rank": "gold"}, "ops-ticket-42"),
        "gs-3": ("gs_bob", "GOLD_COINS", 250, "TOPUP", None, "psp-import", None, "ops-ticket-42"),
        "gs-4": ("gs_bob", "GOLD_COINS", 1, "TOPUP", None, None, None, "ops-ticket-42"),
        "gs-5": (
            "gs_cid",
            "LOYALTY_POINTS",
            9007199254740991 // 2,
            "BONUS",
            "COMPENSATION",
            None,
            None,
            "ops-ticket-42",
        ),
        "gs-6": ("gs_ann", "GOLD_COINS", 300, "BONUS", "COMPENSATION", None, None, "ops-ticket-42"),
    }
    assert balances(conn, "gs_") == expected_balances(SMALL)
    assert not path.with_name("rewards.csv.progress").exists()  # a finished run leaves no state behind
    assert not path.with_name("rewards.csv.rejects.csv").exists()
    verify_is_empty(conn)


def test_grant_of_the_same_file_again_is_all_replays_and_changes_nothing(tmp_path, app_url, conn, capsys):
    path = write_csv(tmp_path / "rewards.csv", SMALL_HEADER, SMALL)
    assert grant_run(path, app_url) == 0
    before = (transactions(conn, "gs-"), balances(conn, "gs_"))
    entries = conn.execute("SELECT count(*) FROM ledger_entries").fetchone()[0]
    capsys.readouterr()
    assert grant_run(path, app_url, batch_size=2, concurrency=3) == 0
    assert "6 rows: 0 posted, 6 replayed, 0 refused" in capsys.readouterr().out
    assert (transactions(conn, "gs-"), balances(conn, "gs_")) == before
    assert conn.execute("SELECT count(*) FROM ledger_entries").fetchone()[0] == entries


def test_grant_refuses_bad_rows_with_their_line_and_posts_the_others(tmp_path, app_url, conn, capsys):
    header = [*HEADER, "operation", "bonus_type", "payment_method", "metadata"]
    good = [
        ["gb_ok1", "GOLD_COINS", "10", "gb-ok-1", "", "", "", ""],
        ["gb_ok2", "DIAMONDS", "0020", "gb-ok-2", "topup", "", "card", ""],
        ["gb_ok1", "GOLD_COINS", "10", "gb-ok-1", "", "", "", ""],  # the same request again: a replay
    ]
    bad = [
        ["gb_a", "GOLD_COINS", "-5", "gb-neg", "", "", "", ""],
        ["gb_a", "GOLD_COINS", "1.5", "gb-frac", "", "", "", ""],
        ["gb_a", "GOLD_COINS", "0", "gb-zero", "", "", "", ""],
        ["gb_a", "GOLD_COINS", "9007199254740992", "gb-big", "", "", "", ""],
        ["gb_a", "GOLD_COINS", "5", "gb-spend", "spend", "", "", ""],
        ["gb_a", "GOLD_COINS", "5", "gb-op", "refund", "", "", ""],
        ["", "GOLD_COINS", "5", "gb-nouser", "", "", "", ""],
        ["gb_a", "GOLD_COINS", "5", "", "", "", "", ""],
        ["gb\u200ba", "GOLD_COINS", "5", "gb-zwsp", "", "", "", ""],
        ["gb_a", "GOLD_COINS", "5", "gb-meta", "", "", "", "[1, 2]"],
        ["gb_a", "GOLD_COINS", "5", "gb-json", "", "", "", "{'a': 1}"],
        ["gb_a", "GOLD_COINS", "5", "gb-bt", "topup", "SEASON", "", ""],
        ["gb_a", "GOLD_COINS", "5", "gb-pm", "bonus", "", "card", ""],
        ["gb_a", "NO_SUCH_ASSET", "5", "gb-asset", "", "", "", ""],  # refused by the database: WL003
        ["gb_ok1", "GOLD_COINS", "11", "gb-ok-1", "", "", "", ""],  # the key of another request: WL004
    ]
    rows = [good[0], *bad[:7], good[1], *bad[7:], good[2]]
    path = write_csv(tmp_path / "mixed.csv", header, rows)
    with path.open("a", encoding="utf-8") as file:
        file.write("gb_a,GOLD_COINS,5\n")  # too few fields
    with path.open("ab") as file:
        file.write(b"gb_\xff,GOLD_COINS,5,gb-utf8,,,,\n")  # not UTF-8
        file.write(b"gb_ok3,GOLD_COINS,3,gb-ok-3,,,,\n")
    assert grant_run(path, app_url, batch_size=5, concurrency=2) == grant.EXIT_REFUSED
    out = capsys.readouterr().out
    assert (
        "21 rows: 3 posted, 1 replayed, 17 refused (ASSET_NOT_FOUND 1, IDEMPOTENCY_CONFLICT 1, VALIDATION_ERROR 15)"
        in out
    )
    refused = rejects(tmp_path / "mixed.csv.rejects.csv")
    assert [(int(r["line"]), r["reference_id"], r["sqlstate"], r["code"], r["field"]) for r in refused] == [
        (3, "gb-neg", "WL006", "VALIDATION_ERROR", "amount"),
        (4, "gb-frac", "WL006", "VALIDATION_ERROR", "amount"),
        (5, "gb-zero", "WL006", "VALIDATION_ERROR", "amount"),
        (6, "gb-big", "WL006", "VALIDATION_ERROR", "amount"),
        (7, "gb-spend", "WL006", "VALIDATION_ERROR", "operation"),
        (8, "gb-op", "WL006", "VALIDATION_ERROR", "operation"),
        (9, "gb-nouser", "WL006", "VALIDATION_ERROR", "user_id"),
        (11, "", "WL006", "VALIDATION_ERROR", "reference_id"),
        (12, "gb-zwsp", "WL006", "VALIDATION_ERROR", "user_id"),
        (13, "gb-meta", "WL006", "VALIDATION_ERROR", "metadata"),
        (14, "gb-json", "WL006", "VALIDATION_ERROR", "metadata"),
        (15, "gb-bt", "WL006", "VALIDATION_ERROR", "bonus_type"),
        (16, "gb-pm", "WL006", "VALIDATION_ERROR", "payment_method"),
        (17, "gb-asset", "WL003", "ASSET_NOT_FOUND", ""),
        (18, "gb-ok-1", "WL004", "IDEMPOTENCY_CONFLICT", ""),
        (20, "", "WL006", "VALIDATION_ERROR", "row"),
        (21, "gb-utf8", "WL006", "VALIDATION_ERROR", "user_id"),
    ]
    messages = {r["reference_id"] or r["line"]: r["message"] for r in refused}
    assert messages["gb-neg"] == "amount must be an integer from 1 to 9007199254740991"
    assert "a grant only credits" in messages["gb-spend"]
    assert messages["20"] == "row has 3 fields where the header has 8"
    assert messages["gb-utf8"] == "user_id is not valid UTF-8"
    assert "NO_SUCH_ASSET" in messages["gb-asset"]
    # only the good rows reached the ledger, the refused ones wrote nothing
    assert set(transactions(conn, "gb-")) == {"gb-ok-1", "gb-ok-2", "gb-ok-3"}
    assert balances(conn, "gb_") == {
        ("gb_ok1", "GOLD_COINS"): 10,
        ("gb_ok2", "DIAMONDS"): 20,
        ("gb_ok3", "GOLD_COINS"): 3,
    }
    verify_is_empty(conn)


def big_rows(n: int, prefix: str, bad_every: int = 0) -> list[list[object]]:
    """n grants to n // 4 players in two assets; every bad_every-th row has a bad amount."""
    rows: list[list[object]] = []
    for i in range(n):
        amount: object = 1 + (i * 7919) % 1000
        if bad_every and i % bad_every == bad_every - 1:
            amount = "lots"
        rows.append([f"{prefix}_{i % (n // 4):05d}", ("GOLD_COINS", "DIAMONDS")[i % 2], amount, f"{prefix}-{i:06d}"])
    return rows


def test_grant_killed_with_sigkill_resumes_after_its_committed_batches_and_doubles_nothing(tmp_path, app_url, conn):
    rows = big_rows(50_000, "gk", bad_every=5000)
    path = write_csv(tmp_path / "season.csv", HEADER, rows)
    state = tmp_path / "season.csv.progress"
    first = command(path, app_url, "--batch-size", "500", "--concurrency", "3")

    def rows_done() -> int:
        return json.loads(state.read_text())["rows"] if state.exists() else 0

    try:
        deadline = time.monotonic() + 120
        # past the first bad row (line 5001): its rejects line is written before the kill
        while rows_done() < 6000 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rows_done() >= 6000, first.communicate()
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.communicate()
    assert first.returncode == -signal.SIGKILL
    committed = json.loads(state.read_text())
    assert 0 < committed["rows"] < len(rows)

    second = command(path, app_url, "--batch-size", "500", "--concurrency", "3")
    out, err = second.communicate(timeout=300)
    assert second.returncode == grant.EXIT_REFUSED, err  # the 10 bad rows
    resumed = re.search(r"resuming at line (\d+)", err)
    assert resumed is not None and int(resumed.group(1)) == committed["line"] + 1 > 2
    this_run = re.search(r"this run: (\d+) rows from line (\d+)", out)
    assert this_run is not None and int(this_run.group(1)) == len(rows) - committed["rows"]
    assert "50000 rows: " in out and ", 10 refused (VALIDATION_ERROR 10)" in out

    good = [row for row in rows if row[2] != "lots"]
    posted = transactions(conn, "gk-")
    assert sorted(posted) == sorted(str(row[3]) for row in good)  # every good row once, no bad one
    assert balances(conn, "gk_") == expected_balances(good)
    refused = rejects(tmp_path / "season.csv.rejects.csv")
    assert [int(r["line"]) for r in refused] == [i + 2 for i in range(4999, 50_000, 5000)]  # each once
    assert not state.exists()
    verify_is_empty(conn)


def test_grant_ignores_the_state_file_of_another_file_with_the_same_name(tmp_path, app_url, conn, capsys):
    path = write_csv(tmp_path / "rewards.csv", HEADER, big_rows(40, "go"))
    header = grant.read_header(path)
    options = grant.Options(file=path)
    # a state file saying rows up to the end of the first 20 rows were committed, for this very file
    with path.open("rb") as file:
        source = grant.Source(file, header.data_offset, header.data_line)
        for _ in zip(range(20), source.records(), strict=False):
            pass
        halfway = grant.Progress(offset=source.offset, line=source.line, rows=20, posted=20)
    options.state_path.write_text(json.dumps(halfway.state(options, grant.identify(path))))
    state = options.state_path.read_text()

    # another file of that name: the state is not used, every row is posted
    other = big_rows(40, "gn")
    write_csv(path, HEADER, other)
    assert grant_run(path, app_url) == 0
    captured = capsys.readouterr()
    assert "was written for another file" in captured.err and "40 rows: 40 posted" in captured.out
    assert sorted(transactions(conn, "gn-")) == sorted(str(row[3]) for row in other)

    # the file it was written for: it resumes after the 20 rows the state counts as done
    write_csv(path, HEADER, big_rows(40, "go"))
    os.utime(path, ns=(json.loads(state)["input"]["mtime_ns"],) * 2)
    options.state_path.write_text(state)
    assert grant_run(path, app_url) == 0
    captured = capsys.readouterr()
    assert "resuming at line 22" in captured.err and "40 rows: 40 posted" in captured.out
    assert sorted(transactions(conn, "go-")) == [f"go-{i:06d}" for i in range(20, 40)]


def test_grant_restart_ignores_the_state_file(tmp_path, app_url, conn, capsys):
    rows = big_rows(40, "gr")
    path = write_csv(tmp_path / "rewards.csv", HEADER, rows)
    options = grant.Options(file=path)
    done = grant.Progress(offset=path.stat().st_size, line=41, rows=40, posted=40)
    options.state_path.write_text(json.dumps(done.state(options, grant.identify(path))))
    assert grant_run(path, app_url, restart=True) == 0
    assert "40 rows: 40 posted" in capsys.readouterr().out
    assert len(transactions(conn, "gr-")) == 40


def test_grant_resumes_only_with_the_same_bonus_type(tmp_path, app_url, conn, capsys):
    path = write_csv(tmp_path / "rewards.csv", HEADER, big_rows(8, "gt"))
    options = grant.Options(file=path, bonus_type="SEASON_7")
    header = grant.read_header(path)
    started = grant.Progress(offset=header.data_offset, line=header.data_line)
    options.state_path.write_text(json.dumps(started.state(options, grant.identify(path))))
    assert grant_run(path, app_url, bonus_type="SEASON_8") == grant.EXIT_USAGE
    assert "--bonus-type SEASON_7" in capsys.readouterr().err
    assert transactions(conn, "gt-") == {}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (["user_id", "asset_code", "amount"], "column 'reference_id' is missing"),
        ([*HEADER, "bonus"], "unknown column 'bonus'"),
        ([*HEADER, "amount"], "column 'amount' appears more than once"),
    ],
)
def test_grant_refuses_a_bad_header_and_sends_nothing(tmp_path, app_url, conn, capsys, header, message):
    path = write_csv(tmp_path / "rewards.csv", header, [["gh_a", "GOLD_COINS", 5, "gh-1", 5][: len(header)]])
    assert grant_run(path, app_url) == grant.EXIT_USAGE
    assert message in capsys.readouterr().err
    assert transactions(conn, "gh-") == {}
    assert not path.with_name("rewards.csv.progress").exists()


def test_grant_waits_for_a_batch_in_flight_that_shares_a_reference_id(tmp_path, app_url, conn, capsys):
    """The file's order decides which of two rows with one key posts, however many batches are in flight."""
    rows: list[list[object]] = []
    for i in range(100):
        rows += [[f"gd_{i}", "GOLD_COINS", 1, f"gd-{i}"], [f"gd_{i}", "GOLD_COINS", 2, f"gd-{i}"]]
    path = write_csv(tmp_path / "dups.csv", HEADER, rows)
    assert grant_run(path, app_url, batch_size=1, concurrency=8) == grant.EXIT_REFUSED
    assert "200 rows: 100 posted, 0 replayed, 100 refused (IDEMPOTENCY_CONFLICT 100)" in capsys.readouterr().out
    assert {amount for _, _, amount, *_ in transactions(conn, "gd-").values()} == {1}
    assert [int(r["line"]) for r in rejects(tmp_path / "dups.csv.rejects.csv")] == list(range(3, 202, 2))


def hold_wallet_lock(db_url: str, user: str, seconds: float, locked: threading.Event) -> None:
    with psycopg.connect(db_url) as holder:
        holder.execute("SELECT 1 FROM wallets WHERE user_id = %s FOR UPDATE", (user,))
        locked.set()
        time.sleep(seconds)


def test_grant_retries_a_batch_that_met_a_locked_wallet(tmp_path, app_url, db_url, conn, capsys):
    """The lock outlives lock_timeout (2 s) once: the batch fails with 55P03, is sent again and posts."""
    path = write_csv(tmp_path / "rewards.csv", HEADER, [["user_bob", "GOLD_COINS", 5, "gl-1"]])
    locked = threading.Event()
    holder = threading.Thread(target=hold_wallet_lock, args=(db_url, "user_bob", 3.0, locked))
    holder.start()
    locked.wait(10)
    try:
        assert grant_run(path, app_url) == 0
    finally:
        holder.join()
    assert "1 rows: 1 posted" in capsys.readouterr().out
    assert set(transactions(conn, "gl-")) == {"gl-1"}


def test_grant_that_stops_part_way_keeps_its_progress_and_resumes(tmp_path, app_url, db_url, conn, capsys, monkeypatch):
    """A batch that keeps failing stops the run (exit 3) after the batches before it committed; the same
    command later resumes there."""
    rows = [[f"gp_{i}", "GOLD_COINS", 10 + i, f"gp-{i}"] for i in range(6)]
    rows[4] = ["user_bob", "GOLD_COINS", 5, "gp-4"]
    path = write_csv(tmp_path / "rewards.csv", HEADER, rows)
    monkeypatch.setattr(grant, "RETRY_DELAYS", (0.1,))
    locked = threading.Event()
    holder = threading.Thread(target=hold_wallet_lock, args=(db_url, "user_bob", 6.0, locked))
    holder.start()
    locked.wait(10)
    try:
        assert grant_run(path, app_url, batch_size=2, concurrency=1) == grant.EXIT_STOPPED
    finally:
        holder.join()
    err = capsys.readouterr().err
    assert "55P03" in err and "run the same command again to resume at line 6" in err
    assert sorted(transactions(conn, "gp-")) == ["gp-0", "gp-1", "gp-2", "gp-3"]
    assert grant_run(path, app_url, batch_size=2) == 0
    captured = capsys.readouterr()
    assert "resuming at line 6" in captured.err and "6 rows: 6 posted, 0 replayed" in captured.out
    assert balances(conn, "gp_") == expected_balances([row for row in rows if row[0] != "user_bob"])


def test_grant_command_help_and_option_limits(tmp_path):
    helped = subprocess.run([str(WALLET_SERVICE), "grant", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: wallet-service grant")
    assert "--batch-size" in helped.stdout and "--restart" in helped.stdout
    path = write_csv(tmp_path / "rewards.csv", HEADER, [])
    for args in (["--batch-size", "10001"], ["--batch-size", "0"], ["--concurrency", "0"], ["--bonus-type", ""]):
        refused = subprocess.run(
            [str(WALLET_SERVICE), "grant", "--file", str(path), *args], capture_output=True, text=True
        )
        assert refused.returncode == 2 and "error: argument" in refused.stderr, args


def test_grant_records_progress_only_up_to_the_first_batch_not_yet_committed(tmp_path):
    """Batches commit out of order on several connections; the state file's offset is the end of the longest
    run of committed batches from the start, so a batch still in flight is never skipped by a resume."""
    path = write_csv(tmp_path / "rewards.csv", HEADER, [])
    options = grant.Options(file=path)
    progress = grant.Progress(offset=10, line=1)
    run = grant.Run(options, grant.identify(path), progress, grant.Rejects(options.rejects_path, 0))

    def batch(seq: int) -> grant.Batch:
        ops = [{"reference_id": f"r{seq}"}]
        return grant.Batch(seq, ops=ops, lines=[seq + 2], rows=1, end_offset=20 + 10 * seq, end_line=seq + 2)

    def saved() -> tuple[int | None, int | None, int | None]:
        state = json.loads(options.state_path.read_text()) if options.state_path.exists() else {}
        return state.get("offset"), state.get("line"), state.get("rows")

    run.finish(batch(1), [(1, False, None, None, None)])
    run.finish(batch(2), [(1, True, None, None, None)])
    assert saved() == (None, None, None)  # batch 0 is still in flight: nothing after it counts as done
    run.finish(batch(0), [(1, False, None, None, None)])
    assert saved() == (40, 4, 3)
    run.finish(batch(4), [(1, False, None, None, None)])
    assert saved() == (40, 4, 3)
    run.finish(batch(3), [(1, None, "WL003", "asset X not found", None)])
    assert saved() == (60, 6, 5)
    assert (progress.posted, progress.replayed, dict(progress.refused)) == (3, 1, {"ASSET_NOT_FOUND": 1})
    run.rejects.close()
    assert [(r["line"], r["reference_id"], r["code"]) for r in rejects(options.rejects_path)] == [
        ("5", "r3", "ASSET_NOT_FOUND")
    ]


def test_grant_resume_cuts_the_rejects_file_back_to_what_the_committed_rows_wrote(tmp_path, app_url, capsys):
    rows = big_rows(40, "gj", bad_every=10)
    path = write_csv(tmp_path / "rewards.csv", HEADER, rows)
    header = grant.read_header(path)
    options = grant.Options(file=path)
    with path.open("rb") as file:  # the state after the first 20 rows, whose rejects (lines 11, 21) are written
        source = grant.Source(file, header.data_offset, header.data_line)
        for _ in zip(range(20), source.records(), strict=False):
            pass
        written = "line,reference_id,sqlstate,code,field,message\n"
        written += "11,gj-000009,WL006,x,amount,y\n21,gj-000019,WL006,x,amount,y\n"
        halfway = grant.Progress(source.offset, source.line, rows=20, posted=18, rejects_size=len(written))
    halfway.refused["VALIDATION_ERROR"] = 2
    options.state_path.write_text(json.dumps(halfway.state(options, grant.identify(path))))
    # what a run killed after writing the next batch's rejects, before its state file, leaves behind
    options.rejects_path.write_text(written + "31,gj-000029,WL006,x,amount," + "y" * 500 + "\n" * 3)
    assert grant_run(path, app_url) == grant.EXIT_REFUSED
    assert "40 rows: 36 posted, 0 replayed, 4 refused (VALIDATION_ERROR 4)" in capsys.readouterr().out
    assert [r["line"] for r in rejects(options.rejects_path)] == ["11", "21", "31", "41"]
    assert options.rejects_path.read_text().startswith(written)


def test_grant_reads_a_byte_order_mark_crlf_lines_quoted_fields_and_blank_lines(tmp_path, app_url, conn, capsys):
    text = (
        "\ufeffuser_id,asset_code,amount,reference_id,metadata\r\n"
        'gc_a,GOLD_COINS,5,gc-1,"{""note"": ""a, b"",\r\n ""lines"": 2}"\r\n'
        "\r\n"
        "gc_b,GOLD_COINS,6,gc-2,\r\n"
    )
    path = tmp_path / "excel.csv"
    path.write_bytes(text.encode("utf-8"))
    assert grant_run(path, app_url) == 0
    assert "2 rows: 2 posted" in capsys.readouterr().out
    posted = transactions(conn, "gc-")
    assert posted["gc-1"][6] == {"note": "a, b", "lines": 2}
    assert balances(conn, "gc_") == {("gc_a", "GOLD_COINS"): 5, ("gc_b", "GOLD_COINS"): 6}


def test_grant_without_a_database_stops_before_sending_anything(tmp_path, capsys):
    path = write_csv(tmp_path / "rewards.csv", HEADER, [["gu_a", "GOLD_COINS", 5, "gu-1"]])
    assert grant_run(path, "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2") == grant.EXIT_STOPPED
    assert "cannot reach the database" in capsys.readouterr().err
    assert not path.with_name("rewards.csv.progress").exists()
