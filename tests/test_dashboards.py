"""The Superset dashboards as code (dashboards/), checked without Superset or Docker.

Against the dbt project they chart: every exposure in _exposures.yml has its dashboard and every
dashboard its exposure, charting exactly the marts the exposure names; the datasets read only the
published `marts` schema through the read-only BI login, with the marts' contracted columns and
types (read from the model YAML files, not from the script that wrote the export); every column a
chart names is contracted, every filter value is one the column accepts; no A&E chart adds cells,
so no total stands beside a suppressed one. Against Superset's import format: the files and keys
its ImportV1 schemas require, the uuids linking them. Against docker-compose.yml: superset-init
mounts this folder and imports it before it stores the BI password. On a real warehouse: dbt
builds and publishes every mart, and the read-only BI login reads each dataset's columns from
`marts` with the declared types and runs each chart's query.

That Superset 6.0.0 itself imports the folder (and again over itself) is checked by hand with
scripts/check_superset_import.sh: docs/operations.md, "Dashboards, reports and docs".
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXPORT = ROOT / "dashboards"
MODELS = ROOT / "dbt_project" / "models"
MARTS = MODELS / "marts"
PUBLISHED = "marts"
# schemas a BI reader must never be pointed at: row-level, unchecked, or not published
HIDDEN_SCHEMAS = ("raw", "restricted", "staging", "marts_build", "audit")

sys.path.insert(0, str(ROOT / "scripts"))
import make_superset_dashboards as script  # noqa: E402


def _load(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    assert isinstance(data, dict), f"{path.relative_to(ROOT)} is not a YAML mapping"
    return data


@cache
def export() -> dict[str, dict[str, Any]]:
    """Relative path -> parsed file, for every YAML file of the export."""
    return {str(p.relative_to(EXPORT)): _load(p) for p in sorted(EXPORT.rglob("*.yaml"))}


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {path: data for path, data in export().items() if path.startswith(f"{kind}/")}


@cache
def model_yaml() -> dict[str, dict[str, Any]]:
    """Every model's YAML entry under models/, by name (the contracts as written)."""
    models = {}
    for path in MODELS.rglob("*.yml"):
        for model in (yaml.safe_load(path.read_text()) or {}).get("models") or []:
            models[model["name"]] = {**model, "_path": path}
    return models


def mart_models() -> dict[str, dict[str, Any]]:
    return {name: m for name, m in model_yaml().items() if MARTS in m["_path"].parents}


def contract(mart: str) -> dict[str, str]:
    """column -> data_type of a mart's enforced contract."""
    model = mart_models()[mart]
    enforced = (model.get("config") or {}).get("contract", {}).get("enforced")
    folder_default = "marts" in (ROOT / "dbt_project" / "dbt_project.yml").read_text()  # +contract on marts/
    assert enforced or folder_default, f"{mart}: not a contracted mart"
    return {c["name"]: c["data_type"] for c in model["columns"]}


def accepted_values(mart: str, column: str) -> set[str] | None:
    """The values a column accepts, from its accepted_values test or its `in (...)` check constraint."""
    spec = next(c for c in mart_models()[mart]["columns"] if c["name"] == column)
    for test in spec.get("data_tests") or []:
        if isinstance(test, dict) and "accepted_values" in test:
            args = test["accepted_values"].get("arguments", test["accepted_values"])
            return {str(v) for v in args["values"]}
    for constraint in spec.get("constraints") or []:
        found = re.search(r"\bin\s*\(([^)]*)\)", constraint.get("expression", ""))
        if constraint.get("type") == "check" and found:
            return {v.strip().strip("'") for v in found[1].split(",")}
    return None


@cache
def exposures() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load((MARTS / "_exposures.yml").read_text())
    return {e["name"]: e for e in data["exposures"]}


def refs(exposure: dict[str, Any]) -> set[str]:
    return {re.fullmatch(r"ref\('([^']+)'\)", d)[1] for d in exposure["depends_on"]}  # type: ignore[index]


def datasets_by_uuid() -> dict[str, dict[str, Any]]:
    return {d["uuid"]: d for d in of_kind("datasets").values()}


def charts_by_uuid() -> dict[str, dict[str, Any]]:
    return {c["uuid"]: c for c in of_kind("charts").values()}


