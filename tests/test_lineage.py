"""OpenLineage: where the events go, and what each task says it reads and writes.

The events themselves, emitted by a real scheduler's tasks and forming the graph raw -> staging ->
marts, are checked after the end-to-end run (tests/test_end_to_end.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from vru import lineage
from vru.config import settings

# What the extractor answers for each TaskFlow task of the real DAGs, parsed in a clean process
# against an external warehouse URL (with a password, which no dataset name may carry).
_EXTRACT = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
from vru.lineage import dataset_name
from vru.lineage_extractor import DeclaredLineageExtractor
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
out = {}
for dag_id, dag in bag.dags.items():
    for t in dag.tasks:
        if t.task_type == "_PythonDecoratedOperator":
            found = DeclaredLineageExtractor(t).extract()
            out[f"{dag_id}.{t.task_id}"] = {side: [dataset_name({"namespace": d.namespace, "name": d.name})
                                                   for d in getattr(found, side)]
                                            for side in ("inputs", "outputs")}
print("JSON:" + json.dumps(out))
"""
WAREHOUSE = "postgresql://vru_pipeline:s3cret-pw@warehouse.example:6543/vru_dw"
PG = "postgres://warehouse.example:6543/vru_dw"  # namespace postgres://host:port, name database.schema.table


@pytest.fixture(scope="module")
def declared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[str]]]:
    env = dict(os.environ, AIRFLOW_HOME=str(tmp_path_factory.mktemp("airflow_home")),
               AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__CORE__UNIT_TEST_MODE="True",
               VRU_WAREHOUSE_URL=WAREHOUSE, VRU_POLICE_API_URL="https://user:token@api.example:8443/api/?key=k",
               VRU_KNIFE_CRIME_URL="https://www.gov.uk/tables/knife.ods")
    done = subprocess.run([sys.executable, "-c", _EXTRACT, str(REPO / "dags")], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("JSON:")), None)
    assert line, f"DAG parsing or extraction crashed:\n{done.stderr[-4000:]}"
    result: dict[str, dict[str, list[str]]] = json.loads(line[len("JSON:"):])
    return result


def test_ingest_tasks_read_their_source_and_write_raw(declared: dict[str, dict[str, list[str]]]) -> None:
    # the warehouse as OpenLineage names a PostgreSQL table (and as the dbt integration names the
    # same tables from dbt's profile): namespace postgres://host:port, name database.schema.table
    police = declared["vru_ingest_police.ingest"]
    assert police == {"inputs": ["https://api.example:8443/api/stops-force"],
                      "outputs": [f"{PG}.raw.stop_searches"]}
    assert declared["vru_ingest_police.plan"]["outputs"] == [
        f"{PG}.raw.police_availability"]
    assert declared["vru_ingest_knife_crime.check_and_load"] == {
        "inputs": ["https://www.gov.uk/tables/knife.ods"],
        "outputs": [f"{PG}.raw.knife_offences"]}
    for feed, table in (("hes", "raw.sharp_object_admissions"), ("ons_pfa", "raw.pfa_knife_offences")):
        assert declared[f"vru_ingest_{feed}.check_and_load"]["outputs"] == [
            f"{PG}.{table}"], feed
    ae = declared["vru_ingest_ae.take_in"]
    assert ae["outputs"] == [f"{PG}.restricted.ae_attendances"]
    assert len(ae["inputs"]) == 1 and ae["inputs"][0].startswith("file/") and ae["inputs"][0].endswith("/landing/ae")
    # nothing of a URL's credentials or query reaches a lineage event
    text = json.dumps(declared)
    assert "s3cret" not in text and "token" not in text and "key=" not in text


def test_validation_and_publishing_tasks_name_the_tables_they_read(
        declared: dict[str, dict[str, list[str]]]) -> None:
    base = f"{PG}."
    raw = declared["vru_transform.validate_raw"]
    assert f"{base}raw.stop_searches" in raw["inputs"] and f"{base}restricted.ae_attendances" in raw["inputs"]
    assert raw["outputs"] == [f"{base}audit.validation_results"]
    marts = declared["vru_transform.validate_marts"]
    assert f"{base}staging.stg_police__stop_searches" in marts["inputs"]
    assert f"{base}marts_build.stop_search_monthly" in marts["inputs"]
    assert not [d for d in marts["inputs"] if d.startswith(f"{base}marts.")]  # the build, not what BI reads
    published = declared["vru_transform.publish_marts"]
    assert f"{base}marts_build.stop_search_monthly" in published["inputs"]
    assert f"{base}marts.stop_search_monthly" in published["outputs"]
    assert len(published["inputs"]) == len(published["outputs"]) >= 7
    # a task that declares nothing gets nothing from this extractor (the provider then reads its
    # inlets and outlets, as without it)
    assert declared["vru_transform.report"] == {"inputs": [], "outputs": []}


