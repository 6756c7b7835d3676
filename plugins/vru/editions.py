"""Edition feeds: a publisher's whole table, downloaded from one URL and re-published from time to
time (the Home Office knife crime open data table; hospital admissions tables).

Shared mechanics, used by every such feed:

* :func:`fetch` asks the server with the previous edition's ETag and Last-Modified (a 304 costs
  nothing), and compares the sha256 of what it downloads with the latest edition's: the same bytes
  are not a new edition, whatever the headers said.
* :func:`load_edition` loads a new edition beside the earlier ones in one transaction (nothing of
  a refused or interrupted edition is kept), and records in ``audit.revisions`` which figures it
  changed against the figures current before it, and in ``audit.editions`` what the server said.

The current figure of a cell is the latest edition's that has it: an edition that leaves out
older years does not delete them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import psycopg
from psycopg import sql

from vru.archive import Archive, Archived
from vru.config import Settings, reader_limits
from vru.http import FetchError, HttpClient, ResponseTooLarge
from vru.loader import Noted, Parsed, copy_records, write_quarantine
from vru.tables import MissingColumns, TableTooLarge, UnreadableTable, detect_format

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EditionTable:
    """Where a feed's editions are kept and what names one of its figures (a cell).

    `period_columns` (some of the key columns, e.g. year and quarter) say which periods an edition
    publishes: a cell an earlier edition had is "dropped" only when a new edition publishes its
    period without it (an edition that starts later drops nothing).
    """

    dataset: str
    table: str
    key_columns: tuple[str, ...]
    value_column: str
    marker_column: str
    period_columns: tuple[str, ...]


@dataclass(frozen=True)
class EditionRef:
    load_id: int
    sha256: str
    etag: str | None
    last_modified: str | None


@dataclass(frozen=True)
class Download:
    url: str
    kept: Archived
    file_format: str
    etag: str | None
    last_modified: str | None
    data: bytes


@dataclass
class EditionResult:
    dataset: str
    url: str
    status: str  # loaded | unchanged | refused | failed
    load_id: int | None = None
    sha256: str | None = None
    file_format: str | None = None
    previous_load_id: int | None = None
    rows_read: int = 0
    figures: int = 0
    rows_quarantined: int = 0
    rows_noted: int = 0
    figures_added: int = 0
    figures_revised: int = 0
    figures_dropped: int = 0
    reason: str | None = None  # why unchanged, or the error

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def latest_edition(conn: psycopg.Connection, dataset: str) -> EditionRef | None:
    row = conn.execute(
        "select load_id, sha256, etag, last_modified from audit.editions where dataset = %s "
        "order by load_id desc limit 1",
        (dataset,),
    ).fetchone()
    return EditionRef(int(row[0]), row[1], row[2], row[3]) if row else None


def fetch(http: HttpClient, url: str, dataset: str, archive: Archive,
          previous: EditionRef | None, link_pattern: re.Pattern[str] | None = None,
          page_pattern: re.Pattern[str] | None = None) -> Download | str:
    """Download the table if it may have changed; returns the Download, or why it is unchanged.

    `url` is the table itself, or (with `link_pattern`) a publication page: the first link on it
    whose address matches the pattern is the table (gov.uk gives each edition a new address).
    With `page_pattern`, `url` may also be a series page linking one page per publication: the
    latest of those (see `latest_page_link`) is the publication page.

    Every response is read up to VRU_MAX_DOWNLOAD_BYTES and no further: a longer one raises
    :class:`TableTooLarge` (the edition is refused; nothing of it is kept).
    """
    try:
        return _fetch(http, url, dataset, archive, previous, link_pattern, page_pattern)
    except ResponseTooLarge as exc:
        raise TableTooLarge(f"refused: the download is larger than {exc.limit:,} bytes; reading "
                            "stopped there and nothing was kept (the limit is set by VRU_MAX_DOWNLOAD_BYTES)"
                            ) from None


def _fetch(http: HttpClient, url: str, dataset: str, archive: Archive, previous: EditionRef | None,
           link_pattern: re.Pattern[str] | None, page_pattern: re.Pattern[str] | None) -> Download | str:
    limit = reader_limits().download_bytes
    headers = {}
    if previous and previous.etag:
        headers["If-None-Match"] = previous.etag
    if previous and previous.last_modified:
        headers["If-Modified-Since"] = previous.last_modified
    response = http.get(url, headers=headers, max_bytes=limit)
    if response.status_code == 200 and link_pattern is not None and _is_html(response):
        url = _table_address(http, url, response.text, link_pattern, page_pattern, limit)
        response = http.get(url, headers=headers, max_bytes=limit)
    if response.status_code == 304:
        return "not modified (the server's ETag / Last-Modified match the latest edition)"
    if response.status_code != 200:
        raise FetchError(f"GET {url}: HTTP {response.status_code}", url=url, status=response.status_code)
    data = response.content
    file_format = detect_format(data)
    kept = archive.put_bytes(dataset, data, f".{file_format}")
    if previous and kept.sha256 == previous.sha256:
        return "same bytes as the latest edition (sha256 unchanged)"
    return Download(url, kept, file_format, response.headers.get("etag"),
                    response.headers.get("last-modified"), data)


def _is_html(response: httpx.Response) -> bool:
    return "html" in response.headers.get("content-type", "")


def _links(url: str, page: str, pattern: re.Pattern[str]) -> list[str]:
    """The addresses of the links on a page that match `pattern`, in page order, made absolute."""
    return [urljoin(url, href) for href in re.findall(r"""href\s*=\s*["']([^"']+)["']""", page, flags=re.IGNORECASE)
            if pattern.search(href)]


def find_table_link(url: str, page: str, pattern: re.Pattern[str]) -> str:
    """The address of the first link on a publication page that matches `pattern`."""
    links = _links(url, page, pattern)
    if links:
        return links[0]
    raise FetchError(f"{url}: the page links no table matching {pattern.pattern!r}; the publisher may "
                     "have renamed it: set the table's own address in the feed's URL setting", url=url)


def latest_page_link(url: str, page: str, pattern: re.Pattern[str]) -> str | None:
    """Of the links matching `pattern` on a series page, the latest publication's: the greatest
    first group of the pattern (e.g. the year "2023-24"), else the greatest address."""
    def key(link: str) -> str:
        found = pattern.search(link)
        return found.group(1) if found and pattern.groups else link

    links = _links(url, page, pattern)
    return max(links, key=key) if links else None


def _table_address(http: HttpClient, url: str, page: str, table: re.Pattern[str],
                   series: re.Pattern[str] | None, limit: int) -> str:
    """The table linked from a publication page, or from the latest publication a series page links."""
    tables = _links(url, page, table)
    if tables:
        return tables[0]
    if series is None:
        return find_table_link(url, page, table)  # raises, naming the pattern
    publication = latest_page_link(url, page, series)
    if publication is None:
        raise FetchError(f"{url}: the page links neither a table matching {table.pattern!r} nor a "
                         f"publication matching {series.pattern!r}: set the table's own address in the "
                         "feed's URL setting", url=url)
    response = http.get(publication, max_bytes=limit)
    if response.status_code != 200 or not _is_html(response):
        raise FetchError(f"{publication} (the latest publication linked from {url}): HTTP "
                         f"{response.status_code} {response.headers.get('content-type', '')}",
                         url=publication, status=response.status_code)
    return find_table_link(publication, response.text, table)


def record_refusal(conn: psycopg.Connection, dataset: str, download: Download | None, status: str,
                   error: str, run_id: str | None) -> None:
    """Record an edition that could not be fetched ('failed') or was not loaded ('refused')."""
    conn.execute(
        """insert into audit.loads (dataset, origin, sha256, archive_path, status, error, run_id, finished_at)
           values (%s, 'download', %s, %s, %s, %s, %s, now())""",
        (dataset, download.kept.sha256 if download else None,
         str(download.kept.path) if download else None, status, error, run_id),
    )
    record_check(conn, dataset, f"{status}: {error[:200]}")


def record_check(conn: psycopg.Connection, dataset: str, outcome: str) -> None:
    """Remember when the source was last checked and what was found (freshness in the report)."""
    conn.execute(
        """insert into audit.feed_state (dataset, key, value) values (%s, 'last_checked', %s)
           on conflict (dataset, key) do update set value = excluded.value, updated_at = now()""",
        (dataset, outcome),
    )


def load_edition(
    conn: psycopg.Connection,
    target: EditionTable,
    *,
    download: Download,
    parsed: Parsed,
    run_id: str | None = None,
) -> EditionResult:
    """Load one edition beside the earlier ones and record what it revised, in one transaction."""
    dataset, table = target.dataset, target.table
    result = EditionResult(dataset, download.url, "loaded", sha256=download.kept.sha256,
                           file_format=download.file_format)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (dataset,))
        previous = latest_edition(conn, dataset)
        load_id = int(conn.execute("select nextval('audit.loads_load_id_seq')").fetchone()[0])  # type: ignore[index]
        result.load_id = load_id
        result.previous_load_id = previous.load_id if previous else None
        loaded, quarantined, noted = copy_records(
            conn, table, ["load_id", "sha256"], [str(load_id), download.kept.sha256], parsed)
        if quarantined:
            write_quarantine(conn, load_id, dataset, None, None, "download", download.kept.sha256, quarantined)
        if noted:
            _write_notes(conn, load_id, dataset, noted)
        result.figures = loaded
        result.rows_quarantined = len(quarantined)
        result.rows_noted = len(noted)
        result.rows_read = loaded + len(quarantined) + len(noted)
        added, revised, dropped = _record_revisions(conn, target, load_id, has_previous=previous is not None)
        result.figures_added, result.figures_revised, result.figures_dropped = added, revised, dropped
        conn.execute(
            """
            insert into audit.loads (load_id, dataset, origin, sha256, archive_path, status,
                rows_read, rows_loaded, rows_quarantined, rows_skipped, previous_load_id,
                previous_sha256, run_id, finished_at)
            values (%s, %s, 'download', %s, %s, 'loaded', %s, %s, %s, %s, %s, %s, %s, now())
            """,
            (load_id, dataset, download.kept.sha256, str(download.kept.path), result.rows_read, loaded,
             len(quarantined), len(noted), previous.load_id if previous else None,
             previous.sha256 if previous else None, run_id),
        )
        conn.execute(
            """
            insert into audit.editions (load_id, dataset, url, etag, last_modified, file_format, sha256,
                size_bytes, figures, figures_added, figures_revised, figures_dropped)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            (load_id, dataset, download.url, download.etag, download.last_modified, download.file_format,
             download.kept.sha256, download.kept.size, loaded, added, revised, dropped),
        )
        record_check(conn, dataset, f"new edition {load_id}")
    log.info("%s: edition %s loaded (%d figures; %d added, %d revised, %d dropped; %d quarantined, "
             "%d rows noted as not data)", dataset, load_id, loaded, added, revised, dropped,
             len(quarantined), len(noted))
    return result


