"""NHS Hospital Episode Statistics (HES), Admitted Patient Care: admissions for assault by sharp
object (ICD-10 external cause X99), England, by financial year.

NHS Digital (now NHS England) publishes HES APC "external causes" figures once a year, for
England only (English NHS hospitals), one row per ICD-10 cause code with its measures in columns:
finished consultant episodes (FCEs), admissions (finished admission episodes), emergency
admissions, male, female and the age groups 0-14, 15-59, 60-74 and 75+. The exact headers are
not certain from here and change between editions, so they are mapped through :data:`COLUMNS`,
one declared column map with aliases; a table missing a required column is refused, naming it.

Decisions (the raw table is long: one row per financial year, geography, cause and measure per
edition; a figure is one cell):

* Scope is the 3-character code X99 only. A row of any other cause (e.g. W26 "contact with knife,
  sword or dagger", an accident) or of an X99 sub-code (X99.0-X99.9, place of occurrence: counted
  again inside X99) is not loaded: it is kept in ``raw.source_notes`` as 'outside_scope', so what
  the table held stays visible. Totals and code ranges ("Total", "All external causes",
  "X85-Y09 Assault") are notes of kind 'total'; title lines 'preamble'; footnotes 'footnote'.
* Geography: the publication is national. A table without a geography column is England
  (E92000001); one with a geography code or name column must say England on every data row, and
  a row for any other geography is kept as an 'outside_scope' note, not loaded.
* Financial year: a column when the table has one; a table with one year per sheet (as HES
  publishes it) may instead give the year in its title lines ("... 2019-20: External causes").
  With neither, the table is refused naming the column.
* HES suppresses figures from 1 to 7 as "*": such a figure is loaded as NULL with its marker,
  never as 0; "-" and other publishers' markers are kept the same way (no zero is invented).
* A row whose figures cannot all be read is quarantined whole (with the column and line), so a
  year never holds some measures of a line and not others.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import psycopg

from vru.archive import Archive
from vru.config import Settings
from vru.editions import (
    Download,
    EditionResult,
    EditionTable,
    check_and_load,
    load_local_file,
)
from vru.editions import (
    load_download as load_edition_download,
)
from vru.feed import Feed, Freshness, Mart
from vru.http import HttpClient
from vru.loader import Noted, Parsed, Quarantined
from vru.tables import (
    Column,
    ColumnMap,
    Header,
    MissingColumns,
    Row,
    locate_header,
    normalise_header,
    parse_financial_year,
    read_rows,
)

DATASET = "nhs.sharp_object_admissions"
TABLE = "raw.sharp_object_admissions"
# On an NHS Digital HES APC publication page the external causes table is linked as
# "hosp-epis-stat-admi-ext-caus-<year>-tab.<ext>", published as .xlsx (vru.tables reads .xlsx,
# .ods and .csv).
LINK_PATTERN = re.compile(r"ext(?:ernal)?[-_ ]?caus[^\"'<>]*\.(?:xlsx|ods|csv)$", re.IGNORECASE)
# The series page (the default VRU_HES_URL) links one page per financial year's publication,
# ".../hospital-admitted-patient-care-activity/<yyyy-yy>": the latest year's page links the table.
PAGE_PATTERN = re.compile(r"hospital-admitted-patient-care-activity/(\d{4}-\d{2})/?$", re.IGNORECASE)

SCOPE_CAUSE = "X99"  # ICD-10: assault by sharp object
ENGLAND = ("E92000001", "England")

# A figure is one measure of one cause in one geography in one financial year.
EDITIONS = EditionTable(DATASET, TABLE, key_columns=("fy_start", "geography_code", "cause_code", "measure"),
                        value_column="value", marker_column="value_marker", period_columns=("fy_start",))

# The measures, in the order of the mart's columns; each is a required column of the table.
MEASURES: tuple[Column, ...] = (
    Column("finished_consultant_episodes", ("Finished consultant episodes", "Finished Consultant Episodes",
                                            "FCEs", "FCE", "Episodes", "Finished episodes")),
    Column("admissions", ("Admissions", "Finished admission episodes", "FAEs", "FAE",
                          "Finished Admission Episodes")),
    Column("emergency_admissions", ("Emergency", "Emergency admissions", "Emergency Admissions",
                                    "Admission method: emergency", "Emergency admission", "Emergencies")),
    Column("male", ("Male", "Males", "Gender: male", "Sex: male", "Male FCEs")),
    Column("female", ("Female", "Females", "Gender: female", "Sex: female", "Female FCEs")),
    Column("age_0_14", ("Age 0-14", "Age 0 to 14", "0-14", "Aged 0-14", "0 to 14", "Age 0 - 14")),
    Column("age_15_59", ("Age 15-59", "Age 15 to 59", "15-59", "Aged 15-59", "15 to 59", "Age 15 - 59")),
    Column("age_60_74", ("Age 60-74", "Age 60 to 74", "60-74", "Aged 60-74", "60 to 74", "Age 60 - 74")),
    Column("age_75_plus", ("Age 75+", "Age 75 and over", "75+", "Aged 75+", "75 and over", "Age 75 plus",
                           "Age 75 or over")),
)
COLUMNS = ColumnMap([
    Column("financial_year", ("Financial year", "Financial Year", "Year", "Fiscal year", "Activity year",
                              "Year of activity"), required=False),
    Column("geography_code", ("Geography code", "Area code", "ONS code", "ONS geography code",
                              "Country code", "Org code", "Organisation code"), required=False),
    Column("geography_name", ("Geography", "Geography name", "Area", "Area name", "Country",
                              "Organisation name"), required=False),
    Column("cause_code", ("ICD-10 code", "ICD10 code", "Cause code", "External cause code", "Code",
                          "3 character code", "External cause", "Cause", "Diagnosis code",
                          "ICD-10 external cause code")),
    Column("cause_description", ("Description", "Cause description", "External cause description",
                                 "Cause name", "ICD-10 description", "Diagnosis description"), required=False),
    *MEASURES,
])

COPY_COLUMNS = ("sheet", "line_no", "financial_year", "fy_start", "geography_code", "geography_name",
                "cause_code", "cause_description", "measure", "value", "value_marker")

# HES: "*" = 1 to 7, suppressed; other publishers' markers for a figure withheld or not available.
MARKERS = frozenset({"*", "-", "..", ".", ":", "x", "[x]", "[c]", "[z]", "[u]", "[low]", "n/a", "na"})
GEOGRAPHY_NAMES = {"england": ENGLAND[0]}
GEOGRAPHY_CODES = {ENGLAND[0].lower(): ENGLAND[0]}

_CODE = re.compile(r"^([A-Z]\d{2})(?:\.?(\d))?(?:\b|$)")  # X99, X99.1, X991 (a sub-code)
_RANGE = re.compile(r"^[A-Z]\d{2}\s*(?:-|–|to)\s*[A-Z]\d{2}", re.IGNORECASE)  # X85-Y09: a group of codes
_TITLE_YEAR = re.compile(r"(?<!\d)(\d{4}\s*(?:/|-|–|to)\s*\d{2}(?:\d{2})?)(?!\d)")
_COUNT = re.compile(r"^\d+$")


def year_from_titles(preamble: Iterable[Row]) -> tuple[str, int] | None:
    """The financial year a title line names ('... 2019-20: External causes'), when only one is named."""
    found: dict[int, str] = {}
    for row in preamble:
        for match in _TITLE_YEAR.finditer(" ".join(row.cells)):
            fy_start = parse_financial_year(match[1])
            if fy_start is not None:
                found.setdefault(fy_start, match[1])
    if len(found) != 1:
        return None
    ((fy_start, text),) = found.items()
    return text, fy_start


def parse(data: bytes, file_format: str, where: str) -> Parsed:
    """The table as COPY rows for raw.sharp_object_admissions (one per measure), notes and quarantine.

    Raises :class:`MissingColumns` before any row when a required column is missing, or when the
    table has no financial year column and its title does not name exactly one year.
    """
    header, preamble, rows = locate_header(read_rows(data, file_format), COLUMNS, where)
    title_year = None
    if "financial_year" not in header.positions:
        title_year = year_from_titles(preamble)
        if title_year is None:
            raise MissingColumns(
                f"{where}: no financial year: the table has no column "
                f"{COLUMNS.describe('financial_year')} and its title lines above the header "
                f"(line {header.row.line_no}) do not name one financial year like 2019-20. Add the "
                "new header to the feed's column map aliases (plugins/vru/feeds/hes.py)."
            )
    return Parsed(COPY_COLUMNS, _records(header, preamble, rows, title_year))


def _place(row: Row) -> str:
    return f"line {row.line_no}" + (f" of sheet {row.sheet!r}" if row.sheet else "")


def _geography(cell: dict[str, str], has_code: bool, has_name: bool) -> tuple[str, str] | None:
    """(code, name) of a row's geography: England, or None for any other geography."""
    if not has_code and not has_name:
        return ENGLAND
    code = GEOGRAPHY_CODES.get(cell.get("geography_code", "").strip().lower()) if has_code else None
    named = GEOGRAPHY_NAMES.get(normalise_header(cell.get("geography_name", ""))) if has_name else None
    if (has_code and code is None) or (has_name and named is None):
        return None
    return ENGLAND


