"""NHS Hospital Episode Statistics (HES), Admitted Patient Care: admissions for assault by sharp
object (ICD-10 external cause X99), England, by financial year.

NHS Digital (now NHS England) publishes HES APC "External Causes" once a year, one financial year
per file, for England only (English NHS hospitals), as one sheet (`External Cause`, in
tests/fixtures/nhs/ as published for 2022-23): title lines naming the year, then a header row
starting "Cause Code: 3 character code and description" (the code in column A, its description in
the merged cells beside it), a `Total` row and one row per 3-character ICD-10 code with its
measures in columns. Loaded as measures, each named after its column:

* finished_consultant_episodes (FCEs), admissions (finished admission episodes, FAEs),
  emergency_admissions (the FIRST "Emergency" column: admission method; a second "Emergency"
  under "Zero bed day cases" comes later and is not read), male, female, gender_unknown;
* every published age column as its own measure: age_0, age_1_4, age_5_9, age_10_14, age_15 ...
  age_19, age_20_24 ... age_85_89, age_90_plus (:data:`AGE_BANDS`). The groupings the marts show,
  0-24 and 25 and over, are sums of these bands made in dbt (null when any band is withheld): no
  grouping the table does not carry is invented here, and the bands stay as published in raw.

Waiting list, planned, other, mean and median waits, stays and age, day cases, bed days and the
zero bed day cases are not loaded. Headers are reworded between editions (units in brackets,
line breaks in cells, "FAE" for admissions, "FCE" for episodes, "Aged 1 to 4", typos): a header
is matched after :func:`vru.tables.normalise_header` (case, spacing, line breaks, punctuation and
bracketed notes or units do not matter) against the aliases in :data:`COLUMNS`, the publication's
own synonyms among them; a header no alias matches is taken for a column when it is one slip (a
letter) from an alias of that column only, with the same numbers (`ColumnMap(typos=True)`). A
table still missing a required column is refused, naming the column and the headers it had.

Decisions (the raw table is long: one row per financial year, geography, cause and measure per
edition; a figure is one cell):

* Scope: the 3-character assault codes X85-Y09, each under its own cause_code: X99 (assault by
  sharp object) is what the marts read; the others are context (all assaults, and whether a fall
  in X99 is a shift to "unspecified means"), never added to X99. A row of any other cause (e.g.
  W26 "contact with knife, sword or dagger", an accident) or of a sub-code (X99.0-X99.9, place of
  occurrence: counted again inside X99) is not loaded: it is kept in ``raw.source_notes`` as
  'outside_scope', so what the table held stays visible. Totals and code ranges ("Total", "All
  external causes", "X85-Y09 Assault") are notes of kind 'total'; title lines 'preamble';
  footnotes 'footnote'.
* Geography: the publication is national. A table without a geography column is England
  (E92000001); one with a geography code or name column must say England on every data row, and
  a row for any other geography is kept as an 'outside_scope' note, not loaded.
* Financial year: a column when the table has one; as HES publishes it (one year per file), the
  first title line naming a year ("External Causes - 2022-23"; notes below it name others). With
  neither, the table is refused naming the column.
* An empty cell of a loaded row means not available: loaded as NULL with the marker '(blank)'
  (:data:`BLANK`), never as 0. HES has suppressed figures from 1 to 7 as "*": loaded as NULL with
  that marker; "-" and other publishers' markers are kept the same way (no zero is invented).
* A row whose figures cannot all be read is quarantined whole (with the column and line), so a
  year never holds some measures of a line and not others.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import psycopg

from vru.archive import Archive
from vru.editions import (
    EditionResult,
    EditionSource,
    EditionTable,
    check_and_load,
    load_local_file,
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
    row_place,
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

SCOPE_CAUSE = "X99"  # ICD-10: assault by sharp object, the subject of the marts
# The other assault codes (ICD-10 X85-Y09: by drugs, hanging, firearm, blunt object, bodily force,
# ... unspecified means) are loaded too, each under its own cause_code, for context (what share of
# assault admissions a sharp object is, whether a fall in X99 is a shift to "unspecified means");
# the marts read X99 only.
ASSAULT_CAUSES = ("X", 85, 99), ("Y", 0, 9)
ENGLAND = ("E92000001", "England")

# A figure is one measure of one cause in one geography in one financial year.
EDITIONS = EditionTable(DATASET, TABLE, key_columns=("fy_start", "geography_code", "cause_code", "measure"),
                        value_column="value", marker_column="value_marker", period_columns=("fy_start",))

def _age_band(low: int, high: int | None) -> Column:
    """A published age column: one year (15), a band (1-4) or an open band (90+ when `high` is None).

    Named as published (age_1_4, age_15, age_90_plus), with the wordings of other editions.
    """
    if high is None:
        name = f"age_{low}_plus"
        words = [f"{low}+", f"{low} and over", f"{low} or over", f"{low} plus", f"{low} years and over"]
        aliases = [f"{lead} {w}" for lead in ("Age", "Aged", "Ages") for w in words] + words[1:]
    elif high == low:
        name = f"age_{low}"
        aliases = [f"Age {low}", f"Aged {low}", f"Age {low} years"]
    else:
        name = f"age_{low}_{high}"
        words = [f"{low}-{high}", f"{low} to {high}", f"{low}-{high} years", f"{low} to {high} years"]
        aliases = [f"{lead} {w}" for lead in ("Age", "Aged", "Ages") for w in words] + words
    return Column(name, tuple(aliases))


# The age columns as HES publishes them: single years where the policy interest is (0, and 15 to
# 19), five-year bands otherwise, 90 and over. Each is loaded as its own measure; the groupings
# the mart shows (0-24, 25 and over) are sums of these, made in dbt (never a band the table lacks).
AGE_BANDS: tuple[Column, ...] = tuple(
    _age_band(low, high) for low, high in (
        (0, 0), (1, 4), (5, 9), (10, 14), (15, 15), (16, 16), (17, 17), (18, 18), (19, 19),
        *((low, low + 4) for low in range(20, 90, 5)), (90, None),
    )
)
# The measures, in the order of the mart's columns; each is a required column of the table.
# NHS Digital's own words: a finished consultant episode is an FCE; an admission is the first
# episode of a stay, a finished admission episode (FAE). The sex and age breakdowns count episodes.
MEASURES: tuple[Column, ...] = (
    Column("finished_consultant_episodes", ("Finished consultant episodes", "FCEs", "FCE", "Episodes",
                                            "Finished episodes", "Consultant episodes",
                                            "Finished consultant episode", "Number of FCEs")),
    Column("admissions", ("Admissions", "Finished admission episodes", "FAEs", "FAE", "Admission episodes",
                          "Finished admissions", "Finished admission episode", "Number of FAEs")),
    # the FIRST "Emergency" of the row: the admission method; a second one (under "Zero bed day
    # cases") comes later and is not read (ColumnMap takes a repeated header's first occurrence)
    Column("emergency_admissions", ("Emergency", "Emergency admissions", "Admission method: emergency",
                                    "Emergency admission", "Emergencies", "Emergency FAEs",
                                    "Method of admission: emergency")),
    Column("male", ("Male", "Males", "Gender: male", "Sex: male", "Male FCEs", "Men")),
    Column("female", ("Female", "Females", "Gender: female", "Sex: female", "Female FCEs", "Women")),
    Column("gender_unknown", ("Gender Unknown", "Gender not known", "Gender: unknown", "Gender not specified",
                              "Sex unknown", "Sex not known", "Sex: unknown", "Unknown gender", "Unknown sex")),
    *AGE_BANDS,
)
COLUMNS = ColumnMap([
    Column("financial_year", ("Financial year", "Year", "Fiscal year", "Activity year", "Year of activity"),
           required=False),
    Column("geography_code", ("Geography code", "Area code", "ONS code", "ONS geography code",
                              "Country code", "Org code", "Organisation code"), required=False),
    Column("geography_name", ("Geography", "Geography name", "Area", "Area name", "Country",
                              "Organisation name"), required=False),
    # as published: "Cause Code: 3 character code and description", the description beside the code
    # under the same (merged) header
    Column("cause_code", ("Cause Code: 3 character code and description", "3 character code and description",
                          "Cause code and description", "External cause code and description",
                          "ICD-10 code", "ICD10 code", "Cause code", "External cause code", "Code",
                          "3 character code", "External cause", "Cause", "Diagnosis code",
                          "ICD-10 external cause code")),
    Column("cause_description", ("Description", "Cause description", "External cause description",
                                 "Cause name", "ICD-10 description", "Diagnosis description"), required=False),
    *MEASURES,
], typos=True)

COPY_COLUMNS = ("sheet", "line_no", "financial_year", "fy_start", "geography_code", "geography_name",
                "cause_code", "cause_description", "measure", "value", "value_marker")

# HES: "*" = 1 to 7, suppressed; other publishers' markers for a figure withheld or not available.
MARKERS = frozenset({"*", "-", "..", ".", ":", "x", "[x]", "[c]", "[z]", "[u]", "[low]", "n/a", "na"})
# An empty cell of a loaded row: not available, loaded as NULL with this marker (never as 0).
BLANK = "(blank)"
GEOGRAPHY_NAMES = {"england": ENGLAND[0]}
GEOGRAPHY_CODES = {ENGLAND[0].lower(): ENGLAND[0]}

_CODE = re.compile(r"^([A-Z]\d{2})(?:\.?(\d))?(?:\b|$)")  # X99, X99.1, X991 (a sub-code)
_RANGE = re.compile(r"^[A-Z]\d{2}\s*(?:-|–|to)\s*[A-Z]\d{2}", re.IGNORECASE)  # X85-Y09: a group of codes
_TITLE_YEAR = re.compile(r"(?<!\d)(\d{4}\s*(?:/|-|–|to)\s*\d{2}(?:\d{2})?)(?!\d)")
_COUNT = re.compile(r"^\d+$")


def year_from_titles(preamble: Iterable[Row]) -> tuple[str, int] | None:
    """The financial year of the title: the first line above the header that names one
    ('External Causes - 2022-23'). Notes below the title name other years ("seven prior to
    2002-03") and are not read for it; a first such line naming two years gives none."""
    for row in preamble:
        found: dict[int, str] = {}
        for match in _TITLE_YEAR.finditer(" ".join(row.cells)):
            fy_start = parse_financial_year(match[1])
            if fy_start is not None:
                found.setdefault(fy_start, match[1])
        if found:
            if len(found) != 1:
                return None
            ((fy_start, text),) = found.items()
            return text, fy_start
    return None


def parse(data: bytes, file_format: str, where: str) -> Parsed:
    """The table as COPY rows for raw.sharp_object_admissions (one per measure), notes and quarantine.

    Raises :class:`MissingColumns` before any row when a required column is missing, or when the
    table has no financial year column and its title does not name exactly one year.
    """
    header, preamble, rows = locate_header(read_rows(data, file_format), COLUMNS, where)
    header = _with_description_beside_code(header)
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


def _with_description_beside_code(header: Header) -> Header:
    """As NHS Digital publishes it, the code and its description share one header ("Cause Code: 3
    character code and description") merged over several cells: the description is in the column
    after the code, whose header cell is empty."""
    if "cause_description" in header.positions:
        return header
    beside = header.positions["cause_code"] + 1
    if beside < len(header.row.cells) and header.row.cells[beside].strip():
        return header
    return Header(header.row, {**header.positions, "cause_description": beside})


def in_scope(code: str) -> bool:
    """An assault code, X85 to Y09 (3 characters): loaded; any other cause is a note."""
    letter, number = code[0], int(code[1:3])
    return any(letter == first and low <= number <= high for first, low, high in ASSAULT_CAUSES)


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
        cause = normalise_header(cause_text)
        code = _CODE.match(cause_text.strip().upper())
        if cause.startswith(("total", "all ")) or cause == "all" or _RANGE.match(cause_text.strip()):
            yield Noted(row.sheet, row.line_no, "total", row.text())
            continue
        # A code row is a figure row even with every figure empty (not available); a row without
        # a code and without a figure is a note, even when it spills over cells ("* = 1 to 7, ...")
        no_figures = not any(cell[m.name] for m in MEASURES)
        if (code is None and no_figures) or not (cause_text and year_text):
            yield Noted(row.sheet, row.line_no, "footnote", row.text())
            continue
        place = row_place(row)
        if code is None:
            yield Quarantined(row.line_no, f"cause {cause_text!r} is not an ICD-10 code like X99 "
                                           f"(column cause_code, {place})", row.text())
            continue
        if code[2] is not None or not in_scope(code[1]):
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
                   code[1], description, measure, value, marker]


