"""Idempotent loading of one partition (e.g. a force-month) into a raw table with COPY.

One transaction per partition: lock it, delete its current rows, COPY the new ones, keep the rows
that could not be parsed in raw.quarantine, and record the load in audit.loads. A process killed
mid-load leaves the previous version intact (the transaction never commits). Re-loading the same
bytes (same sha256) is a no-op, so reruns load nothing twice.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date

import psycopg

from vru.feed import SUCCESSFUL_LOADS

log = logging.getLogger(__name__)

_BLOCK = 1 << 18  # bytes per COPY write: big enough to amortise calls, small enough to stream


@dataclass(frozen=True)
class Partition:
    force_id: str
    month: date

    @property
    def label(self) -> str:
        return f"{self.force_id} {self.month:%Y-%m}"


@dataclass(frozen=True)
class Quarantined:
    line_no: int
    reason: str
    record: str
    column: str | None = None  # the column at fault, when the parser knows it


@dataclass(frozen=True)
class Chunk:
    """Many checked records as one text in COPY's text format: `rows` lines in `columns` order,
    fields separated by tabs, each line ending in a newline, no field holding a tab, backslash,
    carriage return or newline (so nothing to escape), an empty field being NULL.

    The hot path of a parser: the loader puts its own columns in front of every line in one call
    and hands the text to COPY, instead of handling records one by one.
    """

    text: str
    rows: int


@dataclass(frozen=True)
class Noted:
    """A row of a published table that is not a figure (title line, footnote, totals row): kept
    in raw.source_notes with what it was taken for, never loaded as data."""

    sheet: str | None
    line_no: int
    kind: str  # preamble | footnote | total | outside_scope
    record: str


@dataclass
class Parsed:
    """What a parser hands the loader: COPY columns and an iterator of rows or quarantined rows.

    Rows are sequences of text fields (None = NULL) in `columns` order, or Chunks of CSV lines
    already in that order; the loader puts the load's own columns in front (load_id, and
    what the caller's table keeps of the load: force_id and month for a force-month).
    """

    columns: Sequence[str]
    records: Iterable[Chunk | Sequence[str | None] | Quarantined | Noted]


@dataclass
class LoadResult:
    dataset: str
    force_id: str
    month: str
    origin: str
    status: str  # loaded | replaced | unchanged | failed | refused
    sha256: str | None = None
    load_id: int | None = None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    previous_rows: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def current_load(conn: psycopg.Connection, dataset: str, part: Partition) -> tuple[int, str, int] | None:
    """(load_id, sha256, rows_loaded) of the partition's data as it stands in the warehouse."""
    row = conn.execute(
        """
        select load_id, sha256, rows_loaded from audit.loads
        where dataset = %s and force_id = %s and month = %s and status = any(%s)
        order by load_id desc limit 1
        """,
        (dataset, part.force_id, part.month, list(SUCCESSFUL_LOADS)),
    ).fetchone()
    return (int(row[0]), str(row[1]), int(row[2])) if row else None


def load_partition(
    conn: psycopg.Connection,
    *,
    dataset: str,
    table: str,
    part: Partition,
    origin: str,
    sha256: str,
    archive_path: str,
    parsed: Parsed,
    run_id: str | None = None,
) -> LoadResult:
    """Replace the partition's rows with `parsed`, atomically. The caller checked the sha256."""
    schema, name = table.split(".")
    result = LoadResult(dataset, part.force_id, f"{part.month:%Y-%m}", origin, "loaded", sha256)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"{dataset}/{part.label}",))
        previous = current_load(conn, dataset, part)
        load_id = int(conn.execute("select nextval('audit.loads_load_id_seq')").fetchone()[0])  # type: ignore[index]
        result.load_id = load_id
        conn.execute(
            psycopg.sql.SQL("delete from {}.{} where force_id = %s and month = %s").format(
                psycopg.sql.Identifier(schema), psycopg.sql.Identifier(name)
            ),
            (part.force_id, part.month),
        )
        # origin and sha256 are the load's (audit.loads, below), not repeated on every row
        prefix = [str(load_id), part.force_id, part.month.isoformat()]
        loaded, quarantined, _ = copy_records(conn, table, ["load_id", "force_id", "month"], prefix, parsed)
        if quarantined:
            write_quarantine(conn, load_id, dataset, part.force_id, part.month, origin, sha256, quarantined)
        result.rows_loaded = loaded
        result.rows_quarantined = len(quarantined)
        result.rows_read = loaded + len(quarantined)
        result.status = "replaced" if previous else "loaded"
        if previous:
            result.previous_rows = previous[2]
        conn.execute(
            """
            insert into audit.loads (load_id, dataset, force_id, month, origin, sha256, archive_path,
                status, rows_read, rows_loaded, rows_quarantined, previous_load_id, previous_sha256,
                previous_rows, run_id, finished_at)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
            """,
            (load_id, dataset, part.force_id, part.month, origin, sha256, archive_path,
             result.status, result.rows_read, result.rows_loaded, result.rows_quarantined,
             previous[0] if previous else None, previous[1] if previous else None,
             previous[2] if previous else None, run_id),
        )
    return result


