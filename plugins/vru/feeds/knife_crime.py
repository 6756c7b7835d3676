"""Home Office police recorded crime open data: offences involving a knife or sharp instrument.

One table per edition (CSV or ODS), long format: one row per police force area, financial year,
quarter and offence with the number of offences. Its exact headers are not certain from here and
change between editions, so they are mapped through :data:`COLUMNS`, one declared column map
with aliases; a table missing a required column is refused, naming it.

Rows that are not figures are recognised and kept in ``raw.source_notes``, never loaded as data:
title lines above the header, footnotes, totals rows (England and Wales, England, Wales) and
bodies that are not police force areas (British Transport Police, Action Fraud). A withheld
figure (".." or "[x]") is loaded as NULL with its marker. A force name that is not in the seed
``force_name_variants`` refuses the whole edition: an unknown name is an error, not a new force.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
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
from vru.http import HttpClient
from vru.loader import Noted, Parsed, Quarantined
from vru.tables import (
    Column,
    ColumnMap,
    Row,
    locate_header,
    normalise_header,
    parse_financial_year,
    read_rows,
    row_place,
)

DATASET = "home_office.knife_offences"
TABLE = "raw.knife_offences"
# On the gov.uk collection page, the knife table is the spreadsheet linked with "knife" in its name.
LINK_PATTERN = re.compile(r"knife[^\"'<>]*\.(?:ods|xlsx|csv)$", re.IGNORECASE)

# A figure is one offence of one force in one quarter; an edition publishes whole quarters.
EDITIONS = EditionTable(DATASET, TABLE, key_columns=("force_id", "fy_start", "financial_quarter", "offence"),
                        value_column="offences", marker_column="value_marker",
                        period_columns=("fy_start", "financial_quarter"))

COLUMNS = ColumnMap([
    Column("financial_year", ("Financial Year", "Financial year", "Year", "Financial Year Ending")),
    Column("financial_quarter", ("Financial Quarter", "Quarter", "Financial quarter", "FQ")),
    Column("force_name", ("Force Name", "Police Force Area", "Force", "PFA", "Police force area name",
                          "Force name", "Area name", "Police Force")),
    Column("offence", ("Offence Description", "Offence", "Offence description", "Offence Name",
                       "Offence type")),
    Column("offences", ("Number of Offences", "Number of offences", "Offences", "Count", "Value",
                        "Number", "Knife crime offences", "Offences involving a knife or sharp instrument")),
])

COPY_COLUMNS = ("sheet", "line_no", "financial_year", "fy_start", "financial_quarter", "force_name",
                "force_id", "offence", "offences", "value_marker")

# Normalised names of rows that are totals, not a police force area.
TOTAL_NAMES = frozenset({"england and wales", "england", "wales", "total", "all forces",
                         "england and wales total", "total england and wales", "national total",
                         "england wales"})
# Bodies that publish crime figures but are not one of the 43 police force areas.
OUTSIDE_SCOPE = frozenset({"british transport police", "btp", "action fraud", "cifas", "uk finance",
                           "national fraud intelligence bureau", "financial fraud action uk"})
# What publishers put in place of a figure they withhold or do not have (gov.uk uses [x], [c],
# [z], [u]; older Home Office tables "..", "-", "*").
MARKERS = frozenset({"..", ".", "-", "*", ":", "x", "[x]", "[c]", "[z]", "[u]", "[w]", "[low]",
                     "n/a", "na", "[na]"})

_QUARTER = re.compile(r"^(?:q|quarter|fq)?\s*([1-4])\b")
_QUARTER_MONTHS = {"apr": 1, "jul": 2, "oct": 3, "jan": 4}
_COUNT = re.compile(r"^-?\d+$")


class UnknownForce(ValueError):
    """A force name the seed force_name_variants does not know: the edition is refused."""


def force_names(dbt_project_dir: Path) -> dict[str, str]:
    """Normalised force name variant -> canonical force id, from the dbt seed (one source of truth)."""
    seed = dbt_project_dir / "seeds" / "force_name_variants.csv"
    with open(seed, encoding="utf-8", newline="") as handle:
        names = {normalise_header(r["name_variant"]): r["force_id"] for r in csv.DictReader(handle)}
        # the canonical ids themselves ("greater-manchester") are accepted too
        names.update({normalise_header(v): v for v in set(names.values())})
    return names


def parse_quarter(value: str) -> int | None:
    """'1', 'Q1', 'Quarter 1', 'Q1 (Apr-Jun)', 'Apr to Jun' -> 1; anything else -> None."""
    text = value.strip().lower()
    match = _QUARTER.match(text)
    if match:
        return int(match[1])
    return _QUARTER_MONTHS.get(text[:3])


def parse(data: bytes, file_format: str, where: str, forces: dict[str, str]) -> Parsed:
    """The table as COPY rows for raw.knife_offences, notes and quarantined rows.

    Raises :class:`MissingColumns` (before any row) or :class:`UnknownForce` (after the last row,
    naming every unknown name, so the load's transaction rolls back and nothing is kept).
    """
    header, preamble, rows = locate_header(read_rows(data, file_format), COLUMNS, where)
    return Parsed(COPY_COLUMNS, _records(header, preamble, rows, where, forces))


def _records(header: object, preamble: list[Row], rows: Iterable[Row], where: str,
             forces: dict[str, str]) -> Iterator[list[str | None] | Quarantined | Noted]:
    for row in preamble:
        if not row.is_blank:
            yield Noted(row.sheet, row.line_no, "preamble", row.text())
    pick = header.pick  # type: ignore[attr-defined]
    unknown: dict[str, int] = {}
    for row in rows:
        if row.is_blank:
            continue
        cell = pick(row)
        force_name, year_text, count_text = cell["force_name"], cell["financial_year"], cell["offences"]
        filled = sum(1 for c in row.cells if c.strip())
        if filled <= 1 or not (force_name and year_text):
            yield Noted(row.sheet, row.line_no, "footnote", row.text())
            continue
        name = normalise_header(force_name)
        if name in TOTAL_NAMES or name.startswith("total") or normalise_header(cell["offence"]).startswith("total"):
            yield Noted(row.sheet, row.line_no, "total", row.text())
            continue
        if name in OUTSIDE_SCOPE:
            yield Noted(row.sheet, row.line_no, "outside_scope", row.text())
            continue
        force_id = forces.get(name)
        if force_id is None:
            unknown.setdefault(force_name, row.line_no)
            continue
        place = row_place(row)
        fy_start = parse_financial_year(year_text)
        quarter = parse_quarter(cell["financial_quarter"])
        problem = None
        count: str | None = None
        marker: str | None = None
        if fy_start is None:
            problem = f"financial year {year_text!r} is not like 2019/20 (column financial_year, {place})"
        elif quarter is None:
            problem = (f"quarter {cell['financial_quarter']!r} is not 1-4 or Q1-Q4 "
                       f"(column financial_quarter, {place})")
        elif not cell["offence"]:
            problem = f"no offence named (column offence, {place})"
        elif count_text.strip().lower() in MARKERS:
            marker = count_text.strip()
        else:
            digits = count_text.replace(",", "").replace(" ", "")
            if not _COUNT.match(digits):
                problem = (f"number of offences {count_text!r} is not a whole number or a known "
                           f"withheld-figure marker (column offences, {place})")
            elif digits.startswith("-"):
                problem = f"number of offences {count_text!r} is negative (column offences, {place})"
            else:
                count = str(int(digits))
        if problem:
            yield Quarantined(row.line_no, problem, row.text())
            continue
        yield [row.sheet, str(row.line_no), year_text, str(fy_start), str(quarter), force_name,
               force_id, cell["offence"], count, marker]
    if unknown:
        names = "; ".join(f"{name!r} (first on line {line})" for name, line in unknown.items())
        raise UnknownForce(
            f"{where}: unknown police force name(s): {names}. Nothing of this edition was loaded. "
            "If a name is a new spelling of one of the 43 forces, add it to "
            "dbt_project/seeds/force_name_variants.csv; if it is not a police force area, it "
            "must not be in this table."
        )


def _parser(forces: dict[str, str]) -> Parser:
    return lambda data, file_format, where: parse(data, file_format, where, forces)


def ingest(conn: psycopg.Connection, http: HttpClient, archive: Archive, url: str,
           forces: dict[str, str], run_id: str | None = None) -> EditionResult:
    """Check the source; load a new edition if there is one. Never raises for bad data: a refused
    edition is recorded in audit.loads and returned with status 'refused'."""
    return check_and_load(conn, http, archive, url, EDITIONS, _parser(forces), link_pattern=LINK_PATTERN,
                          refusals=(UnknownForce,), run_id=run_id)


def load_file(conn: psycopg.Connection, archive: Archive, path: Path, forces: dict[str, str],
              run_id: str | None = None) -> EditionResult:
    """Load an edition from a local file (a backfill of an older edition, or a file sent by hand)."""
    return load_local_file(conn, archive, EDITIONS, path, _parser(forces), refusals=(UnknownForce,),
                           run_id=run_id)


SOURCE = EditionSource(EDITIONS, lambda cfg: _parser(force_names(cfg.dbt_project_dir)),
                       link_pattern=LINK_PATTERN, refusals=(UnknownForce,))


FEED = Feed(
    name="knife_crime",
    dataset=DATASET,
    kind="edition",
    label="Knife crime",
    source_label="Knife crime (Home Office)",
    raw_table=TABLE,
    staging_table="staging.stg_home_office__knife_offences",
    schedule="15 2 * * *",
    tags=("home-office", "knife-crime", "ingest"),
    url_setting="knife_crime_url",
    ingest=SOURCE.ingest,
    load_file=SOURCE.load_file,
    edition_label="knife crime table",
    doc_md=("the Home Office's police recorded crime open data table of offences involving a knife or "
            "sharp instrument, by police force area and financial quarter, into `raw.knife_offences`. "
            "A table naming a force that is not one of the 43 is refused whole, naming the force."),
    marts=(Mart("knife_crime_quarterly", "home_office.knife_crime_quarterly", "Knife crime (quarterly figures)"),),
    # The Home Office refreshes its police recorded crime open data tables with the quarterly
    # crime statistics, about 4 months (123 days) after a quarter ends, one quarter (92 days) per
    # release: at most 123 + 92 = 215 days just before a release on time. (200 days would call the
    # feed stale in the last fortnight before every normal release.) Financial quarters: Q1 is
    # April-June of fy_start ... Q4 January-March of fy_start + 1; a quarter ends the day before
    # the first day of the month after it.
    freshness=Freshness(
        publisher="the Home Office",
        period="quarter",
        publication_lag_days=123,
        cycle_days=92,
        latest_period_end_sql=(
            "select max(make_date(fy_start + financial_quarter / 3, (financial_quarter * 3 + 3) %% 12 + 1, 1) - 1) "
            "from raw.knife_offences where offences is not null"
        ),
        published_period_end_sql=(
            "select max(make_date(fy_start + financial_quarter / 3, (financial_quarter * 3 + 3) %% 12 + 1, 1) - 1) "
            "from raw.knife_offences where load_id = (select max(load_id) from audit.editions "
            "where dataset = 'home_office.knife_offences')"
        ),
    ),
)
