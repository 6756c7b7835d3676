"""ONS police force area data tables: knife or sharp instrument offences by force area.

The ONS publishes, with each quarter's crime statistics, one workbook of "police force area data
tables" (an edition). Two of its tables are about knife crime, and both are loaded from each
edition, in one transaction:

* the table by offence ("Table P4" in 2018): one rolling 12-month period, named in its title
  ("... year ending June 2018"), and per area a pair of columns for each selected offence (total
  of selected serious offences, attempted murder, threats to kill, assault with injury and with
  intent, robbery, rape and sexual assault, homicide): "Number of offences involving a knife" and
  "% involving a knife";
* the series table ("Table P5"): the total of the selected offences for every 12-month period
  back to April 2010 - March 2011, the periods named above the column pairs ("Apr '10 to Mar '11").

Decisions (the raw table is long: one row per edition, area, offence, 12-month period and measure,
a cell; editions side by side, revisions recorded by :mod:`vru.editions`):

* The tables are found by their headers, never by sheet name or number (the ONS renumbers and
  renames sheets): a sheet whose header row has "Area Code", "Area Name" and pairs of "Number of
  ... offences involving a knife" / "% involving a knife" columns is a knife table; the row
  above the header names each pair's offence (the table by offence) or 12-month period (the
  series). A workbook without both tables is refused, naming what is missing.
* Footnote digits glued to text ("Greater Manchester7", "Homicide5,6", "knife6", "June 20181,2,3")
  are cut; headers' embedded newlines and spacing are collapsed; sheet names are kept as read
  (some carry trailing spaces) and never looked up.
* Areas are told apart by their ONS area code, never by name ("West Midlands" is a region,
  E12000005, and a force, E23000014). Forces (E23, W15) are mapped to force ids by the seed
  ``force_area_codes``; the area's name must be a spelling of the same force in
  ``force_name_variants`` (a cross-check for shifted columns). England and Wales, England,
  Wales, the English regions and the "excluding Greater Manchester Police" totals are kept in
  ``raw.source_notes`` as 'total'; British Transport Police (no area code) as 'outside_scope';
  title lines as 'preamble' and footnotes below the table as 'footnote'. An unknown force code,
  or a force whose name is another force's, refuses the edition.
* A marker in place of a figure (``NA``, ``N/A``, ``-``: a percentage whose base is under 50,
  ``..`` and the markers other publishers use) is loaded as NULL with the marker, never as 0: a
  force row of markers only (Greater Manchester, in some editions) is loaded as such.
* Numbers are the stored values, unrounded ("5.6701449620672664"); a count must be whole.
  The columns of percentage change in the series table are derived and not loaded.
* The series table repeats the latest period's total from the table by offence: the cell is
  loaded once (from the table by offence); an edition whose two tables disagree on it, or on which
  12-month period is the latest, is refused.
* A row whose figures cannot all be read is quarantined whole, with its line and column.
"""

from __future__ import annotations

import calendar
import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

import psycopg

from vru.archive import Archive
from vru.editions import (
    EditionResult,
    EditionSource,
    EditionTable,
    Parser,
    check_and_load,
    load_local_file,
)
from vru.feed import Feed, Freshness, Mart
from vru.feeds.knife_crime import force_names
from vru.http import HttpClient
from vru.loader import Noted, Parsed, Quarantined
from vru.tables import MissingColumns, Row, column_letter, normalise_header, read_rows, row_place

DATASET = "ons.pfa_knife_offences"
TABLE = "raw.pfa_knife_offences"
# On the ONS dataset page "Police force area data tables" each edition is linked as
# ".../policeforceareadatatablesyearending<month><year>[corrected].xlsx", the latest first.
LINK_PATTERN = re.compile(r"policeforcearea[^\"'<>]*\.xlsx$", re.IGNORECASE)

# A figure is one measure of one offence in one area for one 12-month period. An edition publishes
# an offence's period whole: a cell is "dropped" only when an edition publishes its offence and
# period without it (the series table restates earlier periods of the total only).
EDITIONS = EditionTable(DATASET, TABLE, key_columns=("area_code", "offence", "period_end", "measure"),
                        value_column="value", marker_column="value_marker",
                        period_columns=("offence", "period_end"))

