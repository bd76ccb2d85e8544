"""`wallet-service grant --file FILE`: credit many players at once from a CSV file (season rewards,
compensation, an import) through wallet_post_batch, in batches, resumable after a crash.

The file: UTF-8 CSV with a header row naming its columns, in any order. Required: user_id, asset_code,
amount, reference_id. Optional: operation (bonus or topup; empty: bonus), bonus_type (bonus rows; empty:
--bonus-type), payment_method (topup rows), metadata (a JSON object). Any other column is an error, so a
typo never passes silently. A grant only credits: a spend row is refused.

Every row is checked here first, as the HTTP API checks a request; a bad row is refused with its line
number and never sent. The others go in batches of --batch-size operations, one wallet_post_batch call each
(its own transaction), up to --concurrency batches in flight on their own connections. Rows of a batch that
the database refuses (asset unknown, reference id used for another request...) are refused alone. Refused
rows go to the rejects file (line, reference_id, sqlstate, code, field, message), in file order.

The reference ids are the caller's: sending a row again answers a replay, never a second posting, which is
what makes a run resumable. After each committed batch, FILE.progress records the byte offset and line up
to which every batch has committed (with batches in flight on several connections, the end of the longest
run of committed batches from the start), with the counts and the rejects file's size at that point. A run
of the same file (same size, modification time and first KiB) starts at that offset; the batches that were
in flight when the previous run died are sent again and answered as replays. Two batches in flight never
share a reference id (a batch waits for the one it shares one with), so the file's order decides which of
two rows with one key posts: the same as one batch after the other.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import psycopg

from service.api_errors import DB_ERRORS, ApiError, retryable
from service.limits import MAX_AMOUNT, MAX_BATCH_SIZE
from service.validation import FieldErrors, metadata_problem, parse_json

REQUIRED_COLUMNS = ("user_id", "asset_code", "amount", "reference_id")
OPTIONAL_COLUMNS = ("operation", "bonus_type", "payment_method", "metadata")
# the credits a grant may post, and the operation field of each
OPERATIONS = {"bonus": "bonus_type", "topup": "payment_method"}
DEFAULT_OPERATION = "bonus"
DEFAULT_BONUS_TYPE = "GRANT"

DEFAULT_BATCH_SIZE = 1000
MAX_CONCURRENCY = 16
# measured with 10^6 rows on 2 cores (README): 1 batch in flight took 2.4x as long as 2 (the server used one
# core), 3 was no faster than 2
DEFAULT_CONCURRENCY = 2

STATE_VERSION = 1
HEAD_BYTES = 1024  # the input's first KiB, hashed: with its size and mtime, what identifies it for a resume
# waits between attempts of a batch that failed retryably (lock timeout, deadlock, connection lost): ~30 s
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
REPORT_EVERY_SECONDS = 10.0  # the rate line on a stderr that is not a terminal

BATCH_SQL = "SELECT ordinal, replayed, sqlstate, message, field FROM wallet_post_batch(%s::jsonb, %s)"
REJECTS_HEADER = ("line", "reference_id", "sqlstate", "code", "field", "message")
VALIDATION = ("WL006", "VALIDATION_ERROR")  # what a refusal found here is reported as (the API's 400)

EXIT_OK = 0  # every row posted or replayed
EXIT_REFUSED = 1  # the file was read to its end, some rows were refused (see the rejects file)
EXIT_USAGE = 2  # nothing sent: bad options, an unreadable file or header, a database without the function
EXIT_STOPPED = 3  # stopped part-way (database unavailable, interrupted): run the same command again to resume


class GrantError(Exception):
    """The run cannot start (nothing sent): the message says why; exit EXIT_USAGE unless told otherwise."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


class BatchFailed(Exception):
    """A batch failed for good (not retryable, or still failing after every retry)."""


