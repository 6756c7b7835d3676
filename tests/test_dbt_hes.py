"""The HES dbt models (stg_nhs__sharp_object_admissions, sharp_object_admissions_yearly) built by dbt
against a real PostgreSQL (embedded) from the bundled editions loaded by the real loader, then the
raw and mart suites run on what was built.

The dbt unit test (models/staging/nhs/_nhs__unit_tests.yml) covers the current-figure logic on
fixtures; this checks what it cannot: the contract, the data test, the pivot and the suites.
"""

from __future__ import annotations

import importlib.util
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
REPO = Path(__file__).resolve().parents[1]
REAL_2022 = REPO / "tests" / "fixtures" / "nhs" / "hosp-epis-stat-admi-ext-caus-2022-23-tab.xlsx"
COLUMNS = ("financial_year", "finished_consultant_episodes", "admissions", "gender_unknown", "age_0_24",
           "age_25_plus", "age_17", "age_90_plus", "withheld_figures", "is_revised", "edition_load_id")


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
    spec = importlib.util.spec_from_file_location("make_hes_sample", REPO / "scripts" / "make_hes_sample.py")
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    archive = Archive(tmp_path / "archive")
    edition_1, edition_2 = bundled_hes_editions()  # synthetic 2020-21, 2021-22
    # 2021-22 again, with Age 17 suppressed ('*'), as a corrected re-publication
    revised = tmp_path / "hes-2021-22-revised.xlsx"
    revised.write_bytes(generator.workbook(2, revise={("X99", "age_17"): "*"}))
    paths = (edition_1, edition_2, revised, REAL_2022)  # then the real 2022-23 table
    loads = [hes.load_file(hes_conn, archive, path, run_id="test") for path in paths]
    assert [r.status for r in loads] == ["loaded"] * 4, [r.reason for r in loads]

    done = dbt_build(clean_warehouse, tmp_path)
    assert done.returncode == 0, done.stdout[-5000:]
    assert "PASS=" in done.stdout and "stg_nhs__sharp_object_admissions_current_figures" in done.stdout
    assert "sharp_object_admissions_yearly_age_groups" in done.stdout

    mart = {r[0]: dict(zip(COLUMNS, r[1:], strict=True)) for r in hes_conn.execute(
        f"select fy_start, {', '.join(COLUMNS)} from marts_build.sharp_object_admissions_yearly "
        "where geography_code = 'E92000001' and geography_name = 'England'")}
    assert sorted(mart) == [2020, 2021, 2022]
    figures = generator.figures(1)
    bands = [m.name for m in hes.AGE_BANDS]
    assert mart[2020]["age_0_24"] == sum(figures[(2020, "X99", b)] for b in bands[:10])
    assert mart[2020]["age_25_plus"] == sum(figures[(2020, "X99", b)] for b in bands[10:])
    assert (mart[2020]["is_revised"], mart[2020]["withheld_figures"], mart[2020]["edition_load_id"]) == (
        False, 0, loads[0].load_id)
    # one band withheld: its group is null, never a partial sum; the other group stands
    latest = mart[2021]
    assert (latest["age_17"], latest["age_0_24"], latest["withheld_figures"], latest["is_revised"]) == (
        None, None, 1, True)
    assert latest["age_25_plus"] == sum(generator.figures(2)[(2021, "X99", b)] for b in bands[10:])
    assert latest["edition_load_id"] == loads[2].load_id
    # the real table: X99 as published, the groups summed from its own bands
    real = mart[2022]
    assert (real["financial_year"], real["finished_consultant_episodes"], real["admissions"]) == (
        "2022/23", 3_775, 3_715)
    assert (real["age_0_24"], real["age_25_plus"], real["age_90_plus"], real["gender_unknown"]) == (
        1_439, 2_309, 10, 4)
    assert (real["withheld_figures"], real["is_revised"], real["edition_load_id"]) == (0, False, loads[3].load_id)
    # the other assault codes are in staging, apart, and not in the mart's X99 figures
    assert hes_conn.execute("select count(distinct cause_code) from staging.stg_nhs__sharp_object_admissions "
                            "where fy_start = 2022").fetchone() == (25,)

    docs = tmp_path / "docs"
    mart_table = "marts_build.sharp_object_admissions_yearly"
    for stage, dataset, table in (("raw", hes.DATASET, hes.TABLE),
                                  ("marts", "nhs.sharp_object_admissions_yearly", mart_table)):
        outcome = validate(stage, dataset, table, warehouse_url=clean_warehouse, docs_dir=docs, run_id="test-hes")
        assert outcome.success, outcome
