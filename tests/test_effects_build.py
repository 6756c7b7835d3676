"""The programme effect marts in the build, against a real PostgreSQL (embedded): the estimator task
(vru.effects_build) reads the outcome mart from the build schema, writes its pipeline-only tables,
dbt builds the two effect marts over them (enforced contracts), and both GX suites pass; a
targeted bad row fails the check meant to catch it.

The outcome mart is a plain table standing in for the dbt model (its contract's columns and types,
from marts/outcomes/_outcomes__models.yml), holding a SYNTHETIC panel over the 43 real force
areas: 40 quarters (2015/16 to 2024/25), the real membership (18 areas from 2019/20, Cleveland and
Humberside from 2022/23), knife offences with a planted -15% effect, some figures withheld or
across a series break, knife homicides too rare for a log rate, A&E under-25 counts absent.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml  # type: ignore[import-untyped]
from vru import effects_build
from vru.config import dbt_env
from vru.validation import validate
from vru_sample.panels import synthetic_outcome_rows

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
OUTCOMES = yaml.safe_load((PROJECT / "models" / "marts" / "outcomes" / "_outcomes__models.yml").read_text(
    encoding="utf-8"))["models"]
with (PROJECT / "seeds" / "vru_membership_years.csv").open(newline="", encoding="utf-8") as f:
    MEMBERSHIP = list(csv.DictReader(f))
with (PROJECT / "seeds" / "force_areas.csv").open(newline="", encoding="utf-8") as f:
    FORCES = [r["force_id"] for r in csv.DictReader(f)]
FUNDED_2019 = sorted({r["force_id"] for r in MEMBERSHIP if r["fy_start"] == "2019" and r["is_vru"] == "true"})
FUNDED_2022 = ["cleveland", "humberside"]
BUILT = ("vru_programme_effect", "vru_programme_event_study", "vru_outcomes_quarterly")
WITHHELD = 5  # knife offence figures marked partial (a figure withheld) below
BREAK = 4  # quarters of Greater Manchester inside a series break


@pytest.fixture
def build(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    def drop() -> None:
        for table in BUILT:
            conn.execute(f"drop table if exists marts_build.{table} cascade")
    drop()
    columns = next(m for m in OUTCOMES if m["name"] == "vru_outcomes_quarterly")["columns"]
    conn.execute("create table marts_build.vru_outcomes_quarterly ("
                 + ", ".join(f"{c['name']} {c['data_type']}" for c in columns) + ")")
    rows = synthetic_outcome_rows(FORCES, FUNDED_2019, FUNDED_2022, withheld=WITHHELD, series_break=BREAK)
    names = list(rows[0])
    with conn.cursor() as cur:
        cur.executemany(f"insert into marts_build.vru_outcomes_quarterly ({', '.join(names)}) "
                        f"values ({', '.join(['%s'] * len(names))})", [list(r.values()) for r in rows])
    yield conn
    drop()


def dbt_build_effects(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DBT), "build", "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"), "--select", "tag:effects"],
        env={**os.environ, **dbt_env(url), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"},
        capture_output=True, text=True, timeout=900,
    )


def effect_rows(conn: psycopg.Connection) -> dict[tuple[str, str], dict[str, object]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute("select * from marts_build.vru_programme_effect")
        return {(r["measure"], r["analysis_window"]): r for r in cur.fetchall()}


def test_estimates_built_checked_and_exclusions_counted(build: psycopg.Connection, clean_warehouse: str,
                                                        tmp_path: Path) -> None:
    summary = effects_build.build_effects("test-effects", clean_warehouse, permutations=99)
    assert summary["knife_offences (all quarters after funding)"] == "estimated"

    done = dbt_build_effects(clean_warehouse, tmp_path)
    assert done.returncode == 0, done.stdout[-6000:]
    rows = effect_rows(build)
    assert {m for m, _ in rows} == {m.spec.key for m in effects_build.MEASURES}
    knife = rows[("knife_offences", "all quarters after funding")]
    # the planted -15% is inside the interval; the counts say what was used and what was left out
    assert knife["status"] == "estimated" and knife["ci_low_pct"] <= -15 <= knife["ci_high_pct"]
    assert float(knife["p_value_permutation"]) == pytest.approx(0.01) and knife["permutations"] == 99
    assert (knife["areas_used"], knife["funded_areas_used"], knife["comparison_areas_used"]) == (43, 20, 23)
    assert (knife["excluded_partial_coverage"], knife["excluded_series_break"]) == (WITHHELD, BREAK)
    assert knife["area_quarters_used"] + knife["area_quarters_excluded"] == 43 * 40
    assert str(knife["first_quarter_start"]) == "2015-04-01" and str(knife["last_quarter_start"]) == "2025-01-01"
    ae = rows[("ae_knife", "all quarters after funding")]
    assert ae["excluded_suppressed"] == 7 and ae["area_quarters_used"] == 43 * 40 - 7
    # too rare for a rate change, and absent: said, never a number
    homicides = rows[("knife_homicides", "all quarters after funding")]
    assert homicides["status"] == "not possible" and homicides["estimate_pct"] is None
    assert "too few events" in str(homicides["status_reason"])
    assert rows[("ae_knife_under_25", "all quarters after funding")]["status"] == "not available"
    assert rows[("searches", "all quarters after funding")]["role"] == "context"

    study = build.execute("select relative_quarter, estimate_pct, is_reference "
                          "from marts_build.vru_programme_event_study "
                          "where measure = 'knife_offences' order by relative_quarter").fetchall()
    assert [q for q, _, _ in study] == list(range(-8, 13))
    assert [(q, e) for q, e, ref in study if ref] == [(-1, 0)]
    assert build.execute("select count(*) from marts_build.vru_programme_event_study "
                         "where measure = 'knife_homicides'").fetchone() == (0,)

    for dataset, table in (("outcomes.vru_programme_effect", "marts_build.vru_programme_effect"),
                           ("outcomes.vru_programme_event_study", "marts_build.vru_programme_event_study")):
        outcome = validate("marts", dataset, table, warehouse_url=clean_warehouse, docs_dir=tmp_path / "docs",
                           run_id="test-effects")
        assert outcome.success, (dataset, outcome.critical_failures)

    # a targeted bad row fails exactly the check meant to catch it
    build.execute("update marts_build.vru_programme_effect set ci_high_pct = estimate_pct - 1 "
                  "where measure = 'knife_offences' and analysis_window = 'all quarters after funding'")
    outcome = validate("marts", "outcomes.vru_programme_effect", "marts_build.vru_programme_effect",
                       warehouse_url=clean_warehouse, docs_dir=tmp_path / "docs", run_id="test-effects")
    assert not outcome.success
    assert [re.sub(r" \[[^\]]*\]$", "", d.split(": ")[0]) for d in outcome.critical_failures] == [
        "The interval contains the estimate"]


def _estimates(conn: psycopg.Connection) -> dict[tuple[str, str], dict[str, object]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute("select * from staging.programme_effect_estimates").fetchall()
    return {(r["measure"], r["analysis_window"]): r for r in rows}


def _event_study(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    return conn.execute("select measure, method, relative_quarter, estimate_pct, ci_low_pct, ci_high_pct, "
                        "std_error, funded_area_quarters from staging.programme_event_study_estimates "
                        "order by 1, 2, 3").fetchall()


def test_a_measure_whose_panel_did_not_change_keeps_its_estimates(build: psycopg.Connection,
                                                                 clean_warehouse: str) -> None:
    effects_build.build_effects("night-1", clean_warehouse, permutations=99)
    first, first_study = _estimates(build), _event_study(build)
    assert first_study and all(r["input_fingerprint"] for r in first.values())

    # nothing changed: every measure keeps its estimates, as made the first time
    effects_build.build_effects("night-2", clean_warehouse, permutations=99)
    second = _estimates(build)
    assert {k: r["estimated_at"] for k, r in second.items()} == {k: r["estimated_at"] for k, r in first.items()}
    assert {r["run_id"] for r in second.values()} == {"night-2"}
    assert _event_study(build) == first_study

    # one knife offence figure revised: knife offences are estimated again, nothing else is
    build.execute("update marts_build.vru_outcomes_quarterly set knife_offences = knife_offences + 25 "
                  "where (force_id, fy_start, financial_quarter) = (select force_id, fy_start, financial_quarter "
                  "from marts_build.vru_outcomes_quarterly where force_id = 'merseyside' and fy_start = 2021 "
                  "and knife_offences_coverage = 'complete' and knife_offences_is_comparable limit 1)")
    effects_build.build_effects("night-3", clean_warehouse, permutations=99)
    third = _estimates(build)
    again = {m for (m, _), r in third.items() if r["estimated_at"] != first[(m, _)]["estimated_at"]}
    assert again == {"knife_offences"}
    assert third[("knife_offences", "all quarters after funding")]["log_rate_effect"] != first[
        ("knife_offences", "all quarters after funding")]["log_rate_effect"]

    # and what was kept is what a fresh estimate gives: nothing kept, everything estimated again
    build.execute("delete from staging.programme_effect_estimates")
    build.execute("delete from staging.programme_event_study_estimates")
    effects_build.build_effects("fresh", clean_warehouse, permutations=99)
    fresh = _estimates(build)
    volatile = ("run_id", "estimated_at")
    assert {k: {c: v for c, v in r.items() if c not in volatile} for k, r in fresh.items()} == {
        k: {c: v for c, v in r.items() if c not in volatile} for k, r in third.items()}
