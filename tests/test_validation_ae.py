"""The A&E suites (raw.ae.attendances, marts.ae.ae_assault_monthly) against a real PostgreSQL (embedded).

The raw table gets a small hand-made extract; the mart is a plain table standing in for the dbt model
(tests/test_dbt_ae.py validates the dbt-built one), dropped afterwards. Good data passes; each
critical check fails on a targeted bad row; the pinned code lists equal the seeds; and what is
stored about a validation (audit.validation_results, the Data Docs results) carries counts only,
never an attendance.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from vru import validation
from vru.validation import ValidationOutcome, validate

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "dbt_project" / "seeds"
RAW = ("raw", "ae.attendances", "restricted.ae_attendances")
MART = ("marts", "ae.ae_assault_monthly", "marts.ae_assault_monthly")

with (SEEDS / "ae_sites.csv").open(newline="", encoding="utf-8") as seed_file:
    SITE_ROWS = list(csv.DictReader(seed_file))
with (SEEDS / "istv_codes.csv").open(newline="", encoding="utf-8") as seed_file:
    CODE_ROWS = list(csv.DictReader(seed_file))
SITE = next(r["site_code"] for r in SITE_ROWS if r["force_id"] == "essex")

# An arrival time no check may ever store: it marks row-level data leaking into results.
MARKER_ARRIVAL = "2024-01-17 13:47:00"


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ae_data_docs")


@pytest.fixture
def ae_tables(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """An empty warehouse; the hand-made mart table is dropped afterwards."""
    drop_mart(conn)
    yield conn
    drop_mart(conn)


def drop_mart(conn: psycopg.Connection) -> None:
    # In a full test run dbt may have built the real mart (a table): drop it either way.
    conn.execute("drop table if exists marts.ae_assault_monthly, marts_build.ae_assault_monthly cascade")


def run(warehouse_url: str, docs_dir: Path, target: tuple[str, str, str]) -> ValidationOutcome:
    stage, dataset, table = target
    return validate(stage, dataset, table, warehouse_url=warehouse_url, docs_dir=docs_dir, run_id=f"test-ae-{stage}")


def failed_checks(descriptions: list[str]) -> list[str]:
    """'Check name [column]: 3 of 10 rows fail in t' -> 'Check name'."""
    return sorted(re.sub(r" \[[^\]]*\]$", "", d.split(": ")[0]) for d in descriptions)


def suite(target: tuple[str, str, str]) -> dict[str, Any]:
    return validation.load_suite(validation.suite_path_for(target[0], target[1]))


def by_check(target: tuple[str, str, str], check: str) -> dict[str, Any]:
    (expectation,) = [e for e in suite(target)["expectations"] if e["meta"]["check"] == check]
    return expectation


# ------------------------------------------------------------------------------------------
# Hand-made data: one Essex department's January 2024 extract (11 attendances)
# ------------------------------------------------------------------------------------------

Row = dict[str, Any]


def good_raw() -> list[Row]:
    """Under 25: 3 (one knife), 25 and over: 8, not known: 0."""
    rows: list[Row] = []
    ages = ["16-17", "0-15", "18-24", "25-34", "35-44", "65+", "45-54", "55-64", "25-34", "35-44", "25-34"]
    for i, age in enumerate(ages):
        rows.append({
            "load_id": 1, "sha256": "0" * 64, "line_no": i + 2, "site_code": SITE, "force_id": "essex",
            "reporting_period_start": "2024-01-01", "reporting_period_end": "2024-01-31",
            "arrival_at": MARKER_ARRIVAL if i == 0 else f"2024-01-{i + 2:02d} 22:10:00",
            "assault_date": "2024-01-17" if i == 0 else f"2024-01-{i + 2:02d}",
            "assault_time": "12:05:00" if i == 0 else "21:30:00",
            "assault_method": "03" if i == 0 else "01", "assault_method_other": None,
            "assault_location_type": "02", "assault_location_description": None,
            "age_band": age, "sex": "1" if i % 2 else "2",
        })
    return rows


def load_raw(conn: psycopg.Connection, rows: list[Row]) -> None:
    columns = list(rows[0])
    with conn.cursor() as cur:
        cur.executemany(
            f"insert into restricted.ae_attendances ({', '.join(columns)}) "
            f"values ({', '.join(['%s'] * len(columns))})",
            [tuple(r[c] for c in columns) for r in rows])


MART_COLUMNS = """
    force_id text not null, force_name text not null, month date not null, financial_year text not null,
    fy_start integer not null, financial_quarter integer not null, age_band text not null, attendances integer,
    knife_or_sharp_attendances integer, under_25_share numeric(5,4), attendances_suppressed boolean not null,
    knife_or_sharp_suppressed boolean not null, coverage text not null, sites_expected integer not null,
    sites_reporting integer not null, is_vru_area boolean not null