def _records(header: Header, preamble: list[Row], rows: Iterable[Row],
             title_year: tuple[str, int] | None) -> Iterator[list[str | None] | Quarantined | Noted]:
    for row in preamble:
        if not row.is_blank:
            yield Noted(row.sheet, row.line_no, "preamble", row.text())
    has_code = "geography_code" in header.positions
    has_name = "geography_name" in header.positions
    for row in rows:
        if row.is_blank:
            continue
        cell = header.pick(row)
        cause_text = cell["cause_code"]
        year_text = cell.get("financial_year", "") if title_year is None else title_year[0]
        filled = sum(1 for c in row.cells if c.strip())
        # a note spills over cells when it has commas ("* = 1 to 7, suppressed"): no figure, no row
        no_figures = not any(cell[m.name] for m in MEASURES)
        if filled <= 1 or no_figures or not (cause_text and year_text):
            yield Noted(row.sheet, row.line_no, "footnote", row.text())
            continue
        cause = normalise_header(cause_text)
        if cause.startswith(("total", "all ")) or cause == "all" or _RANGE.match(cause_text.strip()):
            yield Noted(row.sheet, row.line_no, "total", row.text())
            continue
        code = _CODE.match(cause_text.strip().upper())
        place = _place(row)
        if code is None:
            yield Quarantined(row.line_no, f"cause {cause_text!r} is not an ICD-10 code like X99 "
                                           f"(column cause_code, {place})", row.text())
            continue
        if code[1] != SCOPE_CAUSE or code[2] is not None:
            yield Noted(row.sheet, row.line_no, "outside_scope", row.text())
            continue
        geography = _geography(cell, has_code, has_name)
        if geography is None:
            yield Noted(row.sheet, row.line_no, "outside_scope", row.text())
            continue
        fy_start = parse_financial_year(year_text) if title_year is None else title_year[1]
        if fy_start is None:
            yield Quarantined(row.line_no, f"financial year {year_text!r} is not like 2019/20 or 2019-20 "
                                           f"(column financial_year, {place})", row.text())
            continue
        figures, problem = _figures(cell, place)
        if problem:
            yield Quarantined(row.line_no, problem, row.text())
            continue
        description = cell.get("cause_description") or None
        if description is None and len(cause_text.strip()) > 3:  # "X99 Assault by sharp object"
            description = cause_text.strip()[3:].strip(" -:") or None
        for measure, value, marker in figures:
            yield [row.sheet, str(row.line_no), year_text, str(fy_start), geography[0], geography[1],
                   SCOPE_CAUSE, description, measure, value, marker]