def dashboard_charts(board: dict[str, Any]) -> list[dict[str, Any]]:
    uuids = [node["meta"]["uuid"] for node in board["position"].values()
             if isinstance(node, dict) and node.get("type") == "CHART"]
    missing = [u for u in uuids if u not in charts_by_uuid()]
    assert not missing, f"{board['dashboard_title']}: charts {missing} are not in dashboards/charts/"
    return [charts_by_uuid()[u] for u in uuids]


def chart_columns(chart: dict[str, Any]) -> set[str]:
    """Every column a chart names: axis, series, table columns, metrics, filters, sort."""
    params = chart["params"]
    named = {params.get("x_axis")} | set(params.get("groupby") or []) | set(params.get("all_columns") or [])
    for metric in params.get("metrics") or []:
        assert isinstance(metric, dict) and metric["expressionType"] == "SIMPLE", (
            f"{chart['slice_name']}: metrics must be SIMPLE (a column and an aggregate), not SQL"
        )
        named.add(metric["column"]["column_name"])
    for f in params.get("adhoc_filters") or []:
        assert f["expressionType"] == "SIMPLE", f"{chart['slice_name']}: filters must be SIMPLE, not SQL"
        named.add(f["subject"])
    for order in params.get("order_by_cols") or []:
        named.add(json.loads(order)[0])
    return {n for n in named if n}


# --------------------------------------------------------------------------------------------


def test_the_export_is_what_the_script_writes() -> None:
    manifest = json.loads(script.MANIFEST.read_text())
    expected = script.render(manifest)
    on_disk = {str(p.relative_to(EXPORT)): p.read_text() for p in EXPORT.rglob("*") if p.is_file()}
    assert set(on_disk) == set(expected), (
        f"dashboards/ differs from the script: run scripts/make_superset_dashboards.py "
        f"(extra {sorted(set(on_disk) - set(expected))}, missing {sorted(set(expected) - set(on_disk))})"
    )
    stale = [path for path, text in expected.items() if on_disk[path] != text]
    assert not stale, f"out of date, run scripts/make_superset_dashboards.py: {stale}"


def test_superset_import_format() -> None:
    """The files and required keys of Superset's ImportV1 schemas, and the uuids that link them."""
    meta = export().get("metadata.yaml")
    assert meta and meta["type"] == "Dashboard" and meta["version"] == "1.0.0", "metadata.yaml: a Dashboard export"
    required = {
        "databases": {"database_name", "sqlalchemy_uri", "uuid", "version"},
        "datasets": {"table_name", "uuid", "version", "database_uuid", "columns", "metrics"},
        "charts": {"slice_name", "viz_type", "params", "uuid", "version", "dataset_uuid"},
        "dashboards": {"dashboard_title", "position", "metadata", "uuid", "version"},
    }
    uuids: list[str] = []
    for kind, keys in required.items():
        files = of_kind(kind)
        assert files, f"dashboards/{kind}/ is empty"
        for path, data in files.items():
            assert keys <= set(data), f"{path}: missing {sorted(keys - set(data))}"
            assert data["version"] == "1.0.0", f"{path}: export version {data['version']}"
            uuids.append(str(data["uuid"]))
    assert len(uuids) == len(set(uuids)), "a uuid is used twice"
    databases = {d["uuid"] for d in of_kind("databases").values()}
    for path, dataset in of_kind("datasets").items():
        assert dataset["database_uuid"] in databases, f"{path}: its database is not in dashboards/databases/"
        assert path == f"datasets/{script.DATABASE}/{dataset['table_name']}.yaml", f"{path}: misplaced"
    for path, chart in of_kind("charts").items():
        assert chart["dataset_uuid"] in datasets_by_uuid(), f"{path}: its dataset is not in dashboards/datasets/"
        assert chart["params"]["viz_type"] == chart["viz_type"], f"{path}: viz_type differs in params"
    on_boards = [c["uuid"] for board in of_kind("dashboards").values() for c in dashboard_charts(board)]
    assert sorted(on_boards) == sorted(charts_by_uuid()), "every chart on exactly one dashboard"


