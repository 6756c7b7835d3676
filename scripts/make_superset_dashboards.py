"""Write the Superset dashboards named in dbt_project/models/marts/_exposures.yml as Superset export YAML.

    .venv/bin/python scripts/make_superset_dashboards.py      # rewrites dashboards/

The output is Superset's import format (what "Export" in Superset writes, `superset
import-dashboards` reads once zipped): `metadata.yaml`, `databases/warehouse.yaml`,
`datasets/warehouse/<mart>.yaml`, `charts/<chart>.yaml`, `dashboards/<exposure>.yaml`. The
compose stack zips the folder and imports it at start-up (docker-compose.yml, superset-init).

Deterministic: uuids are uuid5 of the object's name, the dataset columns, types and descriptions
come from the compiled dbt manifest (the marts' enforced contracts), and the charts below name
only contracted columns. tests/test_dashboards.py checks that the files equal this script's output,
and checks them against the manifest and the exposures on its own.

Disclosure: every chart shows a mart's figures on the mart's own grain (one row per force area,
or group, and period; A&E pinned to one age band), or sums counts that the mart never suppresses
(stop and search). No chart sums A&E cells, so no total sits beside a suppressed cell.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "dashboards"
MANIFEST = ROOT / "dbt_project" / "target" / "manifest.json"
NAMESPACE = uuid.UUID("5c1f6f1e-3c1b-4d53-9a55-2f0d7a0b6e11")  # fixed: the uuids never change
VERSION = "1.0.0"  # Superset's export format version (ImportV1*Schema)
DATABASE = "warehouse"
PUBLISHED_SCHEMA = "marts"
# The read-only BI login; no password in the file: superset-init sets the URL with VRU_BI_PASSWORD
# right after the import (`superset set_database_uri`), and stores it encrypted.
DATABASE_URI = "postgresql://vru_bi@warehouse:5432/warehouse"

# Superset's generic column types for the manifest's PostgreSQL types
_TYPES = {"text": "TEXT", "integer": "INTEGER", "bigint": "BIGINT", "boolean": "BOOLEAN", "date": "DATE",
          "timestamptz": "TIMESTAMP WITH TIME ZONE"}


def superset_type(data_type: str) -> str:
    base = data_type.split("(")[0].strip().lower()
    if base == "numeric":
        return data_type.upper()
    return _TYPES[base]


def uid(kind: str, name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"vru/{kind}/{name}"))


Filter = tuple[str, str, str]  # (column, operator, value), e.g. ("coverage", "==", "published")
Metric = tuple[str, str, str]  # (aggregate, column, label), e.g. ("SUM", "searches", "Searches")


@dataclass(frozen=True)
class Chart:
    title: str
    mart: str
    kind: str  # "line", "bar" (x against metrics, series by groupby) or "table" (the mart's rows)
    x: str = ""
    grain: str = ""  # Superset time grain of a date x-axis (P1M, P3M); "" for a category axis
    metrics: tuple[Metric, ...] = ()
    groupby: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    order_by: tuple[str, bool] = ("", False)  # (column, ascending) of a table
    description: str = ""


@dataclass(frozen=True)
class Dashboard:
    exposure: str  # the exposure's name in _exposures.yml; the slug and the file name
    charts: tuple[Chart, ...] = field(default_factory=tuple)


PUBLISHED: Filter = ("coverage", "==", "published")
ALL_AGES: Filter = ("age_band", "==", "all ages")

DASHBOARDS = (
    Dashboard("stop_and_search_dashboard", (
        Chart("Stop and search: searches per month by force area", "stop_search_monthly", "line",
              x="month", grain="P1M", metrics=(("SUM", "searches", "Searches"),), groupby=("force_name",),
              filters=(PUBLISHED,),
              description=("Force-months with coverage 'published' only: a month a force did not publish "
                           "is a gap, not a zero.")),
        Chart("Stop and search: section 60 and weapon searches per month", "stop_search_monthly", "bar",
              x="month", grain="P1M",
              metrics=(("SUM", "s60_searches", "Section 60 searches"), ("SUM", "weapon_searches", "Weapon searches")),
              filters=(PUBLISHED,),
              description=("All published force-months of the month; compare with s60_relaxed (the "
                           "relaxation of section 60 authorisations).")),
        Chart("Stop and search: searches per month, VRU areas and other areas", "stop_search_monthly", "line",
              x="month", grain="P1M", metrics=(("SUM", "searches", "Searches"),), groupby=("is_vru_area",),
              filters=(PUBLISHED,)),
        Chart("Stop and search by force area and month", "stop_search_monthly", "table",
              columns=("force_name", "month", "coverage", "searches", "s60_searches", "weapon_searches", "arrests",
                       "arrest_rate", "outcome_linked_finds", "searches_outcome_link_recorded", "find_rate",
                       "under_25_searches", "is_vru_area", "s60_relaxed"),
              order_by=("month", False)),
    )),
    Dashboard("knife_crime_dashboard", (
        Chart("Knife crime: offences per 100,000 residents by force area", "knife_crime_quarterly", "line",
              x="quarter_start", grain="P3M", metrics=(("MAX", "rate_per_100k", "Rate per 100,000"),),
              groupby=("force_id",),
              description=("One row per force area and quarter: the mart's own rate (check is_comparable "
                           "and series_breaks before comparing areas).")),
        Chart("Knife crime: offences by force area and quarter", "knife_crime_quarterly", "table",
              columns=("force_id", "financial_year", "financial_quarter", "coverage", "total_offences", "homicide",
                       "attempted_murder", "threats_to_kill", "assault_injury_or_intent", "robbery", "rape",
                       "sexual_assault", "withheld_figures", "rate_per_100k", "population_source", "is_vru_area",
                       "is_comparable", "series_breaks", "is_revised"),
              order_by=("quarter_start", False)),
        Chart("ONS: knife offences over 12 months by force area", "pfa_knife_crime_12_months", "line",
              x="period_end", grain="P3M", metrics=(("MAX", "offences", "Offences in the 12 months"),),
              groupby=("force_id",), filters=(("offence", "==", "total_selected"),),
              description="Rolling 12-month totals as the ONS publishes them (each point is a year, not a quarter)."),
        Chart("ONS: knife offences and share of offences involving a knife", "pfa_knife_crime_12_months", "table",
              columns=("force_id", "area_code", "offence", "period_label", "offences", "offences_marker",
                       "percent_knife", "percent_knife_marker", "is_revised", "first_published_offences", "edition"),
              order_by=("period_end", False)),
    )),
    Dashboard("vru_programme_outcomes_dashboard", (
        Chart("Knife offences against the 2018/19 baseline (index 100): VRU and other areas",
              "vru_programme_comparison", "line", x="quarter_start", grain="P3M",
              metrics=(("MAX", "knife_offences_index", "Index (2018/19 = 100)"),),
              groupby=("group_name",),
              description="One row per group and quarter: group rates are sums over sums (vru_programme_comparison)."),
        Chart("A&E knife or sharp object assaults against the 2018/19 baseline (index 100)", "vru_programme_comparison",
              "line", x="quarter_start", grain="P3M", metrics=(("MAX", "ae_knife_index", "Index (2018/19 = 100)"),),
              groupby=("group_name",)),
        Chart("Programme measures by group and quarter", "vru_programme_comparison", "table",
              columns=("group_name", "financial_year", "financial_quarter", "areas_in_group", "population_source",
                       "knife_offences_rate_per_100k", "knife_offences_index",
                       "knife_offences_index_gap_vru_vs_non_vru",
                       "ae_knife_rate_per_100k", "ae_knife_index", "ae_knife_index_gap_vru_vs_non_vru",
                       "knife_homicides_rate_per_100k", "knife_homicides_index", "searches_per_1000",
                       "hes_england_admissions_per_100k_fy"),
              order_by=("quarter_start", False)),
        Chart("Programme measures by force area and quarter, against each area's baseline", "vru_outcomes_quarterly",
              "table",
              columns=("force_name", "financial_year", "financial_quarter", "is_vru_area",
                       "knife_offences_rate_per_100k",
                       "knife_offences_change_pct", "knife_offences_baseline_coverage", "ae_knife_rate_per_100k",
                       "ae_knife_change_pct", "ae_coverage", "knife_homicides", "knife_homicides_change_pct",
                       "searches_per_1000", "population_source"),
              order_by=("quarter_start", False)),
    )),
    Dashboard("hospital_violence_dashboard", (
        Chart("A&E knife or sharp object assault attendances per month by force area (all ages)",
              "ae_assault_monthly", "line", x="month", grain="P1M",
              metrics=(("MAX", "knife_or_sharp_attendances", "Knife or sharp object attendances"),),
              groupby=("force_name",), filters=(ALL_AGES,),
              description="One row per force area and month: a suppressed small count is a gap, never a figure."),
        Chart("A&E assault attendances by force area, month and age band", "ae_assault_monthly", "table",
              columns=("force_name", "month", "age_band", "attendances", "attendances_suppressed",
                       "knife_or_sharp_attendances", "knife_or_sharp_suppressed", "under_25_share", "coverage",
                       "sites_expected", "sites_reporting", "is_vru_area"),
              order_by=("month", False)),
        Chart("HES: admissions for assault by a sharp object per financial year (England)",
              "sharp_object_admissions_yearly", "bar", x="financial_year",
              metrics=(("MAX", "admissions", "Admissions"), ("MAX", "age_0_24", "Episodes, ages 0-24")),
              groupby=("geography_name",)),
        Chart("HES: admissions for assault by a sharp object", "sharp_object_admissions_yearly", "table",
              columns=("geography_name", "financial_year", "finished_consultant_episodes", "admissions",
                       "emergency_admissions", "age_0_24", "age_25_plus", "male", "female", "gender_unknown",
                       "withheld_figures", "is_revised"),
              order_by=("fy_start", False)),
    )),
)


# --------------------------------------------------------------------------------------------
# The export files
# --------------------------------------------------------------------------------------------


def marts(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The marts' manifest nodes by name (the models under models/marts/)."""
    return {n["name"]: n for n in manifest["nodes"].values()
            if n["resource_type"] == "model" and n["fqn"][1] == "marts"}