def _figures(cell: dict[str, str], place: str) -> tuple[list[tuple[str, str | None, str | None]], str | None]:
    """(measure, value, marker) of every measure of a row, or the first problem found."""
    figures: list[tuple[str, str | None, str | None]] = []
    for column in MEASURES:
        text = cell[column.name].strip()
        if text.lower() in MARKERS:
            figures.append((column.name, None, text))
            continue
        digits = text.replace(",", "").replace(" ", "")
        if digits.startswith("-") and _COUNT.match(digits[1:]):
            return [], f"{column.name} {text!r} is negative (column {column.name}, {place})"
        if not _COUNT.match(digits):
            what = "empty" if not text else f"{text!r} is not a whole number or a known withheld-figure marker"
            return [], f"{column.name} {what} (column {column.name}, {place})"
        figures.append((column.name, str(int(digits)), None))
    return figures, None


def ingest(conn: psycopg.Connection, http: HttpClient, archive: Archive, url: str,
           run_id: str | None = None) -> EditionResult:
    """Check the source; load a new edition if there is one. Never raises for bad data: a refused
    edition is recorded in audit.loads and returned with status 'refused'."""
    return check_and_load(conn, http, archive, url, EDITIONS, parse, link_pattern=LINK_PATTERN,
                          page_pattern=PAGE_PATTERN, run_id=run_id)