@dataclass(frozen=True)
class Options:
    file: Path
    batch_size: int = DEFAULT_BATCH_SIZE
    concurrency: int = DEFAULT_CONCURRENCY
    bonus_type: str = DEFAULT_BONUS_TYPE
    actor: str | None = None
    rejects: Path | None = None  # None: FILE.rejects.csv
    restart: bool = False

    @property
    def state_path(self) -> Path:
        return self.file.with_name(self.file.name + ".progress")

    @property
    def rejects_path(self) -> Path:
        return self.rejects if self.rejects is not None else self.file.with_name(self.file.name + ".rejects.csv")


# ---------------------------------------------------------------- reading the file


class Source:
    """The CSV records of a binary file from a byte offset on, with the line number each starts at and the
    offset and line after it. Invalid UTF-8 is kept as surrogate escapes, which every check refuses."""

    def __init__(self, file: BinaryIO, offset: int, line: int) -> None:
        file.seek(offset)
        self.file = file
        self.offset = offset  # just after the last line read
        self.line = line  # lines read so far (the header's is line 1)

    def _lines(self) -> Iterator[str]:
        for raw in self.file:
            text = raw.decode("utf-8", "surrogateescape")
            if self.offset == 0:
                text = text.removeprefix("\ufeff")  # a byte order mark
            self.offset += len(raw)
            self.line += 1
            yield text

    def records(self) -> Iterator[tuple[int, list[str] | None, str]]:
        """(first line, fields, "") per record; (first line, None, why) for one that is not valid CSV.
        The csv reader reads no line ahead of the record it returns, so offset and line are just past it."""
        reader = csv.reader(self._lines(), strict=True)
        while True:
            first = self.line + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield first, None, f"is not valid CSV: {exc}"
                continue
            if fields:  # a blank line holds no row
                yield first, fields, ""


@dataclass(frozen=True)
class Header:
    columns: tuple[str, ...]
    data_offset: int  # where the first row starts
    data_line: int  # lines up to the header's end


