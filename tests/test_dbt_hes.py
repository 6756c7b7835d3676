"""The HES dbt models (stg_nhs__sharp_object_admissions, sharp_object_admissions_yearly) built by dbt
against a real PostgreSQL (embedded) from the bundled editions loaded by the real loader, then the
raw and mart suites run on what was built.

The dbt unit test (models/staging/nhs/_nhs__unit_tests.yml) covers the current-figure logic on
fixtures; this checks what it cannot: the contract, the data test, the pivot and the suites.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from vru.archive import Archive
from vru.config import dbt_env
from vru.feeds import hes
from vru.validation import validate
from vru_sample.server import bundled_hes_editions

PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
COLUMNS = ("financial_year", "finished_consultant_episodes", "admissions", "age_75_plus", "withheld_figures",
           "is_revised", "edition_load_id")


def dbt_build(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # target and logs outside the checkout: the checkout's target/manifest.json is the DAG's.
    return subprocess.run(
        [str(DBT), "build", "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"),
         "--select", "+sharp_object_admissions_yearly", "--indirect-selection", "cautious"],
        env={**os.environ, **dbt_env(url), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"},
        capture_output=True, text=True, timeout=600,
    )


@pytest.fixture
def hes_conn(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """An empty warehouse; the dbt-built HES relations are dropped afterwards (other tests make their own)."""
    yield conn
    conn.execute("drop view if exists staging.stg_nhs__sharp_object_admissions cascade")
    conn.execute("drop table if exists marts_build.sharp_object_admissions_yearly cascade")


def test_build_pivots_the_current_figures_and_passes_the_suites(hes_conn: psycopg.Connection, clean_warehouse: str,
                                                                tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    edition_1, edition_2 = bundled_hes_editions()
    loads = [hes.load_file(hes_conn, archive, path, run_id="test") for path in (edition_1, edition_2)]
    # a third edition: 2019-20 again, with the 75+ figure suppressed ('*')
    third = tmp_path / "edition-3.csv"
    third.write_text("Hospital Admitted Patient Care Activity 2019-20: External causes (SYNTHETIC)\n"
                     "ICD-10 code,Description,FCEs,Admissions,Emergency,Male,Female,Age 0-14,Age 15-59,"
                     "Age 60-74,Age 75+\n"
                     "X99,Assault by sharp object,4757,4380,4250,4180,560,80,4520,120,*\n")
    loads.append(hes.load_file(hes_conn, archive, third, run_id="test"))
    assert [r.status for r in loads] == ["loaded"] * 3, [r.reason for r in loads]

    done = dbt_build(clean_warehouse, tmp_path)
    assert done.returncode == 0, done.stdout[-5000:]
    assert "PASS=" in done.stdout and "stg_nhs__sharp_object_admissions_current_figures" in done.stdout

    mart = {r[0]: dict(zip(COLUMNS, r[1:], strict=True)) for r in hes_conn.execute(
        f"select fy_start, {', '.join(COLUMNS)} from marts_build.sharp_object_admissions_yearly "
        "where geography_code = 'E92000001' and geography_name = 'England'")}
    assert sorted(mart) == list(range(2012, 2020))
    assert mart[2012]["edition_load_id"] == loads[1].load_id  # edition 2 republished the whole series
    assert (mart[2018]["finished_consultant_episodes"], mart[2018]["is_revised"]) == (4_893, True)
    assert mart[2017]["is_revised"] is False
    latest = mart[2019]
    assert (latest["financial_year"], latest["finished_consultant_episodes"], latest["admissions"]) == (
        "2019/20", 4_757, 4_380)
    assert (latest["age_75_plus"], latest["withheld_figures"], latest["is_revised"]) == (None, 1, True)
    assert latest["edition_load_id"] == loads[2].load_id

    docs = tmp_path / "docs"
    mart_table = "marts_build.sharp_object_admissions_yearly"
    for stage, dataset, table in (("raw", hes.DATASET, hes.TABLE),
                                  ("marts", "nhs.sharp_object_admissions_yearly", mart_table)):
        outcome = validate(stage, dataset, table, warehouse_url=clean_warehouse, docs_dir=docs, run_id="test-hes")
        assert outcome.success, outcome