def test_every_exposure_has_its_dashboard_and_back() -> None:
    boards = {Path(path).stem: board for path, board in of_kind("dashboards").items()}
    assert set(boards) == set(exposures()), (
        f"exposures without a dashboard: {sorted(set(exposures()) - set(boards))}; "
        f"dashboards without an exposure: {sorted(set(boards) - set(exposures()))}"
    )
    for name, exposure in exposures().items():
        board = boards[name]
        assert exposure["type"] == "dashboard", f"{name}: not a dashboard exposure"
        assert board["dashboard_title"] == exposure["label"], f"{name}: title is not the exposure's label"
        charted = {datasets_by_uuid()[c["dataset_uuid"]]["table_name"] for c in dashboard_charts(board)}
        assert charted == refs(exposure), (
            f"{name}: charts read {sorted(charted)}, the exposure names {sorted(refs(exposure))}"
        )


def test_datasets_read_only_the_published_marts_as_the_bi_login() -> None:
    (database,) = of_kind("databases").values()
    url = urlsplit(database["sqlalchemy_uri"])
    assert (url.scheme, url.hostname, url.port, url.path) == ("postgresql", "warehouse", 5432, "/warehouse")
    assert url.username == "vru_bi", "the read-only BI login (VRU_BI_USER's default), never the owner"
    assert url.password is None, "no password in the repo: superset-init sets it from VRU_BI_PASSWORD"
    assert not database["allow_dml"] and not database["allow_ctas"] and not database["allow_cvas"]
    assert not database["allow_file_upload"], "no uploads into the warehouse"
    for path, dataset in of_kind("datasets").items():
        assert dataset["schema"] == PUBLISHED, f"{path}: schema {dataset['schema']!r}, only `marts` is published"
        assert not dataset.get("sql"), f"{path}: a virtual dataset (SQL) could read any schema; use the table"
        assert dataset["table_name"] in mart_models(), f"{path}: {dataset['table_name']} is not a mart"
    # what Superset runs as SQL: dataset SQL and expressions, chart parameters (descriptions may
    # name audit tables in prose, as the dbt docs do)
    runs = [json.dumps(c["params"]) for c in of_kind("charts").values()]
    for dataset in of_kind("datasets").values():
        runs += [str(dataset.get("sql") or ""), *(str(c["expression"] or "") for c in dataset["columns"]),
                 *(str(m["expression"]) for m in dataset["metrics"])]
    for schema in HIDDEN_SCHEMAS:
        found = [text for text in runs if re.search(rf"\b{schema}\s*\.", text.lower())]
        assert not found, f"SQL or a chart names `{schema}`: {found[:1]}"


def test_dataset_columns_are_the_marts_contracts() -> None:
    for path, dataset in of_kind("datasets").items():
        mart = dataset["table_name"]
        columns = {c["column_name"]: c for c in dataset["columns"]}
        assert list(columns) == list(contract(mart)), (
            f"{path}: columns differ from {mart}'s contract: extra {sorted(set(columns) - set(contract(mart)))}, "
            f"missing {sorted(set(contract(mart)) - set(columns))}"
        )
        for name, data_type in contract(mart).items():
            column = columns[name]
            assert column["expression"] is None, f"{path}: {name} is computed, not the mart's column"
            base = data_type.split("(")[0].lower()
            assert column["type"].split("(")[0].lower().replace("timestamp with time zone", "timestamptz") == base, (
                f"{path}: {name} is {column['type']}, the contract says {data_type}"
            )
            assert column["is_dttm"] == (base in ("date", "timestamptz")), f"{path}: {name}: is_dttm"
        for metric in dataset["metrics"]:
            assert metric["expression"] == "COUNT(*)", f"{path}: saved metric {metric['metric_name']} computes SQL"


def test_charts_name_only_contracted_columns_and_accepted_values() -> None:
    for path, chart in of_kind("charts").items():
        mart = datasets_by_uuid()[chart["dataset_uuid"]]["table_name"]
        unknown = chart_columns(chart) - set(contract(mart))
        assert not unknown, f"{path}: {sorted(unknown)} are not columns of {mart}'s contract"
        params = chart["params"]
        if chart["viz_type"] != "table":
            assert params["metrics"] and params["x_axis"], f"{path}: a series chart needs an axis and a metric"
        for f in params.get("adhoc_filters") or []:
            allowed = accepted_values(mart, f["subject"])
            assert f["operator"] == "==", f"{path}: filter {f['subject']} {f['operator']}"
            assert allowed is not None and str(f["comparator"]) in allowed, (
                f"{path}: filter {f['subject']} == {f['comparator']!r}, the mart accepts {allowed}"
            )


