"""Stop and search from data.police.uk: the API (nightly) and the monthly archive CSV (backfills).

Both land in raw.stop_searches through the shared loader. Availability drives ingestion: the API's
`crimes-street-dates` lists, per month, the forces that have published stop and search data; we
pull each listed force-month not yet loaded, and re-check every listed one when the source's
`crime-last-updated` date moves (a revision), loading only those whose bytes changed.

`stops-force` already returns every stop of a force-month, those without a location included
(`stops-no-location` is the subset with `location: null`), so only `stops-force` is loaded:
fetching both would count the located-less stops twice.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import psycopg

from vru.archive import Archive, Archived
from vru.feed import SUCCESSFUL_LOADS, Feed, Freshness, Mart, Partitions
from vru.http import FetchError, HttpClient, RetryPolicy
from vru.loader import (
    Chunk,
    LoadResult,
    Parsed,
    Partition,
    Quarantined,
    current_load,
    load_partition,
    record_failure,
)

log = logging.getLogger(__name__)

DATASET = "police.stop_searches"
TABLE = "raw.stop_searches"

# The monthly archive CSV header, in the published order, and the raw column each maps to.
CSV_COLUMNS: dict[str, str] = {
    "Type": "type",
    "Date": "datetime",
    "Part of a policing operation": "operation",
    "Policing operation": "operation_name",
    "Latitude": "latitude",
    "Longitude": "longitude",
    "Gender": "gender",
    "Age range": "age_range",
    "Self-defined ethnicity": "self_defined_ethnicity",
    "Officer-defined ethnicity": "officer_defined_ethnicity",
    "Legislation": "legislation",
    "Object of search": "object_of_search",
    "Outcome": "outcome",
    "Outcome linked to object of search": "outcome_linked_to_object_of_search",
    "Removal of more than just outer clothing": "removal_of_more_than_outer_clothing",
}
_CSV_BOOLEAN = frozenset({"Part of a policing operation", "Outcome linked to object of search",
                          "Removal of more than just outer clothing"})
_CSV_NUMBER = frozenset({"Latitude", "Longitude"})

# Keys of one stop in the API's JSON (stops-force).
API_KEYS = frozenset({
    "type", "involved_person", "datetime", "operation", "operation_name", "location", "gender",
    "age_range", "self_defined_ethnicity", "officer_defined_ethnicity", "legislation",
    "object_of_search", "outcome", "outcome_object", "outcome_linked_to_object_of_search",
    "removal_of_more_than_outer_clothing",
})
API_COPY_COLUMNS = (
    "line_no", "type", "involved_person", "datetime", "operation", "operation_name", "latitude",
    "longitude", "street_id", "street_name", "gender", "age_range", "self_defined_ethnicity",
    "officer_defined_ethnicity", "legislation", "object_of_search", "outcome", "outcome_id",
    "outcome_linked_to_object_of_search", "removal_of_more_than_outer_clothing",
)

_ARCHIVE_NAME = re.compile(r"^(?P<month>\d{4}-\d{2})-(?P<force>[a-z0-9-]+)-stop-and-search\.csv$")
# ISO 8601 extended format, as published; checked before fromisoformat so that only forms
# PostgreSQL also accepts reach COPY (a bad value must be quarantined, not abort the COPY).
_ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?$"
)
_BOOLEANS = frozenset({"", "True", "False", "true", "false"})
_PG_MAX_OFFSET = timedelta(hours=16)  # PostgreSQL takes UTC offsets up to 15:59:59


class SchemaMismatch(ValueError):
    """A file or response whose columns differ from the known schema (refused whole)."""


def parse_month(value: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m").date()
    except ValueError as exc:
        raise ValueError(f"bad month {value!r}: expected YYYY-MM") from exc


def archive_file_partition(path: Path) -> Partition:
    """`2019-12-merseyside-stop-and-search.csv` -> Partition('merseyside', 2019-12-01)."""
    match = _ARCHIVE_NAME.match(path.name)
    if not match:
        raise ValueError(
            f"{path}: not a data.police.uk archive file name (expected "
            "YYYY-MM-<force>-stop-and-search.csv)"
        )
    return Partition(match["force"], parse_month(match["month"]))


def _bad_datetime(value: str) -> bool:
    """True unless both Python and PostgreSQL read `value` as the same ISO 8601 timestamp.

    fromisoformat alone is too lenient (any separator for 'T', week dates), so the extended
    date shape is checked first: cheap character tests on the hot path, the full pattern after.
    """
    if len(value) < 10 or value[4] != "-" or value[7] != "-" or (len(value) > 10 and value[10] not in "T "):
        return True
    try:
        offset = datetime.fromisoformat(value).utcoffset()
    except ValueError:
        return True
    if offset is not None and abs(offset) >= _PG_MAX_OFFSET:
        return True  # Python reads it, PostgreSQL refuses it: it would abort the whole COPY
    return len(value) != 25 and not _ISO_DATETIME.match(value)


def _bad_number(value: str) -> bool:
    """True unless PostgreSQL's double precision input takes `value` as Python reads it."""
    try:
        float(value)
    except ValueError:
        return True
    return not value.isascii() or "_" in value