def _figures(cell: dict[str, str], place: str) -> tuple[list[tuple[str, str | None, str | None]], str | None]:
    """(measure, value, marker) of every measure of a row, or the first problem found."""
    figures: list[tuple[str, str | None, str | None]] = []
    for column in MEASURES:
        text = cell[column.name].strip()
        if text.lower() in MARKERS or not text:
            figures.append((column.name, None, text or BLANK))
            continue
        digits = text.replace(",", "").replace(" ", "")
        if digits.startswith("-") and _COUNT.match(digits[1:]):
            return [], f"{column.name} {text!r} is negative (column {column.name}, {place})"
        if not _COUNT.match(digits):
            return [], (f"{column.name} {text!r} is not a whole number or a known withheld-figure marker "
                        f"(column {column.name}, {place})")
        figures.append((column.name, str(int(digits)), None))
    return figures, None


def ingest(conn: psycopg.Connection, http: HttpClient, archive: Archive, url: str,
           run_id: str | None = None) -> EditionResult:
    """Check the source; load a new edition if there is one. Never raises for bad data: a refused
    edition is recorded in audit.loads and returned with status 'refused'."""
    return check_and_load(conn, http, archive, url, EDITIONS, parse, link_pattern=LINK_PATTERN,
                          page_pattern=PAGE_PATTERN, run_id=run_id)


def load_file(conn: psycopg.Connection, archive: Archive, path: Path, run_id: str | None = None) -> EditionResult:
    """Load an edition from a local file (a backfill of an older edition, or a file sent by hand)."""
    return load_local_file(conn, archive, EDITIONS, path, parse, run_id=run_id)


SOURCE = EditionSource(EDITIONS, lambda cfg: parse, link_pattern=LINK_PATTERN, page_pattern=PAGE_PATTERN)


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
    ingest=SOURCE.ingest,
    load_file=SOURCE.load_file,
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