def load_download(conn: psycopg.Connection, download: Download, run_id: str | None = None) -> EditionResult:
    return load_edition_download(conn, EDITIONS, download, parse, run_id=run_id)


def load_file(conn: psycopg.Connection, archive: Archive, path: Path, run_id: str | None = None) -> EditionResult:
    """Load an edition from a local file (a backfill of an older edition, or a file sent by hand)."""
    return load_local_file(conn, archive, EDITIONS, path, parse, run_id=run_id)


def ingest_edition(conn: psycopg.Connection, http: HttpClient, archive: Archive, url: str, run_id: str | None,
                   cfg: Settings) -> EditionResult:
    """The nightly check (the feed's declared `ingest`)."""
    return ingest(conn, http, archive, url, run_id)


def load_edition_file(conn: psycopg.Connection, archive: Archive, path: Path, run_id: str | None,
                      cfg: Settings) -> EditionResult:
    """`vru load-hes FILE` (the feed's declared `load_file`)."""
    return load_file(conn, archive, path, run_id)


FEED = Feed(
    name="hes",
    dataset=DATASET,
    kind="edition",
    label="Hospital admissions for assault by sharp object",
    source_label="Hospital admissions for assault by sharp object (NHS HES)",
    raw_table=TABLE,
    schedule="45 2 * * *",
    tags=("nhs", "hes", "sharp-object-admissions", "ingest"),
    url_setting="hes_url",
    ingest=ingest_edition,
    load_file=load_edition_file,
    edition_label="HES table of admissions for assault by sharp object",
    doc_md=("NHS Digital's Hospital Episode Statistics (HES) admitted patient care \"external causes\" "
            "table: admissions for assault by sharp object (ICD-10 X99) in England, by financial year, "
            "into `raw.sharp_object_admissions`. Rows of other causes are kept as notes, not loaded. "
            "HES is published once a year, so on almost every night nothing changes."),
    marts=(Mart("sharp_object_admissions_yearly", "nhs.sharp_object_admissions_yearly",
                "Hospital admissions for assault by sharp object (yearly figures)"),),
    # NHS Digital (now NHS England) publishes HES admitted patient care once a year, for the
    # financial year ended 31 March, in the autumn after it (September to November in recent
    # years, about 6-8 months on): allow 275 days (to the end of December) for a late release,
    # and one year (366 days) between releases. Just before a release on time the latest year
    # held ended at most 275 + 366 = 641 days ago: 2019/20 (ended 31 March 2020) is stale from
    # 1 January 2022, when 2020/21 should have been out for a while. A financial year ends on
    # 31 March of fy_start + 1.
    freshness=Freshness(
        publisher="NHS England (HES)",
        period="financial year",
        publication_lag_days=275,
        cycle_days=366,
        latest_period_end_sql=(
            "select max(make_date(fy_start + 1, 3, 31)) from raw.sharp_object_admissions where value is not null"
        ),
        published_period_end_sql=(
            "select max(make_date(fy_start + 1, 3, 31)) from raw.sharp_object_admissions "
            "where load_id = (select max(load_id) from audit.editions where dataset = 'nhs.sharp_object_admissions')"
        ),
    ),
)