COPY_COLUMNS = ("sheet", "line_no", "table_kind", "area_code", "area_name", "force_id", "offence",
                "offence_name", "period_label", "period_end", "measure", "value", "value_marker")

MEASURES = ("offences", "percent_knife")
TOTAL = "total_selected"  # the series table's offence: the total of the selected offences


@dataclass(frozen=True)
class Offence:
    name: str
    headings: tuple[str, ...]  # as the ONS heads it, footnote digits cut


OFFENCES: tuple[Offence, ...] = (
    Offence(TOTAL, ("Total of selected serious offences", "Total of selected offences", "Selected offences",
                    "Total selected offences")),
    Offence("attempted_murder", ("Attempted murder",)),
    Offence("threats_to_kill", ("Threats to kill",)),
    Offence("assault_with_injury", ("Assault with injury and assault with intent to cause serious harm",
                                    "Assault with injury and assault with intent to cause serious harm, "
                                    "and endangering life", "Assault with injury")),
    Offence("robbery", ("Robbery",)),
    Offence("rape_and_sexual_assault", ("Rape and sexual assault", "Rape and sexual assault offences",
                                        "Rape and sexual offences")),
    Offence("homicide", ("Homicide",)),
)
_OFFENCE_BY_HEADING = {normalise_header(h): o.name for o in OFFENCES for h in o.headings}

# What the ONS puts in place of a figure: NA / N/A (not available), '-' (a percentage whose base
# is under 50, or not available), '..'; and the markers other publishers use, kept the same way.
MARKERS = frozenset({"na", "n/a", "-", "..", ".", ":", "*", "x", "[x]", "[c]", "[z]", "[u]", "[w]", "[low]",
                     "[na]", "–", "—"})

_FORCE_CODE = re.compile(r"^(?:E23|W15)\d{6}$")  # police force areas of England, of Wales
_TOTAL_CODE = re.compile(r"^(?:K04|E92|W92|E12)\d{6}$")  # England and Wales, England, Wales, regions
_ANY_CODE = re.compile(r"^[A-Z]\d{8}$")
# Footnote digits glued to the end of a word: "Greater Manchester7", "Homicide5,6", "knife6".
_FOOTNOTE = re.compile(r"(?<=[A-Za-z)])\d{1,2}(?:,\d{1,2})*$")
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}
_YEAR = r"'?(\d{4}|\d{2})"
_MONTH = r"([A-Za-z]{3,9})\.?"
# "Apr '10 to Mar '11" (a footnote may follow the last year: "Mar '114")
_SPAN = re.compile(rf"^{_MONTH}\s*{_YEAR}\s*(?:to|-|–)\s*{_MONTH}\s*{_YEAR}(?:\d{{1,2}}(?:,\d{{1,2}})*)?$",
                   re.IGNORECASE)
_YEAR_ENDING = re.compile(rf"year\s+ending\s+{_MONTH}\s*{_YEAR}", re.IGNORECASE)
_HEADER_SCAN_ROWS = 20  # title lines a knife sheet may have above its header


class KnifeTableMissing(MissingColumns):
    """The workbook has no knife table of one kind (or two): the edition is refused."""


class EditionInconsistent(ValueError):
    """The edition cannot be loaded as it is (an unknown force, two tables that disagree, a
    period that cannot be read): refused whole, naming what and where."""


def clean(text: str) -> str:
    """A label as meant: spacing and embedded newlines collapsed, footnote digits cut."""
    return _FOOTNOTE.sub("", " ".join(text.split())).strip()


def _year(text: str) -> int:
    return int(text) if len(text) == 4 else 2000 + int(text)


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _month(text: str) -> int | None:
    return _MONTHS.get(text[:3].lower())


def parse_period(label: str) -> date | None:
    """The last day of a 12-month period named like "Apr '10 to Mar '11"; None for anything else."""
    match = _SPAN.match(clean(label))
    if not match:
        return None
    start_month, end_month = _month(match[1]), _month(match[3])
    if start_month is None or end_month is None:
        return None
    start, end = (_year(match[2]), start_month), (_year(match[4]), end_month)
    if (end[0] * 12 + end[1]) - (start[0] * 12 + start[1]) != 11:
        return None
    return _month_end(*end)