def exposures(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in manifest["exposures"].values()}


def database_file() -> dict[str, Any]:
    return {
        "database_name": DATABASE,
        "sqlalchemy_uri": DATABASE_URI,
        "cache_timeout": None,
        "expose_in_sqllab": True,
        "allow_run_async": False,
        "allow_ctas": False,
        "allow_cvas": False,
        "allow_dml": False,
        "allow_file_upload": False,
        # SQL Lab sees what the BI login may read (the published marts and `audit`, never `restricted`
        # or the build: the warehouse's grants decide that, not this file); uploads stay off
        "extra": {"allows_virtual_table_explore": True, "schemas_allowed_for_file_upload": []},
        "uuid": uid("database", DATABASE),
        "version": VERSION,
    }


def _one_line(text: str) -> str:
    return " ".join(text.split())


def dataset_file(node: dict[str, Any]) -> dict[str, Any]:
    dates = [c["name"] for c in node["columns"].values()
             if (c.get("data_type") or "").lower() in ("date", "timestamptz")]
    return {
        "table_name": node["name"],
        "main_dttm_col": dates[0] if dates else None,
        "description": _one_line(node["description"]),
        "default_endpoint": None,
        "offset": 0,
        "cache_timeout": None,
        "catalog": None,
        "schema": PUBLISHED_SCHEMA,
        "sql": None,
        "params": None,
        "template_params": None,
        "filter_select_enabled": True,
        "fetch_values_predicate": None,
        "extra": None,
        "normalize_columns": False,
        "always_filter_main_dttm": False,
        "uuid": uid("dataset", node["name"]),
        "metrics": [{"metric_name": "count", "verbose_name": "Rows", "metric_type": "count", "expression": "COUNT(*)",
                     "description": "Rows of the mart (force area-periods, not events)", "d3format": None,
                     "currency": None, "extra": None, "warning_text": None}],
        "columns": [{
            "column_name": c["name"],
            "verbose_name": None,
            "is_dttm": (c["data_type"] or "").lower() in ("date", "timestamptz"),
            "is_active": True,
            "type": superset_type(c["data_type"]),
            "advanced_data_type": None,
            "groupby": True,
            "filterable": True,
            "expression": None,
            "description": _one_line(c.get("description") or ""),
            "python_date_format": None,
            "extra": None,
        } for c in node["columns"].values()],
        "version": VERSION,
        "database_uuid": uid("database", DATABASE),
    }