# A feed's parser: (bytes, file format, where the bytes came from) -> COPY rows, notes, quarantine.
Parser = Callable[[bytes, str, str], Parsed]


@dataclass(frozen=True)
class EditionSource:
    """How an edition feed reads its publisher's table, declared once per feed: its editions
    table, its parser (made from the settings: the seeds it checks names against), where the file
    is linked from, and what else refuses an edition. `Feed.ingest` and `Feed.load_file` are
    these methods."""

    table: EditionTable
    parser: Callable[[Settings], Parser]
    link_pattern: re.Pattern[str]
    page_pattern: re.Pattern[str] | None = None
    refusals: tuple[type[Exception], ...] = ()

    def ingest(self, conn: psycopg.Connection, http: HttpClient, archive: Archive, url: str,
               run_id: str | None, cfg: Settings) -> EditionResult:
        """The nightly check: load the table if the publisher put out a new edition."""
        return check_and_load(conn, http, archive, url, self.table, self.parser(cfg),
                              link_pattern=self.link_pattern, page_pattern=self.page_pattern,
                              refusals=self.refusals, run_id=run_id)

    def load_file(self, conn: psycopg.Connection, archive: Archive, path: Path, run_id: str | None,
                  cfg: Settings) -> EditionResult:
        """`vru load-<feed> FILE`: an edition from a local file (a backfill, or a file sent by hand)."""
        return load_local_file(conn, archive, self.table, path, self.parser(cfg), refusals=self.refusals,
                               run_id=run_id)


