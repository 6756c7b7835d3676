"""A&E assault attendances: ISTV extracts sent by emergency departments as CSV files.

The file contract (docs/ae-file-contract.md) follows the NHS Data Dictionary's
Information Sharing to Tackle Violence Minimum Data Set: a submission header (reporting period
start and end date, site code of treatment) repeated on every row, then per assault the arrival
date and time, the assault date and time, assault method (and other method description), assault
location type (and description), plus age band and sex where the department shares them.

One file is one department's extract for one reporting period. What happens to it:

* **Rejected whole** (nothing loaded; the file goes to ``rejected/`` with a reason file) when it
  is not the contract: not UTF-8 CSV, a required column missing or a column the contract does not
  have (an extract must not carry other data), a row with the wrong number of fields, a submission
  header that changes between rows, a period that ends before it starts, or overlaps a different
  period already loaded for the same site. The reason names the line and column, never a value.
* **Rows quarantined** (kept in ``restricted.ae_quarantine`` with line, column and reason; the rest
  loaded): an unknown site code (every row), a date that cannot be read, an arrival outside the
  reporting period, an assault after the arrival, a code outside the standard's value sets.
* **Loaded** into ``restricted.ae_attendances`` in one transaction; a re-sent extract for the same
  site and period replaces the earlier one. The same bytes twice are loaded once.

Reasons never quote free text, dates or header cells from a file (a file without a header row
has its first attendance where the header should be): they reach audit tables, reason files,
alerts and reports that people without access to the restricted schema read. They name the line,
the column and the contract's own column names. A wrong code is quoted only when it is code-shaped
(up to 4 letters, digits, '.', '+' or '-'), and a site code only once it is ODS-shaped; the
file name they start with is the caller's shown name (:func:`vru.names.safe_name`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

import psycopg

from vru.feed import SUCCESSFUL_LOADS, Feed, Freshness, Mart
from vru.loader import Parsed, Quarantined, copy_records
from vru.names import safe_name
from vru.tables import Column, ColumnMap, normalise_header

DATASET = "ae.attendances"
TABLE = "restricted.ae_attendances"
ORIGIN = "landing"

# The contract's columns: our header names first, then the NHS Data Dictionary element names
# (matched ignoring case, spaces and punctuation, so "ARRIVAL DATE AND TIME AT ACCIDENT AND
# EMERGENCY DEPARTMENT" is accepted for arrival_date_and_time).
COLUMNS = ColumnMap([
    Column("reporting_period_start_date", ("REPORTING PERIOD START DATE",)),
    Column("reporting_period_end_date", ("REPORTING PERIOD END DATE",)),
    Column("site_code_of_treatment", ("SITE CODE (OF TREATMENT)", "SITE CODE OF TREATMENT", "site_code")),
    Column("arrival_date_and_time", ("ARRIVAL DATE AND TIME AT ACCIDENT AND EMERGENCY DEPARTMENT",
                                     "arrival_date_and_time_at_ae")),
    Column("assault_date_and_time", ("ASSAULT DATE AND TIME",)),
    Column("assault_method", ("ASSAULT METHOD",)),
    Column("assault_method_other_description", ("ASSAULT METHOD OTHER DESCRIPTION",), required=False),
    Column("assault_location_type", ("ASSAULT LOCATION TYPE",)),
    Column("assault_location_description", ("ASSAULT LOCATION DESCRIPTION",), required=False),
    Column("age_band", ("AGE BAND",), required=False),
    Column("sex", ("PERSON PHENOTYPIC SEX", "SEX"), required=False),
])
HEADER = [c.name for c in COLUMNS.columns]

# COPY columns after the load's own prefix (load_id, sha256, site_code, force_id, period)
COPY_COLUMNS = ("line_no", "arrival_at", "assault_date", "assault_time", "assault_method",
                "assault_method_other", "assault_location_type", "assault_location_description",
                "age_band", "sex")
PREFIX_COLUMNS = ("load_id", "sha256", "site_code", "force_id", "reporting_period_start",
                  "reporting_period_end")
FREE_TEXT_LIMIT = 500  # characters kept of a free-text item
SITE_CODE = re.compile(r"[A-Z0-9]{3,10}")  # an ODS site code (RWEAA); anything else refuses the file
CODE_LIKE = re.compile(r"[A-Za-z0-9.+-]{1,4}")  # a wrong code short enough to quote; longer text is not


class Rejected(ValueError):
    """The file is not an extract of the contract: it is refused whole and nothing is loaded."""


@dataclass(frozen=True)
class Reference:
    """What a row is checked against: the dbt seeds ae_sites and istv_codes (one source of truth)."""

    sites: dict[str, str]  # site code -> force id
    codes: dict[str, frozenset[str]]  # value set -> codes

    @classmethod
    def from_seeds(cls, dbt_project_dir: Path) -> Reference:
        seeds = Path(dbt_project_dir) / "seeds"
        with open(seeds / "ae_sites.csv", encoding="utf-8", newline="") as handle:
            sites = {r["site_code"].strip().upper(): r["force_id"].strip() for r in csv.DictReader(handle)}
        codes: dict[str, set[str]] = {}
        with open(seeds / "istv_codes.csv", encoding="utf-8", newline="") as handle:
            for r in csv.DictReader(handle):
                codes.setdefault(r["value_set"], set()).add(r["code"])
        return cls(sites, {k: frozenset(v) for k, v in codes.items()})


@dataclass(frozen=True)
class Extract:
    """The submission header: whose extract, for which period."""

    site_code: str
    period_start: date
    period_end: date
    force_id: str | None  # None: the site code is not a known emergency department

    @property
    def label(self) -> str:
        return f"{self.site_code} {self.period_start:%Y-%m-%d}..{self.period_end:%Y-%m-%d}"


@dataclass
class ParsedExtract:
    extract: Extract
    parsed: Parsed
    rows: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)


def _decode(data: bytes, file_name: str) -> str:
    if not data.strip():
        raise Rejected(f"{file_name}: the file is empty")
    if b"\x00" in data[:4096]:
        raise Rejected(f"{file_name}: not a text file (binary content); the contract is a UTF-8 CSV file")
    if (nul := data.find(b"\x00")) >= 0:
        line = data[:nul].count(b"\n") + 1
        raise Rejected(f"{file_name}: line {line} holds a NUL byte, which a text file does not; "
                       "the contract is a UTF-8 CSV file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise Rejected(f"{file_name}: line {line} is not UTF-8 text (byte {exc.start}); "
                       "save the extract as CSV UTF-8") from None


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        return None


def _datetime(value: str) -> tuple[date, time | None] | None:
    """'2020-01-31 23:05' (or with T, or with seconds) -> (date, time); '2020-01-31' -> (date, None)."""
    value = value.strip()
    if len(value) == 10:
        d = _date(value)
        return (d, None) if d else None
    try:
        parsed = datetime.fromisoformat(value.replace("T", " "))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        return None  # local wall-clock time only, as departments record it
    return parsed.date(), parsed.time().replace(microsecond=0)


def _code(value: str) -> str:
    """Codes as the contract writes them; a spreadsheet that dropped the leading zero ('3') is read as '03'."""
    value = value.strip()
    return value.zfill(2) if value.isdigit() and len(value) == 1 else value


def parse(data: bytes, file_name: str, reference: Reference) -> ParsedExtract:
    """Check the header and the submission header; return the rows as a lazy iterator.

    File-level problems found while streaming the rows (a short row, a submission header that
    changes) raise :class:`Rejected` from the iterator: the caller's transaction rolls back, so
    nothing of a rejected file is loaded.
    """
    text = _decode(data, file_name)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        header = next(reader, None)
    except csv.Error as exc:
        raise Rejected(f"{file_name}: line 1 is not CSV ({exc})") from None
    if not header or not any(cell.strip() for cell in header):
        raise Rejected(f"{file_name}: line 1 should be the header row ({', '.join(HEADER)})")
    positions, missing = COLUMNS.match(header)
    # Never quote the file's header cells: a file without a header row has its first attendance there.
    if missing:
        raise Rejected(f"{file_name}: line 1 (header) lacks required column(s) {', '.join(missing)} "
                       f"(is the header row missing?). The contract's columns: {', '.join(HEADER)}")
    known = {normalise_header(a) for c in COLUMNS.columns for a in (c.name, *c.aliases)}
    extra = [i + 1 for i, c in enumerate(header) if c.strip() and normalise_header(c) not in known]
    if extra:
        raise Rejected(f"{file_name}: line 1 (header) has {len(extra)} column(s) the contract does not have "
                       f"(field(s) {', '.join(map(str, extra))} of the header). An extract must carry only "
                       f"the contract's items (no identifiers, no other data): {', '.join(HEADER)}")
    width = len(header)

    try:
        first = next(reader, None)
    except csv.Error as exc:
        raise Rejected(f"{file_name}: line 2 is not CSV ({exc})") from None
    if first is None:
        raise Rejected(f"{file_name}: no rows after the header; an extract lists at least one assault "
                       "attendance (a period with none needs no file)")
    if len(first) != width:
        raise Rejected(f"{file_name}: line 2 has {len(first)} fields, the header has {width}")

    def cell(row: list[str], name: str) -> str:
        i = positions.get(name)
        return row[i].strip() if i is not None else ""

    start_text = cell(first, "reporting_period_start_date")
    end_text = cell(first, "reporting_period_end_date")
    start, end = _date(start_text), _date(end_text)
    if start is None or end is None:
        bad = "reporting_period_start_date" if start is None else "reporting_period_end_date"
        raise Rejected(f"{file_name}: line 2, column {bad}: not a date in YYYY-MM-DD form")
    if end < start:
        raise Rejected(f"{file_name}: line 2: reporting_period_end_date is before reporting_period_start_date")
    site = cell(first, "site_code_of_treatment").upper()
    if not site:
        raise Rejected(f"{file_name}: line 2, column site_code_of_treatment: empty")
    if not SITE_CODE.fullmatch(site):
        raise Rejected(f"{file_name}: line 2, column site_code_of_treatment: not an ODS site code "
                       "(3 to 10 letters and digits, e.g. RWEAA)")
    extract = Extract(site, start, end, reference.sites.get(site))
    result = ParsedExtract(extract, Parsed(COPY_COLUMNS, iter(())))
    header_cells = (start_text, end_text, site)

    def records() -> Iterator[list[str | None] | Quarantined]:
        line_no = 1
        row: list[str] | None = first
        while row is not None:
            line_no += 1
            if line_no > 2:
                if len(row) != width:
                    if not any(c.strip() for c in row):
                        row = _next(reader, file_name, line_no + 1)
                        continue  # a blank line (a trailing newline from a spreadsheet)
                    raise Rejected(f"{file_name}: line {line_no} has {len(row)} fields, the header has {width}")
                if (cell(row, "reporting_period_start_date"), cell(row, "reporting_period_end_date"),
                        cell(row, "site_code_of_treatment").upper()) != header_cells:
                    raise Rejected(f"{file_name}: line {line_no}: the reporting period or site code differs "
                                   "from line 2's; one file is one department's extract for one period")
            outcome = _check(row, cell, extract, reference, line_no, file_name)
            if isinstance(outcome, Quarantined):
                result.quarantined.append(outcome)
            else:
                result.rows += 1
            yield outcome
            row = _next(reader, file_name, line_no + 1)

    result.parsed = Parsed(COPY_COLUMNS, records())
    return result


def _next(reader: Iterator[list[str]], file_name: str, line_no: int) -> list[str] | None:
    try:
        return next(reader, None)
    except csv.Error as exc:
        raise Rejected(f"{file_name}: line {line_no} is not CSV ({exc})") from None


def _check(row: list[str], cell: Callable[[list[str], str], str], extract: Extract, reference: Reference,
           line_no: int, file_name: str) -> list[str | None] | Quarantined:
    def get(_: list[str], name: str) -> str:
        return cell(row, name)

    def text(name: str) -> str | None:
        return cell(row, name)[:FREE_TEXT_LIMIT] or None

    record = ",".join(row)

    def bad(column: str | None, reason: str) -> Quarantined:
        where = f"line {line_no}" + (f", column {column}" if column else "")
        return Quarantined(line_no, f"{where}: {reason}", record, column)

    if extract.force_id is None:
        return bad("site_code_of_treatment",
                   f"site code {extract.site_code!r} is not a known emergency department (seed ae_sites.csv); "
                   "add it with its police force area, then land the file again")
    arrival = _datetime(get(row, "arrival_date_and_time"))
    if arrival is None or arrival[1] is None:
        return bad("arrival_date_and_time", "missing or not a date and time (YYYY-MM-DD HH:MM)")
    arrival_at = datetime.combine(arrival[0], arrival[1])
    if not extract.period_start <= arrival[0] <= extract.period_end:
        return bad("arrival_date_and_time", "the arrival is outside the extract's reporting period")
    assault = _datetime(get(row, "assault_date_and_time"))
    if assault is None:
        return bad("assault_date_and_time", "missing or not a date (YYYY-MM-DD, with HH:MM when known)")
    assault_date, assault_time = assault
    assault_at = datetime.combine(assault_date, assault_time) if assault_time is not None else None
    if assault_date > arrival[0] or (assault_at is not None and assault_at > arrival_at):
        return bad("assault_date_and_time", "the assault is after the arrival at the department")
    values: dict[str, str | None] = {}
    for column, value_set, required in (("assault_method", "assault_method", True),
                                        ("assault_location_type", "assault_location_type", True),
                                        ("age_band", "age_band", False), ("sex", "sex", False)):
        raw = get(row, column)
        if value_set in ("assault_method", "assault_location_type"):
            code = _code(raw)
        else:
            code = raw.replace(" ", "").upper() if value_set == "sex" else raw.replace(" ", "")
        if not code:
            if required:
                return bad(column, "missing (a code of the standard is required; 99 = not known)")
            values[column] = None
            continue
        if code not in reference.codes.get(value_set, frozenset()):
            shown = repr(code) if CODE_LIKE.fullmatch(code) else "the value"
            return bad(column, f"{shown} is not one of the codes {sorted(reference.codes.get(value_set, ()))}")
        values[column] = code
    return [
        str(line_no),
        arrival_at.isoformat(sep=" "),
        assault_date.isoformat(),
        assault_time.isoformat() if assault_time else None,
        values["assault_method"],
        text("assault_method_other_description"),
        values["assault_location_type"],
        text("assault_location_description"),
        values["age_band"],
        values["sex"],
    ]


@dataclass
class ExtractLoad:
    outcome: str  # loaded | replaced
    load_id: int
    extract: Extract
    rows_loaded: int
    rows_quarantined: int
    previous_load_id: int | None


def load_extract(conn: psycopg.Connection, *, file_name: str, sha256: str, archive_path: str,
                 parsed: ParsedExtract, run_id: str | None) -> ExtractLoad:
    """Load one extract in one transaction, replacing the same site and period's earlier one.

    Raises :class:`Rejected` (after rolling back) when the file turns out not to be an extract of
    the contract, or its period overlaps a different period already loaded for the site.
    """
    x = parsed.extract
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"{DATASET}/{x.site_code}",))
        overlap = conn.execute(
            """select file_name, reporting_period_start, reporting_period_end from audit.landed_files
               where dataset = %s and site_code = %s and outcome = any(%s)
                 and daterange(reporting_period_start, reporting_period_end, '[]')
                     && daterange(%s, %s, '[]')
                 and (reporting_period_start, reporting_period_end) <> (%s, %s)
               order by landed_id desc limit 1""",
            (DATASET, x.site_code, list(SUCCESSFUL_LOADS), x.period_start, x.period_end, x.period_start,
             x.period_end),
        ).fetchone()
        if overlap:
            raise Rejected(
                f"{file_name}: its reporting period (line 2, reporting_period_start_date and "
                f"reporting_period_end_date) overlaps the period {overlap[1]}..{overlap[2]} already loaded for "
                f"the same site (file {safe_name(overlap[0])}); "
                "re-send an extract for exactly that period to replace it, or ask for the earlier one to be withdrawn")
        previous = conn.execute(
            """select load_id from audit.landed_files
               where dataset = %s and site_code = %s and reporting_period_start = %s
                 and reporting_period_end = %s and outcome = any(%s)
               order by landed_id desc limit 1""",
            (DATASET, x.site_code, x.period_start, x.period_end, list(SUCCESSFUL_LOADS)),
        ).fetchone()
        load_id = int(conn.execute("select nextval('audit.loads_load_id_seq')").fetchone()[0])  # type: ignore[index]
        conn.execute(
            "delete from restricted.ae_attendances where site_code = %s and reporting_period_start = %s "
            "and reporting_period_end = %s", (x.site_code, x.period_start, x.period_end))
        # the rows the replaced extract set aside go with it (its bytes stay in the archive)
        conn.execute(
            """delete from restricted.ae_quarantine where load_id in (
                   select load_id from audit.landed_files where dataset = %s and site_code = %s
                   and reporting_period_start = %s and reporting_period_end = %s and load_id is not null)""",
            (DATASET, x.site_code, x.period_start, x.period_end))
        prefix = [str(load_id), sha256, x.site_code, x.force_id or "", x.period_start.isoformat(),
                  x.period_end.isoformat()]
        loaded, quarantined, _ = copy_records(conn, TABLE, PREFIX_COLUMNS, prefix, parsed.parsed)
        if quarantined:
            with conn.cursor().copy(
                "copy restricted.ae_quarantine (load_id, sha256, file_name, line_no, column_name, reason, record) "
                "from stdin"
            ) as copy:
                for q in quarantined:
                    copy.write_row((load_id, sha256, file_name, q.line_no, q.column, q.reason, q.record))
        outcome = "replaced" if previous else "loaded"
        conn.execute(
            """insert into audit.loads (load_id, dataset, force_id, month, origin, sha256, archive_path, status,
                   rows_read, rows_loaded, rows_quarantined, previous_load_id, run_id, finished_at)
               values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())""",
            (load_id, DATASET, x.force_id, x.period_start.replace(day=1), ORIGIN, sha256, archive_path,
             outcome, loaded + len(quarantined), loaded, len(quarantined),
             previous[0] if previous else None, run_id),
        )
    return ExtractLoad(outcome, load_id, x, loaded, len(quarantined), previous[0] if previous else None)


FEED = Feed(
    name="ae",
    dataset=DATASET,
    kind="files",
    label="A&E assault attendances",
    source_label="A&E assault attendances (ISTV extracts)",
    raw_table=TABLE,
    schedule="30 2 * * *",
    retry_delay_minutes=2,
    tags=("nhs", "a&e", "istv", "ingest", "event-driven"),
    marts=(Mart("ae_assault_monthly", "ae.ae_assault_monthly", "A&E assault attendances (monthly figures)"),),
    # Emergency departments send ISTV extracts at least monthly (the standard's minimum), usually
    # in the first weeks after the month: allow 31 days for a month's extract to arrive and one
    # month (31 days) between extracts. The latest period held ending more than 62 days ago means
    # at least one monthly extract is overdue from every department.
    freshness=Freshness(
        publisher="the emergency departments",
        period="month",
        publication_lag_days=31,
        cycle_days=31,
        latest_period_end_sql=(
            "select max(reporting_period_end) from audit.landed_files "
            "where dataset = 'ae.attendances' and outcome = any(%(successful)s)"
        ),
    ),
)