def _filter(f: Filter) -> dict[str, Any]:
    column, operator, value = f
    return {"clause": "WHERE", "subject": column, "operator": operator, "comparator": value,
            "expressionType": "SIMPLE"}


def _metric(m: Metric) -> dict[str, Any]:
    aggregate, column, label = m
    return {"expressionType": "SIMPLE", "column": {"column_name": column}, "aggregate": aggregate,
            "label": label, "hasCustomLabel": True, "optionName": f"metric_{aggregate.lower()}_{column}"}


def chart_params(chart: Chart) -> dict[str, Any]:
    common = {"datasource": f"{chart.mart}__table", "viz_type": viz_type(chart),
              "adhoc_filters": [_filter(f) for f in chart.filters], "extra_form_data": {}}
    if chart.kind == "table":
        column, ascending = chart.order_by
        return {**common, "query_mode": "raw", "all_columns": list(chart.columns),
                "order_by_cols": [json.dumps([column, ascending])] if column else [],
                "groupby": [], "percent_metrics": [], "row_limit": 10000, "server_page_length": 50,
                "order_desc": True, "table_timestamp_format": "%Y-%m-%d", "show_cell_bars": False,
                "allow_render_html": False}
    params = {**common, "x_axis": chart.x, "metrics": [_metric(m) for m in chart.metrics],
              "groupby": list(chart.groupby), "row_limit": 10000, "order_desc": True, "x_axis_sort_asc": True,
              "truncate_metric": True, "show_empty_columns": True, "comparison_type": "values",
              "annotation_layers": [], "show_legend": True, "legendType": "scroll", "legendOrientation": "top",
              "rich_tooltip": True, "y_axis_format": "SMART_NUMBER", "color_scheme": "supersetColors",
              "only_total": True}
    if chart.grain:
        params.update(time_grain_sqla=chart.grain, x_axis_time_format="%Y-%m-%d", tooltipTimeFormat="%Y-%m-%d")
    return params