def copy_records(
    conn: psycopg.Connection,
    table: str,
    prefix_columns: Sequence[str],
    prefix: Sequence[str],
    parsed: Parsed,
) -> tuple[int, list[Quarantined], list[Noted]]:
    """COPY a parser's rows into `table`, each with the load's own `prefix` values in front.

    Returns how many rows were written, and the rows set aside (quarantined, or noted as not
    being data) for the caller to keep. Runs inside the caller's transaction.
    """
    schema, name = table.split(".")
    # Text format, not csv: PostgreSQL spent about a fifth less CPU reading the same rows
    # (benchmarks/README.md); an empty field is NULL, as an unquoted empty csv field was.
    copy_sql = psycopg.sql.SQL("copy {}.{} ({}) from stdin (format text, null '')").format(
        psycopg.sql.Identifier(schema),
        psycopg.sql.Identifier(name),
        psycopg.sql.SQL(", ").join(
            psycopg.sql.Identifier(c) for c in [*prefix_columns, *parsed.columns]
        ),
    )
    tally = CopyTally()
    # The default writer, not psycopg's QueuedLibpqWriter: with a writer thread this was slower
    # (0.53x psql vs 0.65x) and its unbounded queue took RSS to 149 MB on 2 cores.
    with conn.cursor().copy(copy_sql) as copy:
        for text in copy_text(prefix, parsed.records, tally):
            copy.write(text)
    return tally.loaded, tally.quarantined, tally.noted


@dataclass
class CopyTally:
    """What `copy_text` sent and set aside."""

    loaded: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    noted: list[Noted] = field(default_factory=list)


def copy_text(prefix: Sequence[str], records: Iterable[Chunk | Sequence[str | None] | Quarantined | Noted],
              tally: CopyTally) -> Iterator[str]:
    """The COPY text (format text, null '') of a parser's records, in blocks, `prefix` in front.

    A Chunk goes out as one block (its lines get the prefix in one pass over the text); single
    rows are escaped field by field and sent every `_BLOCK` characters. Quarantined and Noted
    records are kept in `tally` for the caller.
    """
    prefix_text = "".join(_copy_field(v) + "\t" for v in prefix)
    joiner = "\n" + prefix_text
    buffer = io.StringIO()
    put = buffer.write
    for record in records:
        kind = type(record)
        if kind is Chunk:
            chunk: Chunk = record  # type: ignore[assignment]
            if chunk.rows:
                if buffer.tell():
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
                yield prefix_text + chunk.text[:-1].replace("\n", joiner) + "\n"
                tally.loaded += chunk.rows
        elif kind is Quarantined:
            tally.quarantined.append(record)  # type: ignore[arg-type]
        elif kind is Noted:
            tally.noted.append(record)  # type: ignore[arg-type]
        else:
            put(prefix_text)
            put("\t".join(map(_copy_field, record)))  # type: ignore[arg-type]
            put("\n")
            tally.loaded += 1
            if buffer.tell() > _BLOCK:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_field(value: object) -> str:
    """One field in COPY's text format with `null ''`: None (or an empty string) is NULL."""
    return "" if value is None else str(value).translate(_TEXT_ESCAPES)


def write_quarantine(conn: psycopg.Connection, load_id: int, dataset: str, force_id: str | None,
                     month: date | None, origin: str, sha256: str, rows: Iterable[Quarantined]) -> None:
    with conn.cursor().copy(
        "copy raw.quarantine (load_id, dataset, force_id, month, origin, sha256, line_no,"
        " reason, record) from stdin"
    ) as copy:
        for q in rows:
            copy.write_row((load_id, dataset, force_id, month, origin, sha256, q.line_no, q.reason, q.record))


def record_failure(
    conn: psycopg.Connection,
    *,
    dataset: str,
    part: Partition,
    origin: str,
    status: str,
    error: str,
    sha256: str | None = None,
    archive_path: str | None = None,
    run_id: str | None = None,
) -> LoadResult:
    """Record a partition that could not be loaded (fetch failed, or refused as malformed)."""
    with conn.transaction():
        load_id = conn.execute(
            """
            insert into audit.loads (dataset, force_id, month, origin, sha256, archive_path, status,
                                     error, run_id, finished_at)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, now()) returning load_id
            """,
            (dataset, part.force_id, part.month, origin, sha256, archive_path, status, error, run_id),
        ).fetchone()[0]  # type: ignore[index]
    return LoadResult(dataset, part.force_id, f"{part.month:%Y-%m}", origin, status, sha256,
                      int(load_id), error=error)