# --- archive CSV ----------------------------------------------------------------------------
def parse_csv(stream: TextIO, where: str) -> Parsed:
    """Parse a monthly archive CSV (a text stream opened with newline='').

    Raises SchemaMismatch if the header differs from the published one. Rows that cannot be
    typed are yielded as Quarantined with the reason and the CSV line number (header = line 1).
    A checked line is passed to COPY as the text it arrived as (no re-serialising), and a block
    of lines that all pass one compiled pattern is checked in one call (`_fast_record_pattern`):
    that is what lets the loader keep pace with psql's \\copy.
    """
    header_line = stream.readline()
    if not header_line:
        raise SchemaMismatch(f"{where}: empty file, no header")
    header = next(csv.reader([header_line]))
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    missing = [c for c in CSV_COLUMNS if c not in header]
    unexpected = [c for c in header if c not in CSV_COLUMNS]
    if missing or unexpected or len(header) != len(set(header)):
        raise SchemaMismatch(
            f"{where}: columns differ from the data.police.uk stop-and-search schema: "
            f"missing {missing or 'none'}, unexpected {unexpected or 'none'}"
            + ("; duplicated column names" if len(header) != len(set(header)) else "")
        )
    columns = ["line_no", *(CSV_COLUMNS[c] for c in header)]
    return Parsed(columns, _csv_records(stream, header))


def _check_fields(row: list[str], header: list[str], i_date: int,
                  numbers: list[tuple[int, str]], booleans: list[tuple[int, str]]) -> str | None:
    """The reason a record cannot be typed, or None."""
    if len(row) != len(header):
        return f"wrong field count: expected {len(header)}, got {len(row)}"
    when = row[i_date]
    if not when or _bad_datetime(when):
        return f"bad date: column 'Date' is {when!r}"
    for i, name in numbers:
        if row[i] and _bad_number(row[i]):
            return f"bad number: column {name!r} is {row[i]!r}"
    for i, name in booleans:
        if row[i] not in _BOOLEANS:
            return f"bad boolean: column {name!r} is {row[i]!r}"
    return None