def period_from_title(lines: Sequence[str]) -> tuple[str, date] | None:
    """("year ending June 2018", 2018-06-30) from the first title line naming a year ending."""
    for line in lines:
        match = _YEAR_ENDING.search(" ".join(line.split()))
        month = _month(match[1]) if match else None
        if match and month is not None:
            year = _year(match[2])
            return f"year ending {calendar.month_name[month]} {year}", _month_end(year, month)
    return None


def _measure(header: str) -> str | None:
    text = clean(header).lower()
    if "knife" not in text:
        return None
    if text.startswith("%") or text.startswith("percentage"):
        return "percent_knife"
    if text.startswith("number"):
        return "offences"
    return None


@dataclass(frozen=True)
class Figure:
    """One measure column of a knife table: what its cells are."""

    column: int
    measure: str
    offence: str
    offence_name: str
    period_label: str
    period_end: date


@dataclass
class KnifeTable:
    kind: str  # by_offence | series
    sheet: str | None
    header: Row
    preamble: list[Row]
    rows: list[Row]
    figures: list[Figure]

    @property
    def place(self) -> str:
        # by the sheet's number: its title is the file's text
        return f"sheet {self.header.sheet_number}" if self.header.sheet_number else "the table"



def _is_header(row: Row) -> bool:
    cells = [normalise_header(clean(c)) for c in row.cells[:2]]
    return (len(cells) == 2 and cells[0] in ("area code", "area codes") and cells[1] == "area name"
            and any(_measure(c) for c in row.cells[2:]))


def _knife_table(sheet: str | None, rows: list[Row], where: str) -> KnifeTable | None:
    """The knife table of a sheet, or None when the sheet has none."""
    header_at = next((i for i, r in enumerate(rows[:_HEADER_SCAN_ROWS]) if _is_header(r)), None)
    if header_at is None:
        return None
    header, preamble = rows[header_at], rows[:header_at]
    groups_row = preamble[-1] if preamble and preamble[-1].line_no == header.line_no - 1 else None
    place = f"sheet {header.sheet_number}, line {header.line_no}"
    if groups_row is None:
        raise EditionInconsistent(f"{where}: the knife table in {place} has no row above its header naming "
                                  "the offence or 12-month period of each pair of columns")
    groups: list[str] = []
    for i in range(len(header.cells)):
        above = groups_row.cells[i].strip() if i < len(groups_row.cells) else ""
        groups.append(above or (groups[-1] if i >= 3 else ""))
    title_period = period_from_title([c for r in preamble for c in r.cells])
    figures: list[Figure] = []
    kinds: set[str] = set()
    for i, cell in enumerate(header.cells):
        measure = _measure(cell) if i >= 2 else None
        if measure is None:
            continue
        group = clean(groups[i])
        offence = _OFFENCE_BY_HEADING.get(normalise_header(group))
        period_end = parse_period(groups[i])
        column = f"column {column_letter(i)} of {place}"
        if offence is not None:
            kinds.add("by_offence")
            if title_period is None:
                raise EditionInconsistent(f"{where}: the knife table by offence in sheet {header.sheet_number} does "
                                          "not say its 12-month period: no title line above its header names a "
                                          "'year ending <month> <year>'")
            figures.append(Figure(i, measure, offence, group, *title_period))
        elif period_end is not None:
            kinds.add("series")
            figures.append(Figure(i, measure, TOTAL, "Selected offences", group, period_end))
        else:
            raise EditionInconsistent(
                f"{where}: the label above {column} is neither a known offence nor a 12-month period like "
                "\"Apr '17 to Mar '18\". If the ONS renamed an offence, add its heading to OFFENCES "
                "(plugins/vru/feeds/ons_pfa.py)")
    if len(kinds) != 1:
        raise EditionInconsistent(f"{where}: the knife table in {place} mixes offences and 12-month periods "
                                  "above its columns")
    for figure in figures:
        pair = [f for f in figures if (f.offence, f.period_end) == (figure.offence, figure.period_end)]
        if sorted(f.measure for f in pair) != sorted(MEASURES):
            raise EditionInconsistent(
                f"{where}: column {column_letter(figure.column)} of {place} is not one of a pair of "
                "'Number of offences involving a knife' and '% involving a knife' columns")
    return KnifeTable(kinds.pop(), sheet, header, preamble, rows[header_at + 1:], figures)


