"""The outcome mart suites (marts.outcomes.vru_outcomes_quarterly, marts.outcomes.vru_programme_comparison)
against a real PostgreSQL (embedded).

The marts are plain tables standing in for the dbt models (tests/test_dbt_outcomes.py validates the
dbt-built ones), created from the models' contracts in marts/outcomes/_outcomes__models.yml and dropped afterwards.
Good data passes; targeted bad rows fail exactly the checks meant to catch them.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml  # type: ignore[import-untyped]
from vru.validation import ValidationOutcome, validate

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = {m["name"]: m for m in yaml.safe_load(
    (REPO / "dbt_project" / "models" / "marts" / "outcomes" / "_outcomes__models.yml").read_text(encoding="utf-8")
)["models"]}
with (REPO / "dbt_project" / "seeds" / "vru_membership_years.csv").open(newline="", encoding="utf-8") as seed_file:
    VRU_2019 = {r["force_id"] for r in csv.DictReader(seed_file) if r["fy_start"] == "2019" and r["is_vru"] == "true"}
with (REPO / "dbt_project" / "seeds" / "force_areas.csv").open(newline="", encoding="utf-8") as seed_file:
    # membership of 2019/20 (the quarter of the rows below), and of the programme at any time
    FORCES = [(r["force_id"], r["force_name"], r["force_id"] in VRU_2019, r["is_vru_area"] == "true")
              for r in csv.DictReader(seed_file)]
AREAS = ("marts", "outcomes.vru_outcomes_quarterly", "marts.vru_outcomes_quarterly")
GROUPS = ("marts", "outcomes.vru_programme_comparison", "marts.vru_programme_comparison")
SOURCE = ("ONS mid-2019 estimates, original edition (before Census 2021; later revised by ONS), by police force area; "
          "Black/White search ratio: Census 2011 residents by ethnic group")

Row = dict[str, Any]


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("outcomes_data_docs")


@pytest.fixture
def marts(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    drop(conn)
    yield conn
    drop(conn)


def drop(conn: psycopg.Connection) -> None:
    for target in (GROUPS, AREAS):
        conn.execute(f"drop table if exists {target[2]} cascade")


def create(conn: psycopg.Connection, target: tuple[str, str, str], rows: list[Row]) -> None:
    columns = CONTRACTS[target[2].split(".")[1]]["columns"]
    conn.execute(f"create table {target[2]} ({', '.join(c['name'] + ' ' + c['data_type'] for c in columns)})")
    names = [c["name"] for c in columns]
    with conn.cursor() as cur:
        cur.executemany(f"insert into {target[2]} ({', '.join(names)}) values ({', '.join(['%s'] * len(names))})",
                        [tuple(r.get(n) for n in names) for r in rows])


def good_areas() -> list[Row]:
    """2019/20 Q1, all 43 areas; Essex (VRU) has 12 A&E knife attendances and 100 knife offences, all
    complete, over 1,000,000 residents (rates 1.20 and 10.00); Durham (non-VRU) 50 offences over
    500,000 (10.00); no other area has a figure."""
    rows = []
    for force_id, force_name, vru, programme in FORCES:
        rows.append({
            "force_id": force_id, "force_name": force_name, "financial_year": "2019/20", "fy_start": 2019,
            "financial_quarter": 1, "quarter_start": "2019-04-01", "is_vru_area": vru, "in_vru_programme": programme,
            "vru_membership_carried_forward": False, "vru_funding_gbp": None if vru else 0,
            "vru_funding_source": "no cited figure: test" if vru else None,
            "s60_relaxed": False, "population": 1_000_000, "population_0_24": 300_000, "population_year": 2019,
            "population_carried_forward": False, "population_source": SOURCE,
            "ae_knife_attendances_suppressed": False, "ae_knife_under_25_suppressed": False,
            "ae_coverage": "no extract", "ae_months_complete": 0, "ae_under_25_rate_coverage": "no complete count",
            "ae_knife_baseline_coverage": "no baseline", "ae_knife_under_25_baseline_coverage": "no baseline",
            "knife_offences_coverage": "no data", "knife_offences_baseline_coverage": "no baseline",
            "knife_homicides_baseline_coverage": "no baseline", "stop_search_months_published": 0,
            "stop_search_coverage": "no data",
        })
    by_id = {r["force_id"]: r for r in rows}
    by_id["essex"].update(ae_knife_attendances=12, ae_coverage="complete", ae_months_complete=3,
                          ae_knife_under_25=6, ae_under_25_rate_coverage="complete",
                          ae_knife_under_25_rate_per_100k="2.00",
                          ae_knife_rate_per_100k="1.20", knife_offences=100, knife_offences_coverage="complete",
                          knife_offences_is_comparable=True, knife_offences_rate_per_100k="10.00")
    by_id["durham"].update(population=500_000, knife_offences=50, knife_offences_coverage="complete",
                           knife_offences_is_comparable=True, knife_offences_rate_per_100k="10.00")
    return rows


def good_groups() -> list[Row]:
    vru = sum(v for _, _, v, _ in FORCES)
    base = {"financial_year": "2019/20", "fy_start": 2019, "financial_quarter": 1, "quarter_start": "2019-04-01",
            "population_source": SOURCE, "population_carried_forward": False, "knife_homicides_areas_contributing": 0,
            "ae_knife_under_25_areas_contributing": 0, "stop_search_areas_contributing": 0}
    groups = {  # areas, (A&E: count, population, areas), (knife: count, population, areas, rate)
        "VRU areas": (vru, (12, 1_000_000, 1), (100, 1_000_000, 1, "10.0000")),
        "non-VRU areas": (43 - vru, (None, None, 0), (50, 500_000, 1, "10.0000")),
        "England and Wales": (43, (12, 1_000_000, 1), (150, 1_500_000, 2, "10.0000")),
    }
    rows = []
    for name, (n, (ae, ae_pop, ae_n), (knife, knife_pop, knife_n, rate)) in groups.items():
        rows.append({**base, "group_name": name, "areas_in_group": n,
                     "ae_knife_attendances": ae, "ae_knife_population": ae_pop, "ae_knife_areas_contributing": ae_n,
                     "ae_knife_areas_excluded": n - ae_n, "ae_knife_rate_per_100k": "1.2000" if ae else None,
                     "knife_offences": knife, "knife_offences_population": knife_pop,
                     "knife_offences_areas_contributing": knife_n, "knife_offences_areas_excluded": n - knife_n,
                     "knife_offences_rate_per_100k": rate, "knife_homicides_areas_excluded": n,
                     "stop_search_areas_excluded": n})
    return rows


def run(warehouse_url: str, docs_dir: Path, target: tuple[str, str, str]) -> ValidationOutcome:
    stage, dataset, table = target
    return validate(stage, dataset, table, warehouse_url=warehouse_url, docs_dir=docs_dir, run_id="test-outcomes")


def failed_checks(descriptions: list[str]) -> list[str]:
    """'Check name [column]: 3 of 10 rows fail in t' -> 'Check name'."""
    return sorted(re.sub(r" \[[^\]]*\]$", "", d.split(": ")[0]) for d in descriptions)


def test_good_data_passes(marts: psycopg.Connection, warehouse_url: str, docs_dir: Path) -> None:
    create(marts, AREAS, good_areas())
    create(marts, GROUPS, good_groups())

    for target in (AREAS, GROUPS):
        outcome = run(warehouse_url, docs_dir, target)
        assert outcome.success, (target, outcome.critical_failures, outcome.warnings)


def test_area_checks_fail_on_targeted_rows(marts: psycopg.Connection, warehouse_url: str, docs_dir: Path) -> None:
    rows = good_areas()
    by_id = {r["force_id"]: r for r in rows}
    by_id["essex"].update(ae_knife_attendances=3)  # a small number shown; its rate no longer follows
    by_id["durham"].update(knife_offences_rate_per_100k="5.00")  # 50 * 100000 / 500000 is 10.00
    by_id["kent"].update(ae_knife_attendances_suppressed=True, ae_coverage="suppressed",
                         ae_knife_attendances=20)  # withheld but shown
    by_id["cheshire"].update(knife_offences_baseline="40.00")  # a baseline without any 2018/19 figure
    by_id["cleveland"].update(is_vru_area=True)  # today's membership: Cleveland joined in 2022/23
    by_id["dorset"].update(population_carried_forward=True)  # flagged, but mid-2019 is the quarter's own year
    by_id["surrey"].update(ae_knife_under_25=10, ae_under_25_rate_coverage="complete", ae_months_complete=3,
                           ae_knife_under_25_rate_per_100k="1.00")  # 10 over 300,000 aged 0-24 is 3.33
    create(marts, AREAS, rows)
    create(marts, GROUPS, good_groups())

    outcome = run(warehouse_url, docs_dir, AREAS)

    assert failed_checks(outcome.critical_failures) == sorted([
        "No small A&E number shown",
        "Rates agree with counts and populations",
        "Withheld A&E figures stay empty",
        "Baseline present for every area with 2018/19 data",
        "VRU membership and funding of the quarter",
        "Population of the quarter's year, carried forward only when flagged",
        "Under-25 rate agrees with the under-25 count and population",
    ]), outcome.critical_failures


def test_group_checks_fail_on_targeted_rows(marts: psycopg.Connection, warehouse_url: str, docs_dir: Path) -> None:
    create(marts, AREAS, good_areas())
    groups = good_groups()
    vru = groups[0]
    # a group total that is not the sum of its areas (and so not E&W minus non-VRU), with a rate
    # that is the mean of area rates rather than the total over the population
    vru.update(knife_offences=110, knife_offences_rate_per_100k="11.0000")
    groups[1].update(hes_england_admissions_fy=4000)  # a national figure on a group row
    create(marts, GROUPS, groups)

    outcome = run(warehouse_url, docs_dir, GROUPS)

    assert failed_checks(outcome.critical_failures) == sorted([
        "Group totals equal the sum of their areas",
        "England and Wales is VRU plus non-VRU",
        "Hospital admissions only on the England and Wales rows",
    ]), outcome.critical_failures

    marts.execute(f"update {GROUPS[2]} set knife_offences_rate_per_100k = 10.5 where group_name = 'England and Wales'")
    outcome = run(warehouse_url, docs_dir, GROUPS)
    assert "Group rates are totals over populations" in failed_checks(outcome.critical_failures)