def test_source_names_leave_out_credentials_query_and_fragment() -> None:
    found = lineage.source("https://someone:pw@data.example.org:8443/api/?token=x#top", "/stops-force")
    assert found == lineage.Source("https://data.example.org:8443", "/api/stops-force")
    assert lineage.source("https://www.gov.uk") == lineage.Source("https://www.gov.uk", "/")


def test_events_go_to_files_under_vru_home_by_default(tmp_path: Path) -> None:
    cfg = replace(settings(), home=tmp_path)
    out = lineage.airflow_settings(cfg, {})
    transport = json.loads(out["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    assert transport == {"type": "file", "log_file_path": str(tmp_path / "lineage" / "openlineage"), "append": False}
    assert (tmp_path / "lineage").is_dir()  # the file transport does not create it
    assert out["AIRFLOW__OPENLINEAGE__EXTRACTORS"] == lineage.EXTRACTOR
    assert out["AIRFLOW__OPENLINEAGE__NAMESPACE"] == "vru"


def test_a_lineage_server_or_an_operators_own_transport_takes_over(tmp_path: Path) -> None:
    cfg = replace(settings(), home=tmp_path, lineage_url="http://marquez.internal:5000")
    http = json.loads(lineage.airflow_settings(cfg, {})["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    assert (http["type"], http["url"], http["endpoint"]) == ("http", "http://marquez.internal:5000", "api/v1/lineage")
    assert not (tmp_path / "lineage").exists()
    own: dict[str, Any] = {"AIRFLOW__OPENLINEAGE__TRANSPORT": '{"type": "console"}',
                           "AIRFLOW__OPENLINEAGE__EXTRACTORS": f"my.Extractor;{lineage.EXTRACTOR}",
                           "AIRFLOW__OPENLINEAGE__NAMESPACE": "prod"}
    out = lineage.airflow_settings(cfg, own)
    assert "AIRFLOW__OPENLINEAGE__TRANSPORT" not in out  # the operator's choice stands
    assert out["AIRFLOW__OPENLINEAGE__EXTRACTORS"] == f"my.Extractor;{lineage.EXTRACTOR}"  # ours once
    assert out["AIRFLOW__OPENLINEAGE__NAMESPACE"] == "prod"
    assert "AIRFLOW__OPENLINEAGE__TRANSPORT" not in lineage.airflow_settings(
        replace(settings(), home=tmp_path), {"OPENLINEAGE__TRANSPORT__TYPE": "console"})


def test_the_compose_stack_sets_what_the_local_runner_sets() -> None:
    import yaml

    stack = yaml.safe_load((REPO / "docker-compose.yml").read_text())["x-airflow-common"]["environment"]
    ours = {k: v for k, v in stack.items() if k.startswith("AIRFLOW__OPENLINEAGE__")}
    home = Path(stack["VRU_HOME"])
    assert ours == lineage.airflow_settings(replace(settings(), home=home, lineage_url=None), {}, create=False)


def test_edges_join_each_jobs_inputs_to_its_outputs() -> None:
    def event(kind: str, job: str, inputs: list[str], outputs: list[str]) -> dict[str, Any]:
        def ds(n: str) -> dict[str, str]:
            return {"namespace": "postgres://h:1", "name": n}
        return {"eventType": kind, "job": {"name": job}, "inputs": [ds(i) for i in inputs],
                "outputs": [ds(o) for o in outputs]}

    events = [event("START", "d.a", ["x"], ["y"]), event("COMPLETE", "d.a", ["x"], ["y", "z"]),
              event("COMPLETE", "d.b", ["y"], []), event("COMPLETE", "d.c", [], []),
              event("COMPLETE", "d.model", ["z", "w"], ["w"])]  # dbt: the built relation, read by its tests
    assert lineage.edges(events) == {("postgres://h:1/x", "d.a", "postgres://h:1/y"),
                                     ("postgres://h:1/x", "d.a", "postgres://h:1/z"),
                                     ("postgres://h:1/y", "d.b", ""),
                                     ("postgres://h:1/z", "d.model", "postgres://h:1/w")}
    assert lineage.edges(events, "START") == {("postgres://h:1/x", "d.a", "postgres://h:1/y")}