def test_no_chart_adds_ae_cells() -> None:
    """Suppression (ae_assault_monthly): a chart shows each published cell or nothing. A sum over
    age bands or areas would put a total beside a suppressed cell and give it away."""
    suppressed = {m for m in mart_models() if any(c.endswith("_suppressed") for c in contract(m))}
    assert "ae_assault_monthly" in suppressed
    checked = 0
    for path, chart in of_kind("charts").items():
        mart = datasets_by_uuid()[chart["dataset_uuid"]]["table_name"]
        if mart not in suppressed:
            continue
        checked += 1
        params = chart["params"]
        for metric in params.get("metrics") or []:
            assert metric["aggregate"] in ("MAX", "MIN"), (
                f"{path}: {metric['aggregate']} over {mart} can add cells; chart one cell per point"
            )
        if chart["viz_type"] != "table":
            # one cell per point: the grain (area, month, age band) fixed by axis, series and filter
            pinned = {f["subject"] for f in params.get("adhoc_filters") or [] if f["operator"] == "=="}
            assert "age_band" in pinned or "age_band" in params["groupby"], f"{path}: age bands added up"
            assert {"force_id", "force_name"} & set(params["groupby"]), f"{path}: force areas added up"
        else:
            assert params["query_mode"] == "raw", f"{path}: a table of {mart} shows its rows, not aggregates"
    assert checked, "no chart reads a mart with suppressed cells: the check checked nothing"


@pytest.fixture(scope="module")
def superset_init() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return dict(compose["services"]["superset-init"])


def test_superset_init_imports_the_dashboards_before_the_password(superset_init: dict[str, Any]) -> None:
    mounts = {}
    for volume in superset_init.get("volumes") or []:
        source, target, *mode = volume.split(":")
        mounts[target] = (source, mode)
    folder = next((t for t, (s, _) in mounts.items() if s == "./dashboards"), None)
    assert folder, "superset-init must mount ./dashboards"
    assert mounts[folder][1] == ["ro"], "mount ./dashboards read-only"
    assert (ROOT / "dashboards" / "metadata.yaml").exists()
    script_text = superset_init["command"][2]
    lines = [shlex.split(line) for line in script_text.splitlines() if line.strip()]
    zipped = next((argv for argv in lines if argv[:4] == ["python", "-m", "zipfile", "-c"]), None)
    assert zipped and zipped[5] == folder, f"zip the mounted folder {folder} (Superset imports a ZIP)"
    assert not zipped[5].endswith("/"), "no trailing slash: the ZIP needs the folder as its root"
    steps = [argv[1] for argv in lines if argv[0] == "superset"]
    assert "import-dashboards" in steps, "superset-init must run superset import-dashboards"
    assert steps.index("init") < steps.index("import-dashboards") < steps.index("set_database_uri"), (
        "import after `superset init` (roles) and before set_database_uri: the import leaves the stored "
        f"URL without a password, set_database_uri then stores it from VRU_BI_PASSWORD; got {steps}"
    )
    imported = next(argv for argv in lines if argv[:2] == ["superset", "import-dashboards"])
    assert imported[imported.index("--path") + 1] == zipped[4], "import the ZIP just made"
    admin = next(argv for argv in lines if argv[:3] == ["superset", "fab", "create-admin"])
    assert imported[imported.index("--username") + 1] == admin[admin.index("--username") + 1], (
        "the dashboards belong to the admin superset-init creates"
    )
    (database,) = of_kind("databases").values()
    register = next(argv for argv in lines if argv[:2] == ["superset", "set_database_uri"])
    assert register[register.index("-d") + 1] == database["database_name"], (
        "set_database_uri must name the imported database, or the dashboards' database keeps no password"
    )


# --------------------------------------------------------------------------------------------
# On a real warehouse: the marts dbt builds and publishes, read as the BI login
# --------------------------------------------------------------------------------------------

PROJECT = ROOT / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"