def viz_type(chart: Chart) -> str:
    return {"line": "echarts_timeseries_line", "bar": "echarts_timeseries_bar", "table": "table"}[chart.kind]


def chart_file(chart: Chart) -> dict[str, Any]:
    return {"slice_name": chart.title, "description": chart.description or None, "certified_by": None,
            "certification_details": None, "viz_type": viz_type(chart), "params": chart_params(chart),
            "query_context": None, "cache_timeout": None, "uuid": uid("chart", chart.title), "version": VERSION,
            "dataset_uuid": uid("dataset", chart.mart)}


def dashboard_file(board: Dashboard, exposure: dict[str, Any]) -> dict[str, Any]:
    """Two charts a row, in the order above, under the exposure's label and description."""
    header = "HEADER_ID"
    position: dict[str, Any] = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
        header: {"type": "HEADER", "id": header, "meta": {"text": exposure["label"]}},
    }
    intro = "MARKDOWN-about"
    intro_row = "ROW-about"
    position[intro_row] = {"type": "ROW", "id": intro_row, "children": [intro], "parents": ["ROOT_ID", "GRID_ID"],
                           "meta": {"background": "BACKGROUND_TRANSPARENT"}}
    position[intro] = {"type": "MARKDOWN", "id": intro, "children": [], "parents": ["ROOT_ID", "GRID_ID", intro_row],
                       "meta": {"width": 12, "height": 20, "code": (
                           f"{_one_line(exposure['description'])}\n\n"
                           "Read from the published `marts` schema. What each column means: the dbt docs, "
                           "linked from the data quality report (Airflow, menu Browse).")}}
    position["GRID_ID"]["children"].append(intro_row)
    for i, chart in enumerate(board.charts):
        row = f"ROW-{i // 2}"
        if row not in position:
            position[row] = {"type": "ROW", "id": row, "children": [], "parents": ["ROOT_ID", "GRID_ID"],
                             "meta": {"background": "BACKGROUND_TRANSPARENT"}}
            position["GRID_ID"]["children"].append(row)
        key = f"CHART-{i}"
        position[row]["children"].append(key)
        position[key] = {"type": "CHART", "id": key, "children": [], "parents": ["ROOT_ID", "GRID_ID", row],
                         "meta": {"width": 6, "height": 60 if chart.kind == "table" else 50,
                                  "chartId": i + 1, "uuid": uid("chart", chart.title), "sliceName": chart.title}}
    return {
        "dashboard_title": exposure["label"],
        "description": None,
        "css": "",
        "slug": board.exposure.replace("_", "-"),
        "certified_by": "",
        "certification_details": "",
        "published": True,
        "uuid": uid("dashboard", board.exposure),
        "position": position,
        "metadata": {"color_scheme": "supersetColors", "refresh_frequency": 0, "expanded_slices": {},
                     "label_colors": {}, "timed_refresh_immune_slices": [], "cross_filters_enabled": True,
                     "native_filter_configuration": [], "chart_configuration": {}},
        "version": VERSION,
    }