def read_header(path: Path) -> Header:
    try:
        with path.open("rb") as file:
            source = Source(file, 0, 0)
            first = next(source.records(), None)
            offset, line = source.offset, source.line
    except OSError as exc:
        raise GrantError(f"cannot read {path}: {exc.strerror}") from None
    if first is None:
        raise GrantError(f"{path} is empty: it needs a header row ({', '.join(REQUIRED_COLUMNS)}, ...)")
    at, fields, why = first
    if fields is None:
        raise GrantError(f"{path} line {at}: the header {why}")
    columns = tuple(name.strip() for name in fields)
    problems = [f"unknown column {name!r}" for name in columns if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    problems += [f"column {name!r} appears more than once" for name in sorted(set(columns)) if columns.count(name) > 1]
    problems += [f"column {name!r} is missing" for name in REQUIRED_COLUMNS if name not in columns]
    if problems:
        raise GrantError(
            f"{path} line {at}: bad header: {'; '.join(problems)} (columns: {', '.join(REQUIRED_COLUMNS)}, "
            f"optional {', '.join(OPTIONAL_COLUMNS)})"
        )
    return Header(columns, offset, line)


def estimate_rows(path: Path, offset: int) -> int:
    """Lines from offset on (a quoted field spanning lines makes this an overestimate): the progress total."""
    lines = 0
    last = b"\n"
    with path.open("rb") as file:
        file.seek(offset)
        while chunk := file.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


# ---------------------------------------------------------------- checking a row


@dataclass(frozen=True)
class Refusal:
    line: int
    reference_id: str
    sqlstate: str
    code: str
    field: str
    message: str


def _amount(problems: FieldErrors, text: str) -> int | None:
    """A decimal integer from 1 to MAX_AMOUNT, digits only (no sign, space, fraction or exponent)."""
    if not text:
        return problems.amount("amount", None)
    value: Any = text  # anything but digits: refused as not an integer
    if text.isascii() and text.isdigit() and len(significant := text.lstrip("0")) <= len(str(MAX_AMOUNT)):
        value = int(significant or "0")
    return problems.amount("amount", value)


def _metadata(problems: FieldErrors, text: str) -> Any:
    try:
        value = parse_json(text.encode("utf-8", "surrogateescape"))
    except ApiError as exc:
        problems.add("metadata", "is " + exc.message.removeprefix("the request body is "))
        return None
    if not isinstance(value, dict):
        problems.add("metadata", "must be a JSON object")
    elif (problem := metadata_problem(value)) is not None:
        problems.add("metadata", problem)
    return value


def check_row(columns: tuple[str, ...], fields: list[str], bonus_type: str) -> tuple[dict[str, Any] | None, list]:
    """The wallet_post_batch operation of one row, or None and its problems [(field, message)]; the same
    shape checks as the HTTP API's (an empty cell is an absent value)."""
    problems = FieldErrors()
    if len(fields) != len(columns):
        problems.add("row", f"has {len(fields)} fields where the header has {len(columns)}")
        return None, [(p["field"], p["message"]) for p in problems.items]
    row = dict(zip(columns, fields, strict=True))
    for name, value in row.items():
        if not value.isascii() and any("\udc80" <= ch <= "\udcff" for ch in value):  # Source's surrogate escapes
            problems.add(name, "is not valid UTF-8")
    if problems.items:
        return None, [(p["field"], p["message"]) for p in problems.items]
    operation = row.get("operation") or DEFAULT_OPERATION
    if operation not in OPERATIONS:
        credits = " or ".join(OPERATIONS)
        why = f"is a debit: a grant only credits ({credits})" if operation == "spend" else f"must be {credits}"
        problems.add("operation", why)
    op: dict[str, Any] = {
        "operation": operation,
        "user_id": problems.ident("user_id", row["user_id"] or None),
        "asset_code": problems.ident("asset_code", row["asset_code"] or None),
        "amount": _amount(problems, row["amount"]),
        "reference_id": problems.ident("reference_id", row["reference_id"] or None),
    }
    own_bonus_type = row.get("bonus_type") or None
    payment_method = row.get("payment_method") or None
    if operation == "topup":
        if own_bonus_type is not None:
            problems.add("bonus_type", "is for bonus rows only")
        if payment_method is not None:
            op["payment_method"] = problems.ident("payment_method", payment_method)
    else:
        if payment_method is not None:
            problems.add("payment_method", "is for topup rows only")
        op["bonus_type"] = problems.ident("bonus_type", own_bonus_type or bonus_type)
    if row.get("metadata"):
        op["metadata"] = _metadata(problems, row["metadata"])
    if problems.items:
        return None, [(p["field"], p["message"]) for p in problems.items]
    return op, []


# ---------------------------------------------------------------- batches


@dataclass
class Batch:
    """Consecutive rows of the file: the operations sent in one call, and the rows refused before sending."""

    seq: int
    ops: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # each operation's line
    refusals: list[Refusal] = field(default_factory=list)
    rows: int = 0  # data rows in it, sent or refused
    end_offset: int = 0  # byte offset just past its last row
    end_line: int = 0  # lines up to its last row's end
    _refs: frozenset[str] | None = None

    @property
    def refs(self) -> frozenset[str]:
        if self._refs is None:
            self._refs = frozenset(op["reference_id"] for op in self.ops)
        return self._refs


def batches(source: Source, columns: tuple[str, ...], options: Options) -> Iterator[Batch]:
    """The rest of the file in batches of at most batch_size rows (so at most batch_size operations)."""
    seq = 0
    batch = Batch(seq)
    for line, fields, why in source.records():
        batch.rows += 1
        if fields is None:
            batch.refusals.append(Refusal(line, "", *VALIDATION, "row", why))
        else:
            op, problems = check_row(columns, fields, options.bonus_type)
            if op is None:
                reference_id = dict(zip(columns, fields, strict=False)).get("reference_id", "")
                message = "; ".join(f"{name} {text}" for name, text in problems)
                names = ",".join(dict.fromkeys(name for name, _ in problems))
                batch.refusals.append(Refusal(line, reference_id, *VALIDATION, names, message))
            else:
                batch.ops.append(op)
                batch.lines.append(line)
        if batch.rows >= options.batch_size:
            batch.end_offset, batch.end_line = source.offset, source.line
            yield batch
            seq += 1
            batch = Batch(seq)
    if batch.rows:
        batch.end_offset, batch.end_line = source.offset, source.line
        yield batch


# ---------------------------------------------------------------- sending


class Sender:
    """Sends batches from several threads, each on its own autocommit connection; retries a batch that
    failed retryably (every operation is idempotent by its reference id, so a batch whose commit went
    unacknowledged is answered as replays when sent again)."""

    def __init__(self, url: str, actor: str | None) -> None:
        self.url, self.actor, self.delays = url, actor, RETRY_DELAYS
        self.local = threading.local()
        self.lock = threading.Lock()
        self.connections: list[psycopg.Connection] = []

    def connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self.url, autocommit=True, application_name="wallet-service grant")
        with self.lock:
            self.connections.append(conn)
        return conn

    def _connection(self) -> psycopg.Connection:
        conn: psycopg.Connection | None = getattr(self.local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                self._drop(conn)
            conn = self.connect()
            self.local.conn = conn
        return conn

    def _drop(self, conn: psycopg.Connection) -> None:
        conn.close()
        with self.lock:
            if conn in self.connections:
                self.connections.remove(conn)

    def send(self, batch: Batch) -> list[tuple]:
        payload = json.dumps(batch.ops, ensure_ascii=False, separators=(",", ":"))
        for delay in (*self.delays, None):
            try:
                rows = self._connection().execute(BATCH_SQL, (payload, self.actor)).fetchall()
            except psycopg.Error as exc:
                if delay is None or not retryable(exc):
                    state = f" [{exc.sqlstate}]" if exc.sqlstate else ""
                    hint = " (a smaller --batch-size takes fewer locks)" if exc.sqlstate == "53200" else ""
                    why = exc.diag.message_primary or str(exc).strip()
                    raise BatchFailed(f"{type(exc).__name__}{state}: {why}{hint}") from exc
                time.sleep(delay)
                continue
            if [row[0] for row in rows] != list(range(1, len(batch.ops) + 1)):
                raise BatchFailed(f"wallet_post_batch answered {len(rows)} rows for {len(batch.ops)} operations")
            return rows
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self.lock:
            for conn in self.connections:
                conn.close()
            self.connections.clear()


def preflight(url: str) -> None:
    """Fail before reading the file if the database cannot take grants from this login."""
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT p IS NOT NULL, p IS NOT NULL AND has_function_privilege(p, 'EXECUTE') "
                "FROM to_regprocedure('wallet_post_batch(jsonb, text)') AS p"
            ).fetchone()
    except psycopg.OperationalError as exc:
        raise GrantError(f"cannot reach the database: {str(exc).strip()}", EXIT_STOPPED) from None
    if row is None or not row[0]:
        raise GrantError("the database has no wallet_post_batch function: run `wallet-service migrate` first")
    if not row[1]:
        raise GrantError("this login may not call wallet_post_batch: it needs wallet_app (or the owner)")