"""


def good_mart() -> list[Row]:
    """Essex: January from the raw rows above (one site of the seed's reporting), February no extract.

    January, attendances 11 = 3 + 8 + 0: under 25 is 1-4, so all four attendances cells are withheld;
    knife 1 = 1 + 0 + 0: all four knife cells withheld (all or nothing: model header, rule 2).
    """
    sites = sum(r["force_id"] == "essex" for r in SITE_ROWS)
    january = {  # band: (attendances, suppressed, knife, suppressed)
        "all ages": (None, True, None, True),
        "under 25": (None, True, None, True),
        "25 and over": (None, True, None, True),
        "not known": (None, True, None, True),
    }
    rows = []
    for band, (att, att_s, knife, knife_s) in january.items():
        rows.append({"force_id": "essex", "force_name": "Essex Police", "month": "2024-01-01",
                     "financial_year": "2023/24", "fy_start": 2023, "financial_quarter": 4, "age_band": band,
                     "attendances": att, "knife_or_sharp_attendances": knife, "under_25_share": None,
                     "attendances_suppressed": att_s, "knife_or_sharp_suppressed": knife_s,
                     "coverage": "partial", "sites_expected": sites, "sites_reporting": 1, "is_vru_area": True})
    for band in january:
        rows.append({**rows[0], "month": "2024-02-01", "age_band": band, "attendances": None,
                     "knife_or_sharp_attendances": None, "attendances_suppressed": False,
                     "knife_or_sharp_suppressed": False, "coverage": "no extract", "sites_reporting": 0})
    return rows


def build_mart(conn: psycopg.Connection, rows: list[Row]) -> None:
    conn.execute(f"create table {MART[2]} ({MART_COLUMNS})")
    columns = list(rows[0])
    with conn.cursor() as cur:
        cur.executemany(
            f"insert into {MART[2]} ({', '.join(columns)}) values ({', '.join(['%s'] * len(columns))})",
            [tuple(r[c] for c in columns) for r in rows])


# ------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------


def test_good_data_passes_and_results_carry_counts_only(
    ae_tables: psycopg.Connection, warehouse_url: str, docs_dir: Path
) -> None:
    load_raw(ae_tables, good_raw())
    build_mart(ae_tables, good_mart())

    for target in (RAW, MART):
        outcome = run(warehouse_url, docs_dir, target)
        assert outcome.success, outcome
        assert outcome.evaluated == len(suite(target)["expectations"])

    observed = [r[0] for r in ae_tables.execute(
        "select observed from audit.validation_results where dataset like 'ae.%' and observed is not null")]
    assert observed and all(set(o) <= set(validation.OBSERVED_KEYS) for o in observed)
    written = [p for p in docs_dir.rglob("*") if p.suffix in (".json", ".html")]
    assert any(p.suffix == ".json" for p in written)  # GX's stored results, behind the Data Docs
    stored = json.dumps(observed) + "".join(p.read_text(encoding="utf-8", errors="replace") for p in written)
    assert MARKER_ARRIVAL not in stored and "13:47" not in stored


def test_raw_critical_checks_fail_on_targeted_rows(
    ae_tables: psycopg.Connection, warehouse_url: str, docs_dir: Path
) -> None:
    rows = good_raw()
    line = len(rows) + 2
    bad = [
        {"arrival_at": "2024-02-01 00:10:00", "assault_date": "2024-01-31"},  # arrival outside the period
        {"arrival_at": "2024-01-10 10:00:00", "assault_date": "2024-01-11"},  # assault the day after arrival
        {"arrival_at": "2024-01-10 10:00:00", "assault_date": "2024-01-10",
         "assault_time": "11:00:00"},  # later the same day
        {"assault_method": "07"},  # not an ISTV method
        {"site_code": "ZZZ99"},  # not a known department
    ]
    rows += [{**rows[1], "line_no": line + i, **change} for i, change in enumerate(bad)]
    load_raw(ae_tables, rows)

    outcome = run(warehouse_url, docs_dir, RAW)

    assert failed_checks(outcome.critical_failures) == sorted([
        "Arrival within the reporting period",
        "Assault not after arrival",
        "Assault method is an ISTV code",
        "Every department known",
        "Department in its own force area",
    ]), outcome.critical_failures
    assert outcome.warnings == []


def test_raw_overlapping_or_doubled_extracts_fail(ae_tables: psycopg.Connection) -> None:
    rows = good_raw()
    load_raw(ae_tables, rows)
    for check in ("One current extract per department and period", "Reporting periods of a department do not overlap",
                  "Reporting period starts before it ends"):
        assert offending(ae_tables, RAW, check) == []

    load_raw(ae_tables, [{**rows[0], "load_id": 2, "line_no": 2}])  # the same period loaded twice
    load_raw(ae_tables, [{**rows[0], "load_id": 3, "reporting_period_start": "2024-01-15",
                          "reporting_period_end": "2024-02-14"}])  # overlaps January
    load_raw(ae_tables, [{**rows[0], "load_id": 4, "reporting_period_start": "2024-03-31",
                          "reporting_period_end": "2024-03-01", "arrival_at": "2024-03-10 10:00"}])

    assert len(offending(ae_tables, RAW, "One current extract per department and period")) == 1
    assert len(offending(ae_tables, RAW, "Reporting periods of a department do not overlap")) == 1
    assert len(offending(ae_tables, RAW, "Reporting period starts before it ends")) == 1


def test_mart_cell_showing_3_fails(ae_tables: psycopg.Connection, warehouse_url: str, docs_dir: Path) -> None:
    load_raw(ae_tables, good_raw())
    mart = good_mart()
    under_25 = next(r for r in mart if r["month"] == "2024-01-01" and r["age_band"] == "under 25")
    under_25.update(attendances=3, attendances_suppressed=False)  # the primary cell shown
    build_mart(ae_tables, mart)

    outcome = run(warehouse_url, docs_dir, MART)

    # shown 1-4; and the equation now has three of its four cells withheld (some, not all)
    assert failed_checks(outcome.critical_failures) == [
        "No small number shown", "Withheld all or none per force-month"], outcome.critical_failures


def test_mart_sql_checks_catch_flags_totals_and_sums(ae_tables: psycopg.Connection) -> None:
    load_raw(ae_tables, good_raw())
    build_mart(ae_tables, good_mart())
    checks = ("Withheld exactly when marked", "Age bands add up to all ages",
              "All-ages totals equal the attendances loaded", "Knife or sharp attendances within all attendances",
              "Coverage agrees with the departments reporting", "Four age bands per force-month",
              "Under-25 share only on all-ages rows with a shown count")
    for check in checks:
        assert offending(ae_tables, MART, check) == [], check

    # the all-ages total shown (these checks one by one: the suite as a whole would also fail the
    # all-or-nothing rule), then a suppressed flag without an empty count; a raw attendance the
    # mart does not count
    ae_tables.execute(f"update {MART[2]} set attendances = 11, attendances_suppressed = false "
                      "where month = '2024-01-01' and age_band = 'all ages'")
    ae_tables.execute(f"update {MART[2]} set attendances = 0 "
                      "where month = '2024-01-01' and age_band = 'not known'")
    load_raw(ae_tables, [{**good_raw()[1], "line_no": 99}])
    assert len(offending(ae_tables, MART, "Withheld exactly when marked")) == 1
    assert offending(ae_tables, MART, "All-ages totals equal the attendances loaded") == [
        ("essex", date(2024, 1, 1), 11, 12)]

    # nothing suppressed but the bands do not add up; more knife than attendances; a share on a band row
    ae_tables.execute(f"update {MART[2]} set attendances = 20, attendances_suppressed = false, "
                      "knife_or_sharp_attendances = 30, knife_or_sharp_suppressed = false, under_25_share = 0.5 "
                      "where month = '2024-01-01' and age_band <> 'all ages'")
    assert len(offending(ae_tables, MART, "Age bands add up to all ages")) == 1
    assert len(offending(ae_tables, MART, "Knife or sharp attendances within all attendances")) == 3
    assert len(offending(ae_tables, MART, "Under-25 share only on all-ages rows with a shown count")) == 3


def offending(conn: psycopg.Connection, target: tuple[str, str, str], check: str) -> list[tuple[Any, ...]]:
    query = by_check(target, check)["kwargs"]["unexpected_rows_query"]
    return conn.execute(query.format(batch=target[2])).fetchall()


def test_pinned_value_sets_equal_the_seeds() -> None:
    assert by_check(RAW, "Every department known")["kwargs"]["value_set"] == sorted(r["site_code"] for r in SITE_ROWS)
    pairs_query = by_check(RAW, "Department in its own force area")["kwargs"]["unexpected_rows_query"]
    assert sorted(re.findall(r"\('([^']+)', '([^']+)'\)", pairs_query)) == sorted(
        (r["site_code"], r["force_id"]) for r in SITE_ROWS)
    for column, check in (("assault_method", "Assault method is an ISTV code"),
                          ("assault_location_type", "Assault location type is an ISTV code"),
                          ("age_band", "Age band is a known band"),
                          ("sex", "Sex is an NHS code")):
        seed_codes = [r["code"] for r in CODE_ROWS if r["value_set"] == column]
        assert seed_codes, column
        assert sorted(by_check(RAW, check)["kwargs"]["value_set"]) == sorted(seed_codes), column