def file_name(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", title).strip("_")[:100] + ".yaml"


def render(manifest: dict[str, Any]) -> dict[str, str]:
    """Relative path -> YAML text of every file of the export."""
    nodes = marts(manifest)
    named = exposures(manifest)
    files: dict[str, Any] = {
        "metadata.yaml": {"version": VERSION, "type": "Dashboard", "timestamp": "2026-01-01T00:00:00+00:00"},
        f"databases/{DATABASE}.yaml": database_file(),
    }
    used = sorted({c.mart for board in DASHBOARDS for c in board.charts})
    for mart in used:
        files[f"datasets/{DATABASE}/{mart}.yaml"] = dataset_file(nodes[mart])
    for board in DASHBOARDS:
        for chart in board.charts:
            files[f"charts/{file_name(chart.title)}"] = chart_file(chart)
        files[f"dashboards/{board.exposure}.yaml"] = dashboard_file(board, named[board.exposure])
    header = ("# Generated by scripts/make_superset_dashboards.py from the dbt manifest: edit the script, "
              "not this file.\n")
    return {path: header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)
            for path, data in files.items()}


def main() -> int:
    if not MANIFEST.exists():
        print(f"{MANIFEST} is missing: run `.venv/bin/vru dbt-parse` first", file=sys.stderr)
        return 1
    files = render(json.loads(MANIFEST.read_text()))
    for old in OUT.rglob("*.yaml") if OUT.exists() else ():
        if str(old.relative_to(OUT)) not in files:
            old.unlink()
    for path, text in files.items():
        target = OUT / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    print(f"wrote {len(files)} files under {OUT.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