# ---------------------------------------------------------------- progress: the state file and the rejects file


def identify(path: Path) -> dict[str, Any]:
    stat = path.stat()
    with path.open("rb") as file:
        head = hashlib.sha256(file.read(HEAD_BYTES)).hexdigest()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "head_sha256": head}


@dataclass
class Progress:
    """How far the file is committed: everything before `offset` (line `line`) is, nothing after is known."""

    offset: int
    line: int
    rows: int = 0
    posted: int = 0
    replayed: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # code -> rows
    rejects_size: int = 0  # bytes of the rejects file written for the rows before offset

    def state(self, options: Options, identity: dict[str, Any]) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "input": {"path": str(options.file.absolute()), **identity},
            "bonus_type": options.bonus_type,
            "offset": self.offset,
            "line": self.line,
            "rows": self.rows,
            "posted": self.posted,
            "replayed": self.replayed,
            "refused": dict(self.refused),
            "rejects": {"path": str(options.rejects_path.absolute()), "size": self.rejects_size},
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Progress:
        return cls(
            offset=int(state["offset"]),
            line=int(state["line"]),
            rows=int(state["rows"]),
            posted=int(state["posted"]),
            replayed=int(state["replayed"]),
            refused=Counter({str(k): int(v) for k, v in state["refused"].items()}),
            rejects_size=int(state["rejects"]["size"]),
        )


