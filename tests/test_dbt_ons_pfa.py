"""The ONS police force area knife crime models (stg_ons__pfa_knife_offences, pfa_knife_crime_12_months)
built by dbt against a real PostgreSQL (embedded) from the four real 2018 editions, loaded in publication
order by the feed's own loader; then the raw and mart suites, and publication as BI reads it.

What the mart must show is worked out here independently of the loader and of dbt: the workbooks are
read with openpyxl (Table P4 and Table P5 by their sheet names, their column pairs by position, the
periods from the labels above them), and each cell's figure is the one of the latest edition that
holds it. The dbt unit tests (models/staging/ons/_ons__unit_tests.yml, marts/ons/_ons__models.yml)
cover the logic on fixtures.
"""

from __future__ import annotations

import calendar
import csv
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
import psycopg
import pytest
from conftest import publish_built
from vru.archive import Archive
from vru.config import dbt_env
from vru.feeds import ons_pfa
from vru.validation import validate
from vru_sample.server import bundled_ons_pfa_editions

PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
MART = "pfa_knife_crime_12_months"
EDITIONS = bundled_ons_pfa_editions()  # publication order: years ending March, June, September, December 2018
# the period of each edition's Table P4, from its title (read by eye)
P4_PERIOD = (date(2018, 3, 31), date(2018, 6, 30), date(2018, 9, 30), date(2018, 12, 31))
# Table P4's offences, left to right, as printed above its column pairs (read by eye)
P4_OFFENCES = ("total_selected", "attempted_murder", "threats_to_kill", "assault_with_injury", "robbery",
               "rape_and_sexual_assault", "homicide")
FORCE_CODE = re.compile(r"^(E23|W15)\d{6}$")
SPAN = re.compile(r"^([A-Z][a-z]{2}) '(\d\d) to ([A-Z][a-z]{2}) '(\d\d)$")  # "Apr '10 to Mar '11"
MONTHS = {name: number for number, name in enumerate(calendar.month_abbr) if name}

Figure = tuple[Any, Any]  # (value, marker): a number, or None and the marker printed in its place
Cell = tuple[str, str, date]  # area code, offence, period end
Pair = tuple[Figure, Figure]  # number of offences involving a knife, % involving a knife


def figure(value: Any) -> Figure:
    if isinstance(value, str):
        return None, value.strip()
    assert isinstance(value, int | float), value
    return value, None


def period_end(label: str) -> date | None:
    match = SPAN.match(label.strip())
    if not match:
        return None  # e.g. "% change ... compared with:"
    year, month = 2000 + int(match[4]), MONTHS[match[3]]
    return date(year, month, calendar.monthrange(year, month)[1])


def knife_tables(path: Path, p4_period: date) -> dict[Cell, Pair]:
    """Every force's pairs in Table P4 (by offence) and Table P5 (the total by 12-month period)."""
    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        cells: dict[Cell, Pair] = {}
        for name in ("Table P4", "Table P5"):
            rows = list(next(workbook[s] for s in workbook.sheetnames if s.strip() == name).iter_rows(values_only=True))
            header = next(i for i, row in enumerate(rows) if str(row[0] or "").startswith("Area Code"))
            above = rows[header - 1]
            if name == "Table P4":
                pairs = [(2 + 2 * i, offence, p4_period) for i, offence in enumerate(P4_OFFENCES)]
            else:
                pairs = [(c, "total_selected", end) for c, label in enumerate(above)
                         if isinstance(label, str) and (end := period_end(label))]
            for row in rows[header + 1:]:
                code = str(row[0] or "").strip()
                if FORCE_CODE.match(code):
                    for column, offence, end in pairs:
                        cells[(code, offence, end)] = (figure(row[column]), figure(row[column + 1]))
        return cells
    finally:
        workbook.close()


def seed_force_ids() -> dict[str, str]:
    with open(PROJECT / "seeds" / "force_area_codes.csv", encoding="utf-8", newline="") as handle:
        return {r["area_code"]: r["force_id"] for r in csv.DictReader(handle)}


