"""DAG import and structure: parsed the way the dag-processor parses them, in a clean process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

_INSPECT = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])

def callbacks(value):  # a mapped task keeps what it was given; a plain one, a list
    value = value if isinstance(value, (list, tuple)) else [value] if value else []
    return [getattr(c, "__name__", type(c).__name__) for c in value]

out = {"import_errors": {k: str(v)[-2000:] for k, v in bag.import_errors.items()},
       "heavy_modules": sorted(m for m in ("great_expectations", "dbt.cli.main", "pandas")
                               if m in sys.modules),
       "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "doc": bool(dag.doc_md),
        "tags": sorted(dag.tags),
        "owner": dag.owner,
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "timetable": type(dag.timetable).__name__,
        "summary": getattr(getattr(dag.timetable, "timetable", dag.timetable), "expression", None),
        "timezone": str(getattr(dag.timetable, "timezone", "")),
        "schedule_assets": [a.name for a in (lambda c: getattr(c, "objects", None) or ([c] if c is not None else []))(
                                getattr(dag.timetable, "asset_condition", None))],
        "tasks": {t.task_id: {"down": sorted(t.downstream_task_ids),
                              "outlets": [getattr(o, "name", str(o)) for o in t.outlets],
                              "pool": t.pool, "trigger_rule": getattr(t.trigger_rule, "value", t.trigger_rule),
                              "doc": bool(t.doc_md or getattr(t, "doc", None)),
                              "retries": t.retries,
                              **{kind: callbacks(getattr(t, f"on_{kind}_callback"))
                                 for kind in ("failure", "success", "retry")}}
                  for t in dag.tasks},
    }
print("JSON:" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = dict(os.environ, AIRFLOW_HOME=str(tmp_path_factory.mktemp("airflow_home")),
               AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__CORE__UNIT_TEST_MODE="True")
    done = subprocess.run([sys.executable, "-c", _INSPECT, str(REPO / "dags")], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("JSON:")), None)
    assert line, f"DAG parsing crashed:\n{done.stderr[-4000:]}"
    return json.loads(line[5:])  # type: ignore[no-any-return]


def test_dags_import_without_errors_or_heavy_imports(parsed: dict[str, Any]) -> None:
    assert parsed["import_errors"] == {}
    assert set(parsed["dags"]) == {"vru_ingest_police", "vru_ingest_knife_crime", "vru_ingest_hes", "vru_ingest_ae",
                                    "vru_ingest_ons_pfa", "vru_raw_settled", "vru_transform"}
    assert parsed["heavy_modules"] == [], "GX, dbt or pandas imported at DAG-parse time"
    for dag in parsed["dags"].values():
        assert dag["doc"] and dag["tags"] and dag["owner"] == "data-engineering"
        assert dag["catchup"] is False and dag["max_active_runs"] == 1


def test_ingest_dag_runs_nightly_at_two_london_time_and_publishes_the_raw_asset(parsed: dict[str, Any]) -> None:
    dag = parsed["dags"]["vru_ingest_police"]
    assert dag["timetable"] == "CronTriggerTimetable" and dag["summary"] == "0 2 * * *"
    assert "Europe/London" in dag["timezone"]
    tasks = dag["tasks"]
    assert tasks["plan"]["down"] == ["batches", "publish_raw"]
    assert tasks["ingest"]["pool"] == "police_api"
    assert tasks["ingest"]["down"] == ["check_failures", "check_freshness", "publish_raw"]
    assert tasks["publish_raw"]["outlets"] == ["raw.stop_searches"]
    assert tasks["check_failures"]["trigger_rule"] == "all_done"
    assert all(t["doc"] for t in tasks.values())


def test_knife_crime_dag_checks_nightly_and_publishes_only_a_new_edition(parsed: dict[str, Any]) -> None:
    dag = parsed["dags"]["vru_ingest_knife_crime"]
    assert dag["timetable"] == "CronTriggerTimetable" and dag["summary"] == "15 2 * * *"
    assert "Europe/London" in dag["timezone"]
    tasks = dag["tasks"]
    assert tasks["check_and_load"]["down"] == ["check_freshness", "publish_raw"]
    assert tasks["publish_raw"]["outlets"] == ["raw.knife_offences"]
    assert all(t["doc"] for t in tasks.values())


def test_ae_dag_runs_when_a_file_lands_and_nightly_and_publishes_only_a_load(parsed: dict[str, Any]) -> None:
    dag = parsed["dags"]["vru_ingest_ae"]
    # the landing folder's asset (its watcher's trigger fires per new file), or the nightly sweep
    assert dag["timetable"] == "AssetOrTimeSchedule" and dag["summary"] == "30 2 * * *"
    assert dag["schedule_assets"] == ["landing.ae_extracts"]
    tasks = dag["tasks"]
    assert tasks["take_in"]["down"] == ["check_freshness", "publish_raw"] and tasks["take_in"]["retries"] >= 1
    assert tasks["publish_raw"]["outlets"] == ["restricted.ae_attendances"] and tasks["publish_raw"]["down"] == []
    assert tasks["check_freshness"]["down"] == ["report"] and tasks["report"]["trigger_rule"] == "all_done"
    assert all(t["doc"] for t in tasks.values())


def test_raw_events_start_the_settle_dag_which_alone_starts_the_transform(parsed: dict[str, Any]) -> None:
    settle = parsed["dags"]["vru_raw_settled"]
    assert sorted(settle["schedule_assets"]) == ["raw.knife_offences", "raw.pfa_knife_offences",
                                                 "raw.sharp_object_admissions", "raw.stop_searches",
                                                 "restricted.ae_attendances"]
    tasks = settle["tasks"]
    # first, the run waits for every ingest still loading (a sensor that holds no worker slot)
    assert tasks["wait_for_ingests"]["down"] == ["announce"] and tasks["wait_for_ingests"]["doc"]
    assert tasks["announce"]["outlets"] == ["audit.loads"] and tasks["announce"]["doc"]
    # one transform run per announcement: the transform listens to nothing else
    assert parsed["dags"]["vru_transform"]["schedule_assets"] == ["audit.loads"]


def test_transform_dag_is_asset_scheduled_and_gates_the_mart_on_validation(parsed: dict[str, Any]) -> None:
    dag = parsed["dags"]["vru_transform"]
    tasks = dag["tasks"]
    # the raw gate comes first, then one `dbt build` of the seeds, models and tests (one dbt
    # start-up per run; docs/decisions.md), then the effect estimates and their marts
    assert "wait_for_ingests" not in tasks  # the settle DAG waited before this run started
    # (validate_marts reads validate_raw's snapshot of raw: a data dependency too)
    assert tasks["validate_raw"]["down"] == ["dbt", "validate_marts"]
    assert [t for t in tasks if t.startswith("dbt")] == ["dbt", "dbt_effects"]
    assert tasks["dbt"]["down"] == ["estimate_effects"] and tasks["dbt"]["doc"]

    def descendants(task_id: str) -> set[str]:
        seen: set[str] = set()
        todo = [task_id]
        while todo:
            for down in tasks[todo.pop()]["down"]:
                if down not in seen:
                    seen.add(down)
                    todo.append(down)
        return seen

    assert all("validate_marts" in descendants(t) for t in tasks if t.startswith("dbt"))
    # write-audit-publish: the gate checks the build; only publish_marts makes it visible, and the
    # report (written whatever happened) comes after it, to say which figures BI tools now show
    assert tasks["validate_marts"]["down"] == ["publish_marts"]
    assert tasks["publish_marts"]["down"] == ["published", "report"] and tasks["publish_marts"]["retries"] >= 1
    # two leaves: a run whose gate failed is red (published upstream_failed) though the report was written
    assert tasks["published"]["down"] == [] and tasks["report"]["down"] == []
    assert tasks["publish_marts"]["outlets"] == ["marts.stop_search_monthly", "marts.knife_crime_quarterly",
                                                 "marts.sharp_object_admissions_yearly", "marts.ae_assault_monthly",
                                                 "marts.pfa_knife_crime_12_months",
                                                 "marts.vru_outcomes_quarterly", "marts.vru_programme_comparison",
                                                 "marts.vru_programme_effect", "marts.vru_programme_event_study"]
    # the effect estimates: after the dbt build (they read the outcome marts in the build schema),
    # then the two effect marts in their own dbt task (they read estimate_effects' tables), then
    # the same gate and publication as every mart
    assert tasks["estimate_effects"]["down"] == ["dbt_effects"] and tasks["estimate_effects"]["doc"]
    assert tasks["dbt_effects"]["down"] == ["validate_marts"]
    assert tasks["report"]["trigger_rule"] == "all_done"
    # only publish_marts announces marts, after validation (no per-model events from Cosmos)
    assert all(not t["outlets"] for name, t in tasks.items() if name.startswith("dbt"))


def test_every_task_alerts_once_per_incident_and_resolves_it_on_success(parsed: dict[str, Any]) -> None:
    for dag_id, dag in parsed["dags"].items():
        for task_id, task in dag["tasks"].items():
            where = f"{dag_id}.{task_id}"
            assert task["failure"] == ["VruIncidentNotifier"], f"{where}: on_failure_callback {task['failure']}"
            assert task["success"] == ["resolve_task_incident"], f"{where}: on_success_callback {task['success']}"
            # Airflow calls on_failure_callback after the last try only; a retry callback would
            # alert on every try
            assert task["retry"] == [], f"{where}: alerts on retries ({task['retry']})"
    assert parsed["dags"]["vru_ingest_police"]["tasks"]["ingest"]["retries"] >= 1
    assert parsed["dags"]["vru_ingest_knife_crime"]["tasks"]["check_and_load"]["retries"] >= 1


def test_ingest_dags_check_freshness_last_without_hiding_a_failure(parsed: dict[str, Any]) -> None:
    police = parsed["dags"]["vru_ingest_police"]["tasks"]
    knife = parsed["dags"]["vru_ingest_knife_crime"]["tasks"]
    for tasks, loads in ((police, "ingest"), (knife, "check_and_load")):
        check = tasks["check_freshness"]
        assert check["trigger_rule"] == "all_done" and check["down"] == [] and check["doc"]
        assert "check_freshness" in tasks[loads]["down"], f"check_freshness must run after {loads}"
    # a run's state comes from its leaves: the tasks that fail a bad night must stay leaves too
    assert police["check_failures"]["down"] == []
    assert knife["publish_raw"]["down"] == []


def test_transform_dag_explains_a_missing_manifest(tmp_path: Path) -> None:
    env = dict(os.environ, AIRFLOW_HOME=str(tmp_path), VRU_DBT_PROJECT_DIR=str(tmp_path / "nowhere"))
    done = subprocess.run([sys.executable, "-c", _INSPECT, str(REPO / "dags")], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    line = next(x for x in done.stdout.splitlines() if x.startswith("JSON:"))
    errors = json.loads(line[5:])["import_errors"]
    assert any("manifest" in e and "make setup" in e for e in errors.values()), errors