def write_atomically(path: Path, text: str) -> None:
    """A reader (or a crash) sees the old file or the new one, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)


def load_progress(options: Options, header: Header, identity: dict[str, Any], say: Callable[[str], None]) -> Progress:
    """Where to start: the state file's offset if it is this file's (and --restart was not given)."""
    fresh = Progress(header.data_offset, header.data_line)
    path = options.state_path
    if options.restart or not path.exists():
        return fresh
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        saved = {k: state["input"][k] for k in identity} if state.get("version") == STATE_VERSION else None
        progress = Progress.from_state(state)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        say(f"{path} is not a readable state file: ignoring it, starting at the first row")
        return fresh
    if saved != identity:
        say(
            f"{path} was written for another file of that name (size, time or content differ): "
            "starting at the first row"
        )
        return fresh
    if state.get("bonus_type") != options.bonus_type:
        raise GrantError(
            f"{path}: this file was started with --bonus-type {state.get('bonus_type')}; resume with the same "
            "(or --restart to send every row again, re-sent rows answering as replays)"
        )
    if not header.data_offset <= progress.offset <= identity["size"]:
        say(f"{path} records an offset outside the file: ignoring it, starting at the first row")
        return fresh
    say(f"resuming at line {progress.line + 1} ({progress.rows} rows done before, per {path})")
    return progress


class Rejects:
    """The rejects CSV, cut back on start to what the committed rows wrote; each batch's refusals are
    flushed to disk before the state file records them."""

    def __init__(self, path: Path, keep: int) -> None:
        self.path = path
        self.file: BinaryIO | None = None
        if not path.parent.is_dir():
            raise GrantError(f"{path.parent} (where the rejects file goes) is not a directory")
        if path.exists():
            self.file = path.open("r+b")
            if self.file.seek(0, os.SEEK_END) < keep:
                raise GrantError(f"{path} is shorter than the state file records: pass --restart to start again")
            self.file.truncate(keep)
            self.file.seek(keep)
            if keep == 0:
                self.file.close()
                self.file = None
                path.unlink()
        self.size = keep

    def write(self, refusals: list[Refusal]) -> None:
        if not refusals:
            return
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if self.file is None:
            self.file = self.path.open("wb")
            writer.writerow(REJECTS_HEADER)
        for r in refusals:
            writer.writerow((r.line, r.reference_id, r.sqlstate, r.code, r.field, r.message))
        try:
            data = out.getvalue().encode("utf-8", "surrogateescape")  # the input's own bytes back
        except UnicodeEncodeError:
            data = out.getvalue().encode("utf-8", "backslashreplace")
        self.file.write(data)
        self.file.flush()
        os.fsync(self.file.fileno())
        self.size = self.file.tell()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


# ---------------------------------------------------------------- the progress display


class Display:
    """A tqdm bar of rows on a terminal, else a rate line every REPORT_EVERY_SECONDS; both on stderr."""

    def __init__(self, total: int, initial: int) -> None:
        self.started = time.monotonic()
        self.last = self.started
        self.initial = initial
        self.done = initial
        self.total = total
        self.bar: Any = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit=" rows", unit_scale=True, file=sys.stderr)

    def say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def rate(self) -> float:
        return (self.done - self.initial) / max(time.monotonic() - self.started, 1e-9)

    def update(self, rows: int) -> None:
        self.done += rows
        if self.bar is not None:
            self.bar.update(rows)
        elif time.monotonic() - self.last >= REPORT_EVERY_SECONDS:
            self.last = time.monotonic()
            self.say(f"grant: {self.done} of ~{self.total} rows, {self.rate():.0f} rows/s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------- the run


class Run:
    """Batches are sent out of order; they are committed here in file order: counts, rejects, state file."""

    def __init__(self, options: Options, identity: dict[str, Any], progress: Progress, rejects: Rejects) -> None:
        self.options, self.identity, self.progress, self.rejects = options, identity, progress, rejects
        self.finished: dict[int, tuple[Batch, list[tuple]]] = {}
        self.next_seq = 0
        self.display: Display | None = None

    def save(self) -> None:
        state = json.dumps(self.progress.state(self.options, self.identity)) + "\n"
        try:
            write_atomically(self.options.state_path, state)
        except OSError as exc:
            raise GrantError(f"cannot write {self.options.state_path}: {exc.strerror}") from None

    def finish(self, batch: Batch, rows: list[tuple]) -> None:
        """A batch is committed in the database; record it and every batch now contiguous with the start."""
        self.finished[batch.seq] = (batch, rows)
        while self.next_seq in self.finished:
            self._record(*self.finished.pop(self.next_seq))
            self.next_seq += 1

    def _record(self, batch: Batch, rows: list[tuple]) -> None:
        progress = self.progress
        refusals = list(batch.refusals)
        for ordinal, replayed, sqlstate, message, column in rows:
            if sqlstate is None:
                if replayed:
                    progress.replayed += 1
                else:
                    progress.posted += 1
            else:
                known = DB_ERRORS.get(sqlstate)
                refusals.append(
                    Refusal(
                        batch.lines[ordinal - 1],
                        batch.ops[ordinal - 1]["reference_id"],
                        sqlstate,
                        known.code if known else sqlstate,
                        column or "",
                        message or "",
                    )
                )
        refusals.sort(key=lambda r: r.line)
        progress.refused.update(r.code for r in refusals)
        self.rejects.write(refusals)
        progress.rejects_size = self.rejects.size
        progress.offset, progress.line = batch.end_offset, batch.end_line
        progress.rows += batch.rows
        self.save()
        if self.display is not None:
            self.display.update(batch.rows)


def run(options: Options, url: str) -> int:
    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        header = read_header(options.file)
        identity = identify(options.file)
        progress = load_progress(options, header, identity, say)
        preflight(url)
        rejects = Rejects(options.rejects_path, progress.rejects_size)
        state = Run(options, identity, progress, rejects)
        state.save()  # now: a state file that cannot be written stops the run before anything is sent
    except GrantError as exc:
        print(f"wallet-service grant: {exc}", file=sys.stderr)
        return exc.status
    resumed_at = progress.line + 1
    display = state.display = Display(progress.rows + estimate_rows(options.file, progress.offset), progress.rows)
    sender = Sender(url, options.actor)
    failure: str | None = None
    in_flight: dict[Future[list[tuple]], Batch] = {}

    def collect(until: Callable[[], bool]) -> None:
        """Wait for batches in flight until `until()`; the first failure stops the run (recorded in failure)."""
        nonlocal failure
        while in_flight and not until():
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                batch = in_flight.pop(future)
                try:
                    state.finish(batch, future.result())
                except BatchFailed as exc:
                    failure = failure or f"the batch of lines {batch.lines[0]}..{batch.end_line} failed: {exc}"
                except GrantError as exc:  # the state file could not be written
                    failure = failure or str(exc)

    try:
        with options.file.open("rb") as file, ThreadPoolExecutor(options.concurrency) as pool:
            source = Source(file, progress.offset, progress.line)
            try:
                for batch in batches(source, header.columns, options):

                    def room(batch: Batch = batch) -> bool:
                        return len(in_flight) < options.concurrency and not any(
                            batch.refs & other.refs for other in in_flight.values()
                        )

                    collect(until=room)
                    if failure is not None:
                        break
                    if batch.ops:
                        in_flight[pool.submit(sender.send, batch)] = batch
                    else:
                        state.finish(batch, [])
                collect(until=lambda: False)
            except KeyboardInterrupt:
                failure = "interrupted"
                collect(until=lambda: False)
    finally:  # after the pool: no batch is in flight any more
        rejects.close()
        sender.close()
        display.close()
    rows_now = progress.rows - display.initial
    rate = display.rate()
    refused = sum(progress.refused.values())
    by_code = ", ".join(f"{code} {n}" for code, n in sorted(progress.refused.items()))
    summary = (
        f"{options.file}: {progress.rows} rows: {progress.posted} posted, {progress.replayed} replayed, "
        f"{refused} refused" + (f" ({by_code})" if by_code else "")
    )
    if failure is not None:
        print(
            f"wallet-service grant: stopped: {failure}\n"
            f"so far {summary}\nrun the same command again to resume at line {progress.line + 1}",
            file=sys.stderr,
        )
        return EXIT_STOPPED
    options.state_path.unlink(missing_ok=True)
    print(summary)
    elapsed = time.monotonic() - display.started
    print(f"this run: {rows_now} rows from line {resumed_at} in {elapsed:.1f} s ({rate:.0f} rows/s)")
    if refused:
        print(f"refused rows: {options.rejects_path}")
        return EXIT_REFUSED
    return EXIT_OK


# ---------------------------------------------------------------- the command line


def _positive(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}")
        return value

    return parse


def _ident(text: str) -> str:
    problems = FieldErrors()
    value = problems.ident("", text)
    if value is None:
        raise argparse.ArgumentTypeError(problems.items[0]["message"])
    return value


def add_parser(sub: Any) -> argparse.ArgumentParser:
    grant = sub.add_parser(
        "grant",
        help="credit many players from a CSV file (bonus or top-up), in batches, resumable",
        description="Post the credits listed in a CSV file, in batches of one wallet_post_batch call each. "
        f"Header row; columns {', '.join(REQUIRED_COLUMNS)} (required), operation (bonus or topup, default "
        "bonus), bonus_type, payment_method (topup), metadata (a JSON object). Reference ids make a re-run "
        "harmless: a row sent again is a replay. A bad row is refused (written to the rejects file with its "
        "line) and the others are posted. Progress is kept in FILE.progress: run the same command again after "
        "a crash or Ctrl-C to resume. Exit status: 0 every row posted or replayed, 1 some rows refused, 2 "
        "nothing sent (bad options, file or header), 3 stopped part-way (resume by running it again).",
    )
    grant.add_argument("--file", required=True, type=Path, metavar="FILE", help="the CSV file")
    grant.add_argument(
        "--batch-size",
        type=_positive(1, MAX_BATCH_SIZE),
        default=DEFAULT_BATCH_SIZE,
        help=f"rows per batch, 1 to {MAX_BATCH_SIZE} (default {DEFAULT_BATCH_SIZE})",
    )
    grant.add_argument(
        "--concurrency",
        type=_positive(1, MAX_CONCURRENCY),
        default=DEFAULT_CONCURRENCY,
        help=f"batches in flight at once, each on its own connection (default {DEFAULT_CONCURRENCY})",
    )
    grant.add_argument(
        "--bonus-type",
        type=_ident,
        default=DEFAULT_BONUS_TYPE,
        help=f"bonus_type of bonus rows that leave it empty (default {DEFAULT_BONUS_TYPE})",
    )
    grant.add_argument("--actor", type=_ident, help="recorded as every transaction's actor (default: the login)")
    grant.add_argument("--rejects", type=Path, metavar="PATH", help="where refused rows go (default FILE.rejects.csv)")
    grant.add_argument(
        "--restart",
        action="store_true",
        help="ignore FILE.progress and start at the first row (rows sent again are replays)",
    )
    return grant


def options_from(args: argparse.Namespace) -> Options:
    return Options(
        file=args.file,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        bonus_type=args.bonus_type,
        actor=args.actor,
        rejects=args.rejects,
        restart=args.restart,
    )
