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
        "summary": getattr(dag.timetable, "expression", None),
        "timezone": str(getattr(dag.timetable, "timezone", "")),
        "schedule_assets": [a.name for a in getattr(getattr(dag.timetable, "asset_condition", None),
                                                    "objects", [])],
        "tasks": {t.task_id: {"down": sorted(t.downstream_task_ids),
                              "outlets": [getattr(o, "name", str(o)) for o in t.outlets],
                              "pool": t.pool, "trigger_rule": getattr(t.trigger_rule, "value", t.trigger_rule),
                              "doc": bool(t.doc_md or getattr(t, "doc", None))}
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
    assert set(parsed["dags"]) == {"vru_ingest_police", "vru_ingest_knife_crime", "vru_transform"}
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
    assert tasks["ingest"]["down"] == ["check_failures", "publish_raw"]
    assert tasks["publish_raw"]["outlets"] == ["raw.stop_searches"]
    assert tasks["check_failures"]["trigger_rule"] == "all_done"
    assert all(t["doc"] for t in tasks.values())


def test_knife_crime_dag_checks_nightly_and_publishes_only_a_new_edition(parsed: dict[str, Any]) -> None:
    dag = parsed["dags"]["vru_ingest_knife_crime"]
    assert dag["timetable"] == "CronTriggerTimetable" and dag["summary"] == "15 2 * * *"
    assert "Europe/London" in dag["timezone"]
    tasks = dag["tasks"]
    assert tasks["check_and_load"]["down"] == ["publish_raw"]
    assert tasks["publish_raw"]["outlets"] == ["raw.knife_offences"]
    assert all(t["doc"] for t in tasks.values())


def test_transform_dag_is_asset_scheduled_and_gates_the_mart_on_validation(parsed: dict[str, Any]) -> None:
    dag = parsed["dags"]["vru_transform"]
    assert sorted(dag["schedule_assets"]) == ["raw.knife_offences", "raw.stop_searches"]
    tasks = dag["tasks"]
    dbt_runs = {t for t in tasks if t.startswith("dbt.") and t.endswith(".run")}
    assert {"dbt.stg_police__stop_searches.run", "dbt.stop_search_monthly.run"} <= dbt_runs
    # one task per model; the raw gate comes before every dbt task, the mart gate after the mart
    assert all(t.startswith("dbt.") for t in tasks["validate_raw"]["down"])

    def descendants(task_id: str) -> set[str]:
        seen: set[str] = set()
        todo = [task_id]
        while todo:
            for down in tasks[todo.pop()]["down"]:
                if down not in seen:
                    seen.add(down)
                    todo.append(down)
        return seen

    assert all("validate_marts" in descendants(t) for t in tasks if t.startswith("dbt."))
    assert "dbt.stop_search_monthly.run" in descendants("dbt.stg_police__stop_searches.run")
    assert tasks["validate_marts"]["down"] == ["publish_marts"]
    assert tasks["publish_marts"]["outlets"] == ["marts.stop_search_monthly", "marts.knife_crime_quarterly"]
    assert "dbt.knife_crime_quarterly.run" in descendants("dbt.stg_home_office__knife_offences.run")
    assert tasks["report"]["trigger_rule"] == "all_done"


def test_transform_dag_explains_a_missing_manifest(tmp_path: Path) -> None:
    env = dict(os.environ, AIRFLOW_HOME=str(tmp_path), VRU_DBT_PROJECT_DIR=str(tmp_path / "nowhere"))
    done = subprocess.run([sys.executable, "-c", _INSPECT, str(REPO / "dags")], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    line = next(x for x in done.stdout.splitlines() if x.startswith("JSON:"))
    errors = json.loads(line[5:])["import_errors"]
    assert any("manifest" in e and "make setup" in e for e in errors.values()), errors