# The fast path's field shapes: each a strict subset of what the per-line checks accept (so a
# block that matches loads exactly what the per-line path would), and what the published files
# hold. Anything else (quotes, fractional seconds, Feb 29, a lone CR, a blank line) fails the
# pattern and its block takes the per-line path, which decides.
_FAST_DATE = (
    r"[1-9]\d{3}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
    r"|02-(?:0[1-9]|1\d|2[0-8]))T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:[+-](?:0\d|1[0-4]):[0-5]\d|Z)"
)
_FAST_NUMBER = r"(?:-?\d{1,3}\.\d{1,15})?"
_FAST_BOOLEAN = r"(?:True|False|true|false)?"
_FAST_TEXT = '[^,"\\r\\n\\x00\\t\\\\]*'  # nor a tab or backslash: COPY's text format
_BLOCK_CHARS = 1 << 20  # characters read at a time: about 4,500 records; memory stays flat
# A line as iterating a file opened with newline='' gives it (CRLF, LF or a lone CR ends one).
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _fast_block_patterns(header: list[str]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Whole blocks of lines (LF-ended, CRLF-ended) whose every field is in the form COPY takes.

    One `fullmatch` checks a block: no Python runs per line or per field.
    """
    record = ",".join(
        _FAST_DATE if name == "Date" else _FAST_NUMBER if name in _CSV_NUMBER
        else _FAST_BOOLEAN if name in _CSV_BOOLEAN else _FAST_TEXT
        for name in header
    )
    return re.compile(f"(?:{record}\n)*+"), re.compile(f"(?:{record}\r\n)*+")


def _csv_records(stream: TextIO, header: list[str]) -> Iterator[Chunk | Sequence[str | None] | Quarantined]:
    """The records after the header, a block of lines at a time.

    A block whose lines all match the fast pattern is checked in one regex call and handed over
    whole; any other block (a quoted field, a bad value, a blank line, mixed line ends, a last
    line without its line end) goes through `_checked_lines`, line by line.
    """
    lf_block, crlf_block = (p.fullmatch for p in _fast_block_patterns(header))
    numbered = "{},{}\n".format  # then every comma becomes a tab: no field holds one
    read, readline = stream.read, stream.readline
    line_no = 1  # the header
    while block := read(_BLOCK_CHARS):
        if not block.endswith("\n"):
            block += readline()  # end the block at a line end (a CRLF is never split)
        crlf = "\r" in block
        if (crlf_block if crlf else lf_block)(block):
            lines = block.split("\r\n" if crlf else "\n")
            lines.pop()  # the empty string after the last line end
            first = line_no + 1
            line_no += len(lines)
            text = "".join(map(numbered, range(first, line_no + 1), lines)).replace(",", "\t")
            yield Chunk(text, len(lines))
            continue
        line_no = yield from _checked_lines(_LINE.findall(block), readline, header, line_no)


def _checked_lines(block: list[str], readline: Callable[[], str], header: list[str],
                   line_no: int) -> Generator[Chunk | Sequence[str | None] | Quarantined, None, int]:
    """Check a block's lines one by one; returns the number of the last line read.

    A quoted record may go on past the block: its next lines are read from the stream.
    """
    width = len(header)
    i_date = header.index("Date")
    numbers = [(i, c) for i, c in enumerate(header) if c in _CSV_NUMBER]
    booleans = [(i, c) for i, c in enumerate(header) if c in _CSV_BOOLEAN]
    (i_lat, _), (i_lon, _) = numbers
    (i_b1, _), (i_b2, _), (i_b3, _) = booleans
    bools = _BOOLEANS
    bad_datetime, bad_number = _bad_datetime, _bad_number
    ready: list[str] = []
    keep = ready.append
    lines = iter(block)
    for line in lines:
        line_no += 1
        if '"' not in line:
            # no quoting, so the line goes to COPY as it arrived.
            text = line.rstrip("\r\n")
            row = text.split(",")
            if (len(row) == width and not bad_datetime(row[i_date])
                    and (not row[i_lat] or not bad_number(row[i_lat]))
                    and (not row[i_lon] or not bad_number(row[i_lon]))
                    and row[i_b1] in bools and row[i_b2] in bools and row[i_b3] in bools
                    and "\r" not in text and "\x00" not in text and "\t" not in text and "\\" not in text):
                keep(f"{line_no},{text}\n")
                continue
            if not text:
                continue  # a blank line carries no record
            if "\x00" in text:
                yield Quarantined(line_no, "bad text: a NUL byte", text.replace("\x00", "\\0"))
                continue
            problem = _check_fields(row, header, i_date, numbers, booleans)
            if problem is None:
                yield [str(line_no), *row]  # a carriage return, tab or backslash inside: escaped by the loader
            else:
                yield Quarantined(line_no, problem, text)
            continue
        # Quoted fields (commas or line breaks inside): the csv module reads the whole record.
        first = line_no
        while line.count('"') % 2:
            more = next(lines, None) or readline()
            if not more:
                break
            line += more
            line_no += 1
        row = next(csv.reader([line]), [])
        if not any(row):
            continue
        problem = _check_fields(row, header, i_date, numbers, booleans)
        if problem is None:
            yield [str(first), *row]
        else:
            yield Quarantined(first, problem, _line(row))
    if ready:
        yield Chunk("".join(ready).replace(",", "\t"), len(ready))
    return line_no


def _line(row: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(row)
    return out.getvalue()


# --- API JSON -------------------------------------------------------------------------------
def parse_api_json(data: bytes, where: str) -> Parsed:
    """Parse a `stops-force` response (a JSON array of stops).

    Invalid or truncated JSON, a non-array, or records whose keys differ from the known schema are
    refused whole (SchemaMismatch). Records with values that cannot be typed are quarantined with
    their array index.
    """
    try:
        stops = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SchemaMismatch(f"{where}: response is not valid JSON (truncated?): {exc}") from None
    if not isinstance(stops, list):
        raise SchemaMismatch(f"{where}: expected a JSON array of stops, got {type(stops).__name__}")
    for index, stop in enumerate(stops):
        if not isinstance(stop, dict):
            raise SchemaMismatch(f"{where}: record {index} is a {type(stop).__name__}, not an object")
        keys = stop.keys()
        if keys != API_KEYS:
            missing = sorted(API_KEYS - keys)
            unexpected = sorted(keys - API_KEYS)
            raise SchemaMismatch(
                f"{where}: record {index} has fields that differ from the data.police.uk "
                f"stops schema: missing {missing or 'none'}, unexpected {unexpected or 'none'}"
            )
    return Parsed(API_COPY_COLUMNS, _api_records(stops))


def _api_bool(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    raise ValueError(f"bad boolean: field {name!r} is {value!r}")


def _api_text(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    raise ValueError(f"bad text: field {name!r} is {value!r}")


def _api_record(index: int, s: dict[str, Any]) -> list[str | None]:
    when = s["datetime"]
    if not isinstance(when, str) or _bad_datetime(when):
        raise ValueError(f"bad date: field 'datetime' is {when!r}")
    lat = lon = street_id = street_name = None
    location = s["location"]
    if location is not None:
        if not isinstance(location, dict):
            raise ValueError(f"bad location: {location!r}")
        for key in ("latitude", "longitude"):
            value = location.get(key)
            if value is not None and (not isinstance(value, (str, int, float)) or _bad_number(str(value))):
                raise ValueError(f"bad number: field 'location.{key}' is {value!r}")
        lat = None if location.get("latitude") is None else str(location["latitude"])
        lon = None if location.get("longitude") is None else str(location["longitude"])
        street = location.get("street") or {}
        if street.get("id") is not None:
            if isinstance(street["id"], bool) or not isinstance(street["id"], int):
                raise ValueError(f"bad number: field 'location.street.id' is {street['id']!r}")
            street_id = str(street["id"])
        street_name = _api_text(street.get("name"), "location.street.name")
    outcome = s["outcome"]
    if outcome is False:  # older responses: `false` meant nothing found
        outcome = "false"
    outcome_object = s["outcome_object"] or {}
    if not isinstance(outcome_object, dict):
        raise ValueError(f"bad outcome_object: {outcome_object!r}")
    return [
        str(index),
        _api_text(s["type"], "type"),
        _api_bool(s["involved_person"], "involved_person"),
        when,
        _api_bool(s["operation"], "operation"),
        _api_text(s["operation_name"], "operation_name"),
        lat,
        lon,
        street_id,
        street_name,
        _api_text(s["gender"], "gender"),
        _api_text(s["age_range"], "age_range"),
        _api_text(s["self_defined_ethnicity"], "self_defined_ethnicity"),
        _api_text(s["officer_defined_ethnicity"], "officer_defined_ethnicity"),
        _api_text(s["legislation"], "legislation"),
        _api_text(s["object_of_search"], "object_of_search"),
        _api_text(outcome, "outcome"),
        _api_text(outcome_object.get("id"), "outcome_object.id"),
        _api_bool(s["outcome_linked_to_object_of_search"], "outcome_linked_to_object_of_search"),
        _api_bool(s["removal_of_more_than_outer_clothing"], "removal_of_more_than_outer_clothing"),
    ]


def _api_records(stops: list[dict[str, Any]]) -> Iterator[Sequence[str | None] | Quarantined]:
    for index, stop in enumerate(stops):
        try:
            yield _api_record(index, stop)
        except ValueError as exc:
            yield Quarantined(index, str(exc), json.dumps(stop, sort_keys=True))


# --- the API client -------------------------------------------------------------------------
class PoliceApi:
    """data.police.uk: availability and stops per force-month. Knows HTTP and JSON, nothing else."""

    def __init__(self, base_url: str, http: HttpClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http

    @classmethod
    def from_settings(cls, cfg: Any) -> PoliceApi:
        http = HttpClient(
            rate_per_second=cfg.police_rate_limit,
            retry=RetryPolicy(max_attempts=cfg.http_max_attempts),
            timeout=cfg.http_timeout,
        )
        return cls(cfg.police_api_url, http)

    def _get(self, path: str, params: dict[str, str] | None = None) -> bytes:
        url = f"{self.base_url}/{path}"
        response = self.http.get(url, params=params)
        if response.status_code != 200:
            raise FetchError(
                f"GET {url} params={params or {}}: HTTP {response.status_code}: "
                f"{response.text[:200]!r}",
                url=url, status=response.status_code,
            )
        return response.content

    def availability_bytes(self) -> bytes:
        return self._get("crimes-street-dates")

    def last_updated(self) -> str | None:
        try:
            return str(json.loads(self._get("crime-last-updated"))["date"])
        except (FetchError, KeyError, ValueError, TypeError) as exc:
            log.warning("crime-last-updated unavailable (%s): revisions are checked by content only "
                        "for force-months not yet loaded", exc)
            return None

    def stops_force(self, part: Partition) -> bytes:
        return self._get("stops-force", {"force": part.force_id, "date": f"{part.month:%Y-%m}"})


def parse_availability(data: bytes) -> list[Partition]:
    """crimes-street-dates -> the (force, month) pairs listed as having stop and search data."""
    try:
        months = json.loads(data)
    except json.JSONDecodeError as exc:
        raise SchemaMismatch(f"crimes-street-dates: not valid JSON: {exc}") from None
    if not isinstance(months, list):
        raise SchemaMismatch("crimes-street-dates: expected a JSON array of months")
    listed: list[Partition] = []
    for entry in months:
        try:
            month = parse_month(entry["date"])
            forces = entry["stop-and-search"]
        except (KeyError, TypeError) as exc:
            raise SchemaMismatch(f"crimes-street-dates: entry {entry!r} lacks {exc}") from None
        listed.extend(Partition(force, month) for force in forces)
    return sorted(set(listed), key=lambda p: (p.month, p.force_id))


# --- orchestration of one feed night (called by the DAG tasks and the CLI) ---------------------
@dataclass
class Plan:
    partitions: list[Partition]
    last_updated: str | None
    listed: int
    already_loaded: int

    def by_month(self) -> list[list[dict[str, str]]]:
        """Partitions grouped by month, as JSON-able batches (one mapped task each)."""
        groups: dict[date, list[dict[str, str]]] = {}
        for p in self.partitions:
            groups.setdefault(p.month, []).append(
                {"force_id": p.force_id, "month": f"{p.month:%Y-%m}", "version": self.last_updated or ""}
            )
        return [groups[m] for m in sorted(groups)]


def plan(conn: psycopg.Connection, api: PoliceApi, archive: Archive) -> Plan:
    """Decide which force-months to fetch tonight, and record what the source lists.

    A listed force-month is fetched when it is not loaded yet, or when it was last fetched under
    an older `crime-last-updated` date than the source's current one (it may have been revised).
    The decision is per force-month, so a night that fails part-way re-checks only what it missed.
    """
    raw = api.availability_bytes()
    archive.put_bytes(f"{DATASET}/availability", raw, ".json")
    listed = parse_availability(raw)
    last_updated = api.last_updated()
    with conn.transaction():
        with conn.cursor() as cur:
            cur.executemany(
                """
                insert into raw.police_availability (force_id, month) values (%s, %s)
                on conflict (force_id, month) do update set last_listed_at = now()
                """,
                [(p.force_id, p.month) for p in listed],
            )
        current = {
            (row[0], row[1]): row[2]
            for row in conn.execute(
                """
                select a.force_id, a.month, a.checked_version
                from raw.police_availability a
                where exists (select 1 from audit.loads l
                              where l.dataset = %s and l.force_id = a.force_id and l.month = a.month
                                and l.status = any(%s))
                """,
                (DATASET, list(SUCCESSFUL_LOADS)),
            )
        }
    todo = [
        p for p in listed
        if (p.force_id, p.month) not in current
        or (last_updated is not None and current[(p.force_id, p.month)] != last_updated)
    ]
    log.info("%d force-months listed, %d loaded already; source last updated %s: %d to fetch",
             len(listed), len(current), last_updated, len(todo))
    return Plan(todo, last_updated, len(listed), len(current))


def ingest_api_partition(conn: psycopg.Connection, api: PoliceApi, archive: Archive,
                         part: Partition, run_id: str | None = None,
                         source_version: str | None = None) -> LoadResult:
    """Fetch, keep, and (if its bytes changed) load one force-month. Never raises for bad data.

    `source_version` is the source's last-updated date this fetch answers to: recorded once the
    force-month is in (loaded, replaced or unchanged) so the next night need not fetch it again.
    """
    try:
        data = api.stops_force(part)
    except FetchError as exc:
        log.error("%s: %s", part.label, exc)
        return record_failure(conn, dataset=DATASET, part=part, origin="api", status="failed",
                              error=str(exc), run_id=run_id)
    kept = archive.put_bytes(DATASET, data, ".json")
    where = f"stops-force force={part.force_id} date={part.month:%Y-%m} (sha256 {kept.sha256[:12]})"
    result = _load_if_changed(conn, part, "api", kept, lambda: parse_api_json(data, where), run_id)
    if result.status in (*SUCCESSFUL_LOADS, "unchanged"):
        conn.execute(
            "update raw.police_availability set checked_version = %s, checked_at = now() "
            "where force_id = %s and month = %s",
            (source_version, part.force_id, part.month),
        )
    return result


def ingest_archive_file(conn: psycopg.Connection, archive: Archive, path: Path,
                        run_id: str | None = None) -> LoadResult:
    """Load one monthly archive CSV (backfill); same raw table, same rules as the API."""
    part = archive_file_partition(path)
    kept = archive.put_file(DATASET, path, ".csv")

    def parse() -> Parsed:
        handle = open(kept.path, encoding="utf-8-sig", newline="")
        parsed = parse_csv(handle, str(path))
        parsed.records = _closing(parsed.records, handle)
        return parsed

    return _load_if_changed(conn, part, "archive_csv", kept, parse, run_id)


def _closing(records: Iterable[Any], handle: io.TextIOBase) -> Iterator[Any]:
    try:
        yield from records
    finally:
        handle.close()


def _load_if_changed(conn: psycopg.Connection, part: Partition, origin: str, kept: Archived,
                     parse: Any, run_id: str | None) -> LoadResult:
    current = current_load(conn, DATASET, part)
    if current and current[1] == kept.sha256:
        return LoadResult(DATASET, part.force_id, f"{part.month:%Y-%m}", origin, "unchanged",
                          kept.sha256, current[0], rows_loaded=current[2])
    try:
        parsed = parse()
        result = load_partition(conn, dataset=DATASET, table=TABLE, part=part, origin=origin,
                                sha256=kept.sha256, archive_path=str(kept.path), parsed=parsed,
                                run_id=run_id)
    except (SchemaMismatch, UnicodeDecodeError) as exc:
        log.error("%s refused: %s", part.label, exc)
        return record_failure(conn, dataset=DATASET, part=part, origin=origin, status="refused",
                              error=str(exc), sha256=kept.sha256, archive_path=str(kept.path),
                              run_id=run_id)
    log.info("%s: %s %d rows (%d quarantined) from %s", part.label, result.status,
             result.rows_loaded, result.rows_quarantined, origin)
    return result


def remember_last_updated(conn: psycopg.Connection, value: str | None) -> None:
    """The source's last-updated date as of the last complete night (for the report)."""
    if value is None:
        return
    with conn.transaction():
        conn.execute(
            """
            insert into audit.feed_state (dataset, key, value) values (%s, 'last_updated', %s)
            on conflict (dataset, key) do update set value = excluded.value, updated_at = now()
            """,
            (DATASET, value),
        )


FEED = Feed(
    name="police",
    dataset=DATASET,
    kind="api",
    label="Stop and search",
    source_label="Stop and search (data.police.uk)",
    raw_table=TABLE,
    staging_table="staging.stg_police__stop_searches",
    schedule="0 2 * * *",
    retries=1,
    retry_delay_minutes=2,
    tags=("police", "stop-and-search", "ingest"),
    url_setting="police_api_url",
    marts=(Mart("stop_search_monthly", "police.stop_search_monthly", "Stop and search (monthly figures)"),),
    # Validation work in proportion to the change: the force-months loaded since the last
    # publication (the view audit.changed_partitions states the rule). The dbt macro
    # changed_police_partitions selects the same (tests/test_registry.py keeps them equal).
    changed_partitions=Partitions(
        key=("force_id", "month"),
        query="select force_id, month from audit.changed_partitions where dataset = 'police.stop_searches'",
    ),
    # data.police.uk publishes a month about 1-2 months after it ends (61 days at the latest),
    # one month per monthly release (31 days). Just before a release on time, the latest month
    # held ended at most 61 + 31 = 92 days ago; older means a release was missed.
    freshness=Freshness(
        publisher="data.police.uk",
        period="month",
        publication_lag_days=61,
        cycle_days=31,
        latest_period_end_sql=(
            "select (max(month) + interval '1 month' - interval '1 day')::date from audit.loads "
            "where dataset = 'police.stop_searches' and status = any(%(successful)s)"
        ),
        published_period_end_sql=(
            "select (max(month) + interval '1 month' - interval '1 day')::date from raw.police_availability"
        ),
    ),
)