def check_and_load(conn: psycopg.Connection, http: HttpClient, archive: Archive, url: str,
                   target: EditionTable, parse: Parser, *, link_pattern: re.Pattern[str] | None = None,
                   page_pattern: re.Pattern[str] | None = None, refusals: tuple[type[Exception], ...] = (),
                   run_id: str | None = None) -> EditionResult:
    """Check the source; load a new edition if there is one. Never raises for bad data: a refused
    edition (a missing column, an unreadable file, one past a reader's limit (a download longer
    than VRU_MAX_DOWNLOAD_BYTES included), or one of the feed's own `refusals`) is recorded in
    audit.loads and returned with status 'refused'; an HTTP failure as 'failed'."""
    dataset = target.dataset
    previous = latest_edition(conn, dataset)
    try:
        got = fetch(http, url, dataset, archive, previous, link_pattern=link_pattern, page_pattern=page_pattern)
    except FetchError as exc:
        record_refusal(conn, dataset, None, "failed", str(exc), run_id)
        return EditionResult(dataset, url, "failed", reason=str(exc))
    except UnreadableTable as exc:
        record_refusal(conn, dataset, None, "refused", f"{url}: {exc}", run_id)
        return EditionResult(dataset, url, "refused", reason=f"{url}: {exc}")
    if isinstance(got, str):
        record_check(conn, dataset, f"unchanged: {got}")
        return EditionResult(dataset, url, "unchanged",
                             previous_load_id=previous.load_id if previous else None, reason=got)
    return load_download(conn, target, got, parse, refusals=refusals, run_id=run_id)