def _dbt(url: str, tmp_path: Path, *args: str) -> None:
    import os
    import subprocess

    from vru.config import dbt_env

    # target and logs outside the checkout: the checkout's target/manifest.json is the DAGs'
    done = subprocess.run(
        [str(DBT), *args, "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        env={**os.environ, **dbt_env(url), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"},
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, f"dbt {' '.join(args)} failed:\n{done.stdout[-3000:]}"


def _drop_what_dbt_made(conn: Any) -> None:
    """Every relation of the manifest's models and seeds, published copies included (others'
    tests expect an empty warehouse)."""
    from psycopg import sql

    manifest = json.loads(script.MANIFEST.read_text())
    names = {n.get("alias") or n["name"] for n in manifest["nodes"].values() if n["resource_type"] in ("model", "seed")}
    rows = conn.execute(
        "select n.nspname, c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where c.relname = any(%s) and c.relkind in ('r', 'v', 'm', 'p')", (sorted(names),)).fetchall()
    for schema, name, kind in rows:
        what = {"v": "view", "m": "materialized view"}.get(kind, "table")
        conn.execute(sql.SQL("drop {} if exists {} cascade").format(sql.SQL(what), sql.Identifier(schema, name)))


def test_the_bi_login_reads_every_dataset_and_runs_every_chart(clean_warehouse: str, tmp_path: Path) -> None:
    """dbt builds every mart (on an empty warehouse), they are published as the transform does,
    and the read-only BI login, the one Superset connects as, reads each dataset's columns from
    `marts` with the types the export declares and runs each chart's query (its columns,
    aggregates and filters as SQL)."""
    import psycopg
    from conftest import publish_built
    from psycopg import sql
    from vru import warehouse

    _dbt(clean_warehouse, tmp_path, "seed")
    _dbt(clean_warehouse, tmp_path, "run", "--select", "+path:models/marts")
    publish_built(clean_warehouse)
    bi = warehouse.grant_bi(clean_warehouse, "bi_dashboards", "bi-dashboards-password")
    try:
        with psycopg.connect(bi) as conn:
            for path, dataset in of_kind("datasets").items():
                table = sql.Identifier(dataset["schema"], dataset["table_name"])
                names = [c["column_name"] for c in dataset["columns"]]
                cursor = conn.execute(sql.SQL("select {} from {} limit 0").format(
                    sql.SQL(", ").join(map(sql.Identifier, names)), table))
                assert [d.name for d in cursor.description or []] == names, path
                types = dict(conn.execute(
                    "select column_name, format_type(atttypid, atttypmod) from information_schema.columns c "
                    "join pg_attribute a on a.attrelid = format('%%I.%%I', c.table_schema, c.table_name)::regclass "
                    "and a.attname = c.column_name where c.table_schema = %s and c.table_name = %s",
                    (dataset["schema"], dataset["table_name"])).fetchall())
                for column in dataset["columns"]:
                    published = types[column["column_name"]].replace("timestamp with time zone", "timestamptz")
                    declared = column["type"].lower().replace("timestamp with time zone", "timestamptz")
                    assert published.split("(")[0] == declared.split("(")[0], (
                        f"{path}: {column['column_name']} is {published} in marts, the export says {column['type']}")
            for path, chart in of_kind("charts").items():
                dataset = datasets_by_uuid()[chart["dataset_uuid"]]
                params = chart["params"]
                table = sql.Identifier(dataset["schema"], dataset["table_name"])
                where = sql.SQL(" and ").join(
                    sql.SQL("{} = {}").format(sql.Identifier(f["subject"]), sql.Literal(f["comparator"]))
                    for f in params.get("adhoc_filters") or []) if params.get("adhoc_filters") else sql.SQL("true")
                if chart["viz_type"] == "table":
                    query = sql.SQL("select {} from {} where {}").format(
                        sql.SQL(", ").join(map(sql.Identifier, params["all_columns"])), table, where)
                else:
                    keys = [params["x_axis"], *params["groupby"]]
                    metrics = [sql.SQL("{}({})").format(sql.SQL(m["aggregate"]),
                                                        sql.Identifier(m["column"]["column_name"]))
                               for m in params["metrics"]]
                    query = sql.SQL("select {}, {} from {} where {} group by {}").format(
                        sql.SQL(", ").join(map(sql.Identifier, keys)), sql.SQL(", ").join(metrics), table, where,
                        sql.SQL(", ").join(map(sql.Identifier, keys)))
                try:
                    conn.execute(query).fetchall()
                except psycopg.Error as error:  # a column, type or privilege error
                    pytest.fail(f"{path}: the chart's query fails as the BI login: {error}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("select * from marts_build.stop_search_monthly limit 0")
    finally:
        with psycopg.connect(clean_warehouse, autocommit=True) as admin:
            _drop_what_dbt_made(admin)
            admin.execute("drop role if exists bi_dashboards")