def find_tables(rows: Iterator[Row], where: str) -> tuple[KnifeTable, KnifeTable]:
    """The table by offence and the series table of a workbook, wherever they are."""
    sheets: dict[str | None, list[Row]] = {}
    for row in rows:
        sheets.setdefault(row.sheet, []).append(row)
    found: dict[str, list[KnifeTable]] = {"by_offence": [], "series": []}
    for sheet, sheet_rows in sheets.items():
        table = _knife_table(sheet, sheet_rows, where)
        if table is not None:
            found[table.kind].append(table)
    wanted = {
        "by_offence": ("the knife table by offence (a header row with 'Area Code', 'Area Name' and pairs of "
                       "'Number of offences involving a knife' and '% involving a knife' columns under the "
                       "names of the selected offences, for the 12-month period its title names)"),
        "series": ("the knife table of 12-month periods (the same header, with its pairs of columns under "
                   "12-month periods like \"Apr '10 to Mar '11\")"),
    }
    missing = [text for kind, text in wanted.items() if not found[kind]]
    if missing:
        raise KnifeTableMissing(
            f"{where}: no knife crime table found in the workbook's {len(sheets)} sheet(s). Missing: "
            + "; ".join(missing) + ". The tables are looked for by their headers, not by sheet name; if "
            "the ONS changed the headers, teach plugins/vru/feeds/ons_pfa.py the new ones.")
    for kind, tables in found.items():
        if len(tables) > 1:
            sheets_named = ", ".join(str(t.header.sheet_number) for t in tables)
            raise EditionInconsistent(f"{where}: more than one {kind.replace('_', ' ')} knife table "
                                      f"(sheets {sheets_named}): which one to load is not clear")
    return found["by_offence"][0], found["series"][0]


def force_codes(dbt_project_dir: Path) -> dict[str, str]:
    """ONS area code of a police force area -> canonical force id, from the dbt seed."""
    with open(dbt_project_dir / "seeds" / "force_area_codes.csv", encoding="utf-8", newline="") as handle:
        return {r["area_code"]: r["force_id"] for r in csv.DictReader(handle)}


@dataclass(frozen=True)
class Reference:
    """What the parser checks areas against: both from the dbt seeds."""

    codes: dict[str, str]  # area code -> force id
    names: dict[str, str]  # normalised name variant -> force id

    @classmethod
    def from_seeds(cls, dbt_project_dir: Path) -> Reference:
        return cls(force_codes(dbt_project_dir), force_names(dbt_project_dir))


def parse(data: bytes, file_format: str, where: str, reference: Reference) -> Parsed:
    """Both knife tables of an edition as COPY rows for raw.pfa_knife_offences, notes and quarantine.

    Raises :class:`KnifeTableMissing` before any row when a table is not found, and
    :class:`EditionInconsistent` (before any row, or after the last one, so the load's
    transaction rolls back) when the edition cannot be loaded as it is.
    """
    by_offence, series = find_tables(read_rows(data, file_format), where)
    latest = {f.period_end for f in by_offence.figures}
    if max(f.period_end for f in series.figures) not in latest:
        raise EditionInconsistent(f"{where}: the knife tables disagree on the latest 12-month period: "
                                  f"{by_offence.place} is for {min(latest)}, the latest period of "
                                  f"{series.place} ends {max(f.period_end for f in series.figures)}")
    return Parsed(COPY_COLUMNS, _records(by_offence, series, where, reference))


@dataclass
class _Problems:
    unknown_codes: dict[str, str]
    wrong_names: dict[str, str]
    disagreements: list[str]