def load_download(conn: psycopg.Connection, target: EditionTable, download: Download, parse: Parser, *,
                  refusals: tuple[type[Exception], ...] = (), run_id: str | None = None) -> EditionResult:
    """Parse and load a downloaded edition; a refused one is recorded and returned, never raised."""
    where = f"{download.url} ({download.file_format}, sha256 {download.kept.sha256[:12]})"
    refused: tuple[type[Exception], ...] = (MissingColumns, UnreadableTable, *refusals)
    try:
        parsed = parse(download.data, download.file_format, where)
        return load_edition(conn, target, download=download, parsed=parsed, run_id=run_id)
    except refused as exc:
        # the readers' reasons do not say which file (the feeds' own reasons start with `where`)
        reason = f"{where}: {exc}" if isinstance(exc, UnreadableTable) else str(exc)
        record_refusal(conn, target.dataset, download, "refused", reason, run_id)
        return EditionResult(target.dataset, download.url, "refused", sha256=download.kept.sha256,
                             file_format=download.file_format, reason=reason)


def load_local_file(conn: psycopg.Connection, archive: Archive, target: EditionTable, path: Path,
                    parse: Parser, *, refusals: tuple[type[Exception], ...] = (),
                    run_id: str | None = None) -> EditionResult:
    """Load an edition from a local file (a backfill of an older edition, or a file sent by hand)."""
    dataset = target.dataset
    url = path.resolve().as_uri()
    limit = reader_limits().download_bytes
    try:
        if path.stat().st_size > limit:  # the same limit as a download: checked before reading it
            raise TableTooLarge(f"refused: the file is larger than {limit:,} bytes and was not read (the limit "
                                "on an edition's size is set by VRU_MAX_DOWNLOAD_BYTES)")
        data = path.read_bytes()
        file_format = detect_format(data)
    except UnreadableTable as exc:
        record_refusal(conn, dataset, None, "refused", f"{url}: {exc}", run_id)
        return EditionResult(dataset, url, "refused", reason=f"{url}: {exc}")
    kept = archive.put_bytes(dataset, data, f".{file_format}")
    previous = latest_edition(conn, dataset)
    if previous and previous.sha256 == kept.sha256:
        return EditionResult(dataset, url, "unchanged", previous_load_id=previous.load_id,
                             reason="same bytes as the latest edition (sha256 unchanged)")
    return load_download(conn, target, Download(url, kept, file_format, None, None, data), parse,
                         refusals=refusals, run_id=run_id)


