"""The outcome marts (vru_outcomes_quarterly, vru_programme_comparison) built by dbt against a real
PostgreSQL (embedded).

The hand-computed cases (an area rate, a group rate as sum over sum, a baseline change, a withheld
A&E cell carried through, a missing quarter) are dbt unit tests in
dbt_project/models/marts/outcomes/_outcomes__models.yml; `dbt build` runs them, and this checks they ran and
passed. On top, the real build from the A&E fixture of tests/test_dbt_ae.py (January-March 2024,
2023/24 Q4) is checked against hand-computed quarter values, with the real seeds, the contracts,
the combined singular test and both GX suites.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from test_dbt_ae import load_fixture  # the A&E extracts whose monthly values test_dbt_ae.py checks
from test_population_seeds import ONS_ENGLAND_AND_WALES
from vru.config import dbt_env
from vru.validation import validate

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
MARTS = ("vru_outcomes_quarterly", "vru_programme_comparison")
with (PROJECT / "seeds" / "population_mid_year.csv").open(newline="", encoding="utf-8") as seed_file:
    SEED_POPULATION = list(csv.DictReader(seed_file))
with (PROJECT / "seeds" / "force_areas.csv").open(newline="", encoding="utf-8") as seed_file:
    ENGLISH = {r["force_id"] for r in csv.DictReader(seed_file) if r["country"] == "England"}


def dbt_build(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # target and logs outside the checkout: the checkout's target/manifest.json is the DAG's.
    return subprocess.run(
        [str(DBT), "build", "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"),
         "--select", "+vru_programme_comparison", "--indirect-selection", "cautious"],
        env={**os.environ, **dbt_env(url), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"},
        capture_output=True, text=True, timeout=900,
    )


@pytest.fixture
def outcomes_conn(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """An empty warehouse; the dbt-built outcome marts and the A&E mart are dropped afterwards."""
    yield conn
    for mart in MARTS:
        conn.execute(f"drop table if exists marts_build.{mart} cascade")
    conn.execute("drop table if exists marts_build.ae_assault_monthly cascade")


def rows(conn: psycopg.Connection, query: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(query)
        return cur.fetchall()


def assert_populations_are_the_seeds(rows: Iterable[dict[str, Any]]) -> None:
    """Every population a rate used is the seed's row of the quarter's year (the last year held
    when carried forward, flagged), and the year's England and Wales total is ONS's."""
    seed = {(r["force_id"], int(r["mid_year"])): r for r in SEED_POPULATION}
    last = max(year for _, year in seed)
    totals: dict[int, int] = {}
    for r in rows:
        year = min(r["fy_start"], last)
        assert (r["population_year"], r["population_carried_forward"]) == (year, r["fy_start"] > last), r["force_id"]
        held = seed[(r["force_id"], year)]
        assert (r["population"], r["population_0_24"]) == (int(held["all_ages"]), int(held["age_0_24"])), (
            r["force_id"], year)
        assert held["vintage"] in r["population_source"]
        assert ("carried forward" in r["population_source"]) == r["population_carried_forward"]
        totals[year] = totals.get(year, 0) + r["population"]
    for year, total in totals.items():
        assert total == ONS_ENGLAND_AND_WALES[year] == sum(
            int(p["all_ages"]) for (_, y), p in seed.items() if y == year), year


def test_build_carries_suppression_and_coverage(outcomes_conn: psycopg.Connection, clean_warehouse: str,
                                                tmp_path: Path) -> None:
    load_fixture(outcomes_conn)

    done = dbt_build(clean_warehouse, tmp_path)
    assert done.returncode == 0, done.stdout[-6000:]
    for node in ("vru_outcomes_quarterly_rates_baselines_and_suppression",  # the hand-computed unit tests
                 "vru_programme_comparison_sum_over_sum_index_and_gap", "assert_vru_outcomes_consistent"):
        assert re.search(rf"PASS (\w+::)?{node}\b", done.stdout), node

    area = {r["force_id"]: r for r in rows(outcomes_conn, "select * from marts_build.vru_outcomes_quarterly")}
    assert len(area) == 43  # every force area, one quarter: only the A&E mart has data (2024-01 to 2024-03)
    assert {(r["financial_year"], r["fy_start"], r["financial_quarter"], str(r["quarter_start"]))
            for r in area.values()} == {("2023/24", 2023, 4, "2024-01-01")}

    # Essex: January's all-ages knife cell is withheld (1 attendance): the quarter is withheld too,
    # and so is under 25 (January withheld); February had no extract, March showed 0.
    essex = area["essex"]
    assert (essex["ae_knife_attendances"], essex["ae_knife_attendances_suppressed"], essex["ae_coverage"],
            essex["ae_knife_under_25"], essex["ae_knife_under_25_suppressed"], essex["ae_knife_rate_per_100k"]) == (
        None, True, "suppressed", None, True, None)
    # Merseyside: January 5 (half a month, partial) + February no extract + March 0 = 5, shown as a
    # lower bound ('partial'), no rate; all 5 were under 25.
    merseyside = area["merseyside"]
    assert (merseyside["ae_knife_attendances"], merseyside["ae_knife_attendances_suppressed"],
            merseyside["ae_coverage"], merseyside["ae_months_complete"], merseyside["ae_knife_under_25"],
            merseyside["ae_knife_rate_per_100k"]) == (5, False, "partial", 0, 5, None)
    # 2023/24: the cited allocation of the year (gov.uk, 2023/24), with its source
    assert (merseyside["is_vru_area"], merseyside["in_vru_programme"], merseyside["s60_relaxed"],
            merseyside["vru_funding_gbp"], merseyside["vru_membership_carried_forward"]) == (
        True, True, True, Decimal("4388080.00"), False)
    assert merseyside["vru_funding_source"].startswith("https://www.gov.uk/")
    # Cleveland joined in 2022/23: a VRU area in 2023/24, with no per-year figure cited (NULL, never a guess)
    assert (area["cleveland"]["is_vru_area"], area["cleveland"]["vru_funding_gbp"]) == (True, None)
    assert area["cleveland"]["vru_funding_source"].startswith("no cited figure: ")
    assert (area["durham"]["is_vru_area"], area["durham"]["vru_funding_gbp"]) == (False, Decimal("0.00"))
    assert area["durham"]["ae_coverage"] == "no extract"  # departments, no extract
    assert area["metropolitan"]["ae_coverage"] == "no A&E data for this area"  # no department in ae_sites
    for r in area.values():
        if r["ae_under_25_rate_coverage"] != "complete":
            assert r["ae_knife_under_25_rate_per_100k"] is None
        assert (r["knife_offences"], r["knife_offences_coverage"], r["searches"], r["stop_search_coverage"]) == (
            None, "no data", None, "no data")  # a missing measure is empty, never 0
        assert r["ae_knife_baseline_coverage"] == r["knife_offences_baseline_coverage"] == "no baseline"
        assert r["population_source"] == (
            "ONS mid-2023 estimates, edition of July 2024, by police force area; "
            "Black/White search ratio: Census 2011 residents by ethnic group")
    assert_populations_are_the_seeds(area.values())

    groups = {r["group_name"]: r for r in rows(outcomes_conn, "select * from marts_build.vru_programme_comparison")}
    assert {g: (r["areas_in_group"], r["ae_knife_areas_contributing"], r["ae_knife_attendances"])
            for g, r in groups.items()} == {
        "VRU areas": (20, 0, None), "non-VRU areas": (23, 0, None), "England and Wales": (43, 0, None)}
    assert groups["England and Wales"]["hes_england_admissions_fy"] is None  # no HES loaded
    # HES is published for England only: its denominator is the 39 English areas' estimate
    # (mid-2023: 57,690,323 all ages, as ONS publishes for England)
    assert groups["England and Wales"]["hes_england_population"] == 57_690_323
    assert groups["England and Wales"]["hes_england_population_0_24"] == sum(
        int(r["age_0_24"]) for r in SEED_POPULATION if r["mid_year"] == "2023" and r["force_id"] in ENGLISH)
    assert {g: (r["population_source"], r["population_carried_forward"]) for g, r in groups.items()} == {
        g: (area["durham"]["population_source"], False) for g in groups}

    for mart in MARTS:
        outcome = validate("marts", f"outcomes.{mart}", f"marts_build.{mart}", warehouse_url=clean_warehouse,
                           docs_dir=tmp_path / "docs")
        assert outcome.success, outcome.critical_failures + outcome.warnings