def _records(by_offence: KnifeTable, series: KnifeTable, where: str,
             reference: Reference) -> Iterator[list[str | None] | Quarantined | Noted]:
    seen: dict[tuple[str, str, date, str], tuple[Decimal | None, str | None]] = {}
    problems = _Problems({}, {}, [])
    for table in (by_offence, series):
        yield from _table_records(table, reference, seen, problems)
    if problems.unknown_codes or problems.wrong_names or problems.disagreements:
        lines = [f"area code {code} ({at}) is not a police force area in dbt_project/seeds/force_area_codes.csv"
                 for code, at in problems.unknown_codes.items()]
        lines += [f"the area named {name!r} ({at}) is not a spelling of the force its area code is "
                  "(dbt_project/seeds/force_name_variants.csv)" for name, at in problems.wrong_names.items()]
        lines += problems.disagreements[:10]
        raise EditionInconsistent(f"{where}: nothing of this edition was loaded: " + "; ".join(lines))


def _table_records(table: KnifeTable, reference: Reference,
                   seen: dict[tuple[str, str, date, str], tuple[Decimal | None, str | None]],
                   problems: _Problems) -> Iterator[list[str | None] | Quarantined | Noted]:
    for row in table.preamble:
        yield Noted(row.sheet, row.line_no, "preamble", row.text())
    for row in table.rows:
        if row.is_blank:
            continue
        cells = row.cells
        code = cells[0].strip().upper() if cells else ""
        name = clean(cells[1]) if len(cells) > 1 else ""
        has_figures = any(cells[f.column].strip() for f in table.figures if f.column < len(cells))
        at = row_place(row)
        if not has_figures:
            yield Noted(row.sheet, row.line_no, "footnote", row.text())
            continue
        if _TOTAL_CODE.match(code):
            yield Noted(row.sheet, row.line_no, "total", row.text())
            continue
        if not code:
            normalised = normalise_header(name)
            if "british transport police" in normalised or normalised == "btp":
                yield Noted(row.sheet, row.line_no, "outside_scope", row.text())
            elif normalised.startswith(("england", "wales")):  # "... (excluding Greater Manchester Police)"
                yield Noted(row.sheet, row.line_no, "total", row.text())
            else:
                yield Quarantined(row.line_no, f"an area without an area code that is not a total of England "
                                               f"and Wales or British Transport Police ({at})", row.text(), "area_code")
            continue
        if not _FORCE_CODE.match(code):
            shown = code if _ANY_CODE.match(code) else "(not an ONS code)"
            yield Quarantined(row.line_no, f"area code {shown} is not a police force area (E23, W15), region "
                                           f"(E12) or country (E92, W92, K04) code ({at})", row.text(), "area_code")
            continue
        force_id = reference.codes.get(code)
        if force_id is None:
            problems.unknown_codes.setdefault(code, at)
            continue
        if reference.names.get(normalise_header(name)) != force_id:
            problems.wrong_names.setdefault(name[:80], at)
            continue
        values, problem = _values(row, table)
        if problem:
            yield Quarantined(row.line_no, problem, row.text())
            continue
        for figure, (value, marker) in zip(table.figures, values, strict=True):
            key = (code, figure.offence, figure.period_end, figure.measure)
            if key in seen:  # the series table restating the latest total of the table by offence
                if seen[key] != (value, marker):
                    problems.disagreements.append(
                        f"{figure.measure} of {force_id} for the 12 months to {figure.period_end} differs between "
                        f"the two knife tables ({at}, column {column_letter(figure.column)})")
                continue
            seen[key] = (value, marker)
            yield [row.sheet, str(row.line_no), table.kind, code, name, force_id, figure.offence,
                   figure.offence_name, figure.period_label, figure.period_end.isoformat(), figure.measure,
                   None if value is None else _plain(value), marker]


def _plain(value: Decimal) -> str:
    return format(value, "f")