def _write_notes(conn: psycopg.Connection, load_id: int, dataset: str, notes: list[Noted]) -> None:
    with conn.cursor().copy(
        "copy raw.source_notes (load_id, dataset, sheet, line_no, kind, record) from stdin"
    ) as copy:
        for note in notes:
            copy.write_row((load_id, dataset, note.sheet, note.line_no, note.kind, note.record))


def _record_revisions(conn: psycopg.Connection, target: EditionTable, load_id: int, *,
                      has_previous: bool) -> tuple[int, int, int]:
    """Compare the new edition's cells with the figures current before it, in SQL."""
    dataset, key_columns = target.dataset, target.key_columns
    schema, name = target.table.split(".")
    table = sql.Identifier(schema, name)
    keys = sql.SQL(", ").join(sql.Identifier(k) for k in key_columns)
    value, marker = sql.Identifier(target.value_column), sql.Identifier(target.marker_column)
    on = sql.SQL(" and ").join(
        sql.SQL("n.{k} = p.{k}").format(k=sql.Identifier(k)) for k in key_columns)
    cell = sql.SQL(", ").join(
        sql.SQL("{name}, coalesce(n.{k}, p.{k})").format(name=sql.Literal(k), k=sql.Identifier(k))
        for k in key_columns)
    in_new_period = sql.SQL(" and ").join(
        sql.SQL("n3.{k} = p.{k}").format(k=sql.Identifier(k)) for k in target.period_columns)
    query = sql.SQL(
        """
        with new as (
            select {keys}, {value} as value, {marker} as marker, true as present
            from {table} where load_id = %(id)s
        ),
        previous as (
            select distinct on ({keys}) {keys}, {value} as value, {marker} as marker, load_id
            from {table} where load_id < %(id)s
            order by {keys}, load_id desc
        ),
        compared as (
            select
                p.load_id as previous_load_id,
                jsonb_build_object({cell}) as cell,
                case when p.load_id is null then 'added'
                     when n.present is null then 'dropped'
                     else 'revised' end as change,
                p.value as previous_value, n.value as new_value,
                p.marker as previous_marker, n.marker as new_marker,
                -- a cell is dropped only if this edition publishes its period without it
                n.present is null and exists (select 1 from new n3 where {in_new_period})
                    as dropped_in_covered_period
            from new n full join previous p on {on}
            -- figures are compared as the doubles a spreadsheet stores: the same double written
            -- 7.8306063522617899 by one reader and 7.83060635226179 by another is no revision
            where p.load_id is null or n.present is null
               or n.value::float8 is distinct from p.value::float8 or n.marker is distinct from p.marker
        ),
        kept as (
            insert into audit.revisions (dataset, load_id, previous_load_id, cell, change,
                previous_value, new_value, previous_marker, new_marker)
            select %(dataset)s, %(id)s, previous_load_id, cell, change, previous_value, new_value,
                   previous_marker, new_marker
            from compared
            where (change = 'added' and %(has_previous)s) or change = 'revised'
               or (change = 'dropped' and dropped_in_covered_period)
            returning change
        )
        select count(*) filter (where change = 'added'), count(*) filter (where change = 'revised'),
               count(*) filter (where change = 'dropped')
        from kept
        """
    ).format(keys=keys, value=value, marker=marker, table=table, on=on, cell=cell,
             in_new_period=in_new_period)
    row = conn.execute(query, {"id": load_id, "dataset": dataset, "has_previous": has_previous}).fetchone()
    assert row is not None
    added, revised, dropped = (int(v) for v in row)
    if not has_previous:
        # the first edition: every cell is new, and that is not a revision worth a row each
        added = int(conn.execute(
            sql.SQL("select count(*) from {} where load_id = %s").format(table), (load_id,)
        ).fetchone()[0])  # type: ignore[index]
    return added, revised, dropped