def dbt_build(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # target and logs outside the checkout: the checkout's target/manifest.json is the DAG's.
    return subprocess.run(
        [str(DBT), "build", "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"),
         "--select", f"+{MART}", "--indirect-selection", "cautious"],
        env={**os.environ, **dbt_env(url), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"},
        capture_output=True, text=True, timeout=600,
    )


@pytest.fixture
def ons_conn(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """An empty warehouse; the dbt-built and published ONS relations are dropped afterwards."""
    yield conn
    conn.execute("drop view if exists staging.stg_ons__pfa_knife_offences cascade")
    conn.execute(f"drop table if exists marts.{MART}, marts_build.{MART} cascade")


def test_every_figure_is_the_cell_of_the_latest_edition_that_holds_it(ons_conn: psycopg.Connection,
                                                                      clean_warehouse: str, tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    reference = ons_pfa.Reference.from_seeds(PROJECT)
    loads = [ons_pfa.load_file(ons_conn, archive, path, reference, run_id="test") for path in EDITIONS]
    assert [r.status for r in loads] == ["loaded"] * 4, [r.reason for r in loads]

    # what the mart must show, from the workbooks: later editions override earlier ones cell by cell
    latest: dict[Cell, tuple[int, Pair]] = {}
    first: dict[Cell, Pair] = {}
    for edition, (path, p4_period) in enumerate(zip(EDITIONS, P4_PERIOD, strict=True)):
        for cell, pair in knife_tables(path, p4_period).items():
            first.setdefault(cell, pair)
            latest[cell] = (edition, pair)
    assert len(latest) == 43 * (7 * 4 + 10)  # 7 offences x 4 editions' periods; the total for 10 earlier ones

    done = dbt_build(clean_warehouse, tmp_path)
    assert done.returncode == 0, done.stdout[-5000:]
    assert "stg_ons__pfa_knife_offences_current_figures" in done.stdout
    assert "PASS assert_pfa_knife_crime_pairs_from_one_edition" in done.stdout

    columns = ("force_id", "period_start", "period_label", "offences", "offences_marker", "percent_knife",
               "percent_knife_marker", "is_revised", "first_published_offences", "first_published_percent_knife",
               "edition_load_id", "edition")
    mart = {(r[0], r[1], r[2]): dict(zip(columns, r[3:], strict=True)) for r in ons_conn.execute(
        f"select area_code, offence, period_end, {', '.join(columns)} from marts_build.{MART}")}
    assert set(mart) == set(latest), "one row per force area, offence and period held, no more"

    forces = seed_force_ids()
    edition_names = ("March", "June", "September", "December")
    mismatches = []
    for cell, (edition, ((offences, offences_marker), (percent, percent_marker))) in latest.items():
        row = mart[cell]
        (first_offences, _), (first_percent, _) = first[cell]
        shown = (row["offences"], row["offences_marker"],
                 None if row["percent_knife"] is None else float(row["percent_knife"]), row["percent_knife_marker"],
                 row["edition_load_id"], row["edition"], row["is_revised"], row["first_published_offences"],
                 None if row["first_published_percent_knife"] is None else float(row["first_published_percent_knife"]))
        expected = (offences, offences_marker, percent, percent_marker, loads[edition].load_id,
                    f"year ending {edition_names[edition]} 2018", first[cell] != latest[cell][1], first_offences,
                    first_percent)
        if shown != expected:
            mismatches.append((cell, shown, expected))
        end = cell[2]
        assert row["force_id"] == forces[cell[0]]
        start = date(end.year - (end.month < 12), end.month % 12 + 1, 1)
        assert (row["period_start"], row["period_label"]) == (
            start, f"year ending {calendar.month_name[end.month]} {end.year}")
    assert mismatches == [], mismatches[:5]

    # read by eye: Merseyside's year to March 2011, 2034 in March, 2049 from June on (repeated to December)
    merseyside = mart[("E23000005", "total_selected", date(2011, 3, 31))]
    assert (merseyside["offences"], merseyside["first_published_offences"], merseyside["is_revised"],
            merseyside["edition_load_id"]) == (2049, 2034, True, loads[3].load_id)
    revised = sum(r["is_revised"] for r in mart.values())
    assert revised == sum(first[c] != latest[c][1] for c in latest) and revised > 100
    # withheld: the number of attempted murders of Cleveland and Durham, year ending June 2018 ('-')
    withheld = {c: (r["offences"], r["offences_marker"]) for c, r in mart.items() if r["offences"] is None}
    assert withheld == {("E23000013", "attempted_murder", date(2018, 6, 30)): (None, "-"),
                        ("E23000008", "attempted_murder", date(2018, 6, 30)): (None, "-")}
    no_percent = [r for r in mart.values() if r["percent_knife"] is None]
    assert len(no_percent) > 100 and all(r["percent_knife_marker"] == "-" for r in no_percent)
    assert all(r["offences_marker"] is None and r["percent_knife_marker"] is None
               for r in mart.values() if r["offences"] is not None and r["percent_knife"] is not None)

    docs = tmp_path / "docs"
    for stage, dataset, table in (("raw", ons_pfa.DATASET, ons_pfa.TABLE),
                                  ("marts", "ons.pfa_knife_crime_12_months", f"marts_build.{MART}")):
        outcome = validate(stage, dataset, table, warehouse_url=clean_warehouse, docs_dir=docs, run_id="test-ons")
        assert outcome.success, outcome

    # what a BI reader sees after publication is what was built and checked
    publish_built(clean_warehouse)
    built = ons_conn.execute(f"select * from marts_build.{MART} except select * from marts.{MART}").fetchall()
    assert built == [] and ons_conn.execute(f"select count(*) from marts.{MART}").fetchone() == (len(mart),)