def _values(row: Row, table: KnifeTable) -> tuple[list[tuple[Decimal | None, str | None]], str | None]:
    """(value, marker) of every figure of a row, or the first problem found (naming line and column)."""
    values: list[tuple[Decimal | None, str | None]] = []
    for figure in table.figures:
        text = row.cells[figure.column].strip() if figure.column < len(row.cells) else ""
        place = f"column {column_letter(figure.column)}, {row_place(row)}"
        if text.lower() in MARKERS:
            values.append((None, text))
            continue
        try:
            value = Decimal(text.replace(",", ""))
        except InvalidOperation:
            value = Decimal("NaN")
        if not value.is_finite():
            what = "is empty" if not text else "is neither a number nor a known marker (NA, N/A, -, ..)"
            return [], f"{figure.measure} {what} ({place})"
        if figure.measure == "offences":
            whole = value.to_integral_value()
            if abs(value - whole) > Decimal("0.000001") or whole < 0:
                return [], f"the number of offences is not a whole number of 0 or more ({place})"
            value = whole
        elif not 0 <= value <= 100:
            return [], f"the percentage is not between 0 and 100 ({place})"
        values.append((value, None))
    return values, None


def _parser(reference: Reference) -> Parser:
    return lambda data, file_format, where: parse(data, file_format, where, reference)


REFUSALS: tuple[type[Exception], ...] = (EditionInconsistent,)


def ingest(conn: psycopg.Connection, http: HttpClient, archive: Archive, url: str, reference: Reference,
           run_id: str | None = None) -> EditionResult:
    """Check the source; load a new edition if there is one. Never raises for bad data: a refused
    edition is recorded in audit.loads and returned with status 'refused'."""
    return check_and_load(conn, http, archive, url, EDITIONS, _parser(reference), link_pattern=LINK_PATTERN,
                          refusals=REFUSALS, run_id=run_id)


def load_file(conn: psycopg.Connection, archive: Archive, path: Path, reference: Reference,
              run_id: str | None = None) -> EditionResult:
    """Load an edition from a local file (a backfill of an older edition, or a file sent by hand)."""
    return load_local_file(conn, archive, EDITIONS, path, _parser(reference), refusals=REFUSALS, run_id=run_id)


SOURCE = EditionSource(EDITIONS, lambda cfg: _parser(Reference.from_seeds(cfg.dbt_project_dir)),
                       link_pattern=LINK_PATTERN, refusals=REFUSALS)


FEED = Feed(
    name="ons_pfa",
    dataset=DATASET,
    kind="edition",
    label="Knife crime (ONS force area tables)",
    source_label="Knife crime (ONS police force area tables)",
    raw_table=TABLE,
    schedule="0 3 * * *",
    tags=("ons", "knife-crime", "ingest"),
    url_setting="ons_pfa_url",
    ingest=SOURCE.ingest,
    load_file=SOURCE.load_file,
    edition_label="ONS police force area data tables",
    doc_md=("the ONS police force area data tables: knife or sharp instrument offences by police force "
            "area, selected offence and rolling 12-month period (the table by offence and the series "
            "back to 2010/11), into `raw.pfa_knife_offences`. Regions, national totals and British "
            "Transport Police are kept as notes, not loaded. An edition naming an unknown force code "
            "is refused whole."),
    # Rolling 12-month figures beside the Home Office quarterly ones (knife_crime_quarterly, the
    # programme's measure: why is in dbt_project/models/marts/ons/_ons__models.yml).
    marts=(Mart("pfa_knife_crime_12_months", "ons.pfa_knife_crime_12_months",
                "Knife crime (ONS 12-month figures by force area)"),),
    # The ONS publishes crime in England and Wales quarterly, for the 12 months to the end of a
    # quarter, about 4 months later (year ending June 2018 on 18 October 2018, year ending
    # December 2018 on 25 April 2019: 110-116 days): allow 123 days, and one quarter (92 days)
    # between releases, so the latest period held is at most 215 days old just before a release
    # on time. The period is the rolling year's end.
    freshness=Freshness(
        publisher="the ONS",
        period="rolling year",
        publication_lag_days=123,
        cycle_days=92,
        latest_period_end_sql="select max(period_end) from raw.pfa_knife_offences where value is not null",
        published_period_end_sql=(
            "select max(period_end) from raw.pfa_knife_offences where load_id = "
            "(select max(load_id) from audit.editions where dataset = 'ons.pfa_knife_offences')"
        ),
    ),
)
