"""The outcomes report: the outcome marts' own numbers, missing figures in words, charts with gaps.

Two warehouses: the marts as tables with exactly the contract's columns (from
dbt_project/models/marts/outcomes/_outcomes__models.yml) holding hand-made rows (not real figures), so every
measure has several quarters and a NULL in the middle; and the marts built by dbt from hand-made
knife crime editions, as the nightly transform builds them. Pages are read in headless Chromium
(tests/browser.py) and compared with what the marts hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from browser import Rendered, render, serve
from conftest import publish_built
from test_dbt_knife_crime import OFFENCES, load
from test_dbt_outcomes import MARTS, dbt_build
from vru.cli import main
from vru.config import settings
from vru.outcomes_report import MEASURES, write_outcomes_report
from vru.report import write_report

REPO = Path(__file__).resolve().parents[1]
CONTRACT = REPO / "dbt_project" / "models" / "marts" / "outcomes" / "_outcomes__models.yml"
QUARTERS = [(2018, 1), (2018, 2), (2018, 3), (2018, 4), (2019, 1), (2019, 2), (2019, 3)]
D = Decimal


def _quarter_start(fy_start: int, quarter: int) -> date:
    return date(fy_start + (quarter == 4), {1: 4, 2: 7, 3: 10, 4: 1}[quarter], 1)


def _series(values: list[Any]) -> list[Any]:
    return [None if v is None else D(v) for v in values]


# Hand-made group figures per quarter (2018/19 Q1 to 2019/20 Q3). The non-VRU areas have no
# complete knife offences figure in 2019/20 Q1: no rate, no index, no gap that quarter.
GROUP_ROWS: dict[str, dict[str, list[Any]]] = {
    "VRU areas": {
        "knife_offences_rate_per_100k": _series(["10.0000", "12.0000", "8.0000", "10.0000", "13.0000", "11.5000",
                                                 "9.2500"]),
        "knife_offences_index": _series(["100.0", "120.0", "80.0", "100.0", "130.0", "115.0", "92.5"]),
        "knife_offences_index_gap_vru_vs_non_vru": _series(["0.0", "-5.0", "5.0", "0.0", None, "5.0", "3.5"]),
        "knife_offences_areas_contributing": [20] * 7,
        "ae_knife_rate_per_100k": _series([None, None, None, None, "1.2000", "1.5000", "1.1000"]),
        "ae_knife_areas_contributing": [0, 0, 0, 0, 2, 2, 2],
        "knife_homicides_rate_per_100k": _series(["0.0400", "0.0300", "0.0500", "0.0400", "0.0350", "0.0300",
                                                  "0.0250"]),
        "knife_homicides_index": _series(["100.0", "75.0", "125.0", "100.0", "87.5", "75.0", "62.5"]),
        "knife_homicides_index_gap_vru_vs_non_vru": _series(["0.0", "-75.0", "75.0", "0.0", "-37.5", "-25.0",
                                                             "-12.5"]),
        "knife_homicides_areas_contributing": [20] * 7,
        "searches_per_1000": _series(["1.50", "1.60", "1.40", "1.55", "1.70", "1.65", "1.45"]),
        "stop_search_areas_contributing": [20] * 7,
    },
    "non-VRU areas": {
        "knife_offences_rate_per_100k": _series(["8.0000", "10.0000", "6.0000", "8.0000", None, "8.8000",
                                                 "7.1234"]),
        "knife_offences_index": _series(["100.0", "125.0", "75.0", "100.0", None, "110.0", "89.0"]),
        "knife_offences_index_gap_vru_vs_non_vru": _series(["0.0", "-5.0", "5.0", "0.0", None, "5.0", "3.5"]),
        "knife_offences_areas_contributing": [23, 23, 23, 23, 0, 23, 23],
        "ae_knife_rate_per_100k": _series([None, None, None, None, "0.9000", "0.8000", "0.9500"]),
        "ae_knife_areas_contributing": [0, 0, 0, 0, 1, 1, 1],
        "knife_homicides_rate_per_100k": _series(["0.0200", "0.0300", "0.0100", "0.0200", "0.0250", "0.0200",
                                                  "0.0150"]),
        "knife_homicides_index": _series(["100.0", "150.0", "50.0", "100.0", "125.0", "100.0", "75.0"]),
        "knife_homicides_index_gap_vru_vs_non_vru": _series(["0.0", "-75.0", "75.0", "0.0", "-37.5", "-25.0",
                                                             "-12.5"]),
        "knife_homicides_areas_contributing": [23] * 7,
        "searches_per_1000": _series(["0.80", "0.85", "0.75", "0.90", "0.95", "0.85", "0.70"]),
        "stop_search_areas_contributing": [23] * 7,
    },
}
AREA_ROWS = [  # the latest quarter, 2019/20 Q3
    {"force_id": "merseyside", "force_name": "Merseyside Police", "in_vru_programme": True, "is_vru_area": True,
     "ae_knife_attendances": None, "ae_knife_attendances_suppressed": True, "ae_coverage": "suppressed",
     "ae_months_complete": 3, "ae_knife_baseline_coverage": "no baseline",
     "knife_offences": 130, "knife_offences_coverage": "complete", "knife_offences_is_comparable": True,
     "knife_offences_rate_per_100k": D("13.00"), "knife_offences_baseline": D("100.00"),
     "knife_offences_change_pct": D("30.0"), "knife_offences_baseline_coverage": "complete",
     "knife_homicides": 3, "knife_homicides_baseline": D("1.00"), "knife_homicides_change_pct": D("200.0"),
     "knife_homicides_baseline_coverage": "complete",
     "searches": 150, "stop_search_coverage": "partial", "stop_search_months_published": 2},
    {"force_id": "west-midlands", "force_name": "West Midlands Police", "in_vru_programme": True, "is_vru_area": True,
     "ae_knife_attendances": 1234, "ae_knife_attendances_suppressed": False, "ae_coverage": "complete",
     "ae_months_complete": 3, "ae_knife_rate_per_100k": D("44.76"), "ae_knife_baseline_coverage": "no baseline",
     "knife_offences": 200, "knife_offences_coverage": "partial", "knife_offences_is_comparable": True,
     "knife_offences_baseline": D("180.25"), "knife_offences_baseline_coverage": "complete",
     "knife_homicides": None, "knife_homicides_baseline_coverage": "no baseline",
     "searches": 4321, "stop_search_coverage": "complete", "stop_search_months_published": 3,
     "searches_per_1000": D("1.57")},
    {"force_id": "durham", "force_name": "Durham Constabulary", "in_vru_programme": False, "is_vru_area": False,
     "ae_knife_attendances": None, "ae_knife_attendances_suppressed": False,
     "ae_coverage": "no A&E data for this area", "ae_months_complete": 0, "ae_knife_baseline_coverage": "no baseline",
     "knife_offences": None, "knife_offences_coverage": "no data", "knife_offences_baseline_coverage": "no baseline",
     "knife_homicides": None, "knife_homicides_baseline_coverage": "no baseline",
     "searches": 60, "stop_search_coverage": "complete", "stop_search_months_published": 3,
     "searches_per_1000": D("0.12")},
]


def _create_contract_tables(conn: psycopg.Connection) -> None:
    """The two marts as empty tables with the contract's columns and types (no dbt needed)."""
    models = {m["name"]: m for m in yaml.safe_load(CONTRACT.read_text())["models"]}
    for mart in MARTS:
        columns = ", ".join(f'{c["name"]} {c["data_type"]}' for c in models[mart]["columns"])
        conn.execute(f"create table marts.{mart} ({columns})")


def _insert(conn: psycopg.Connection, table: str, row: dict[str, Any]) -> None:
    names = ", ".join(row)
    conn.execute(f"insert into {table} ({names}) values ({', '.join(['%s'] * len(row))})", list(row.values()))


@pytest.fixture
def marts(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """Hand-made outcome marts; dropped afterwards (dbt-building tests make their own)."""
    for mart in MARTS:
        conn.execute(f"drop table if exists marts.{mart} cascade")
    _create_contract_tables(conn)
    source = ("ONS mid-2019 estimates, original edition (before Census 2021; later revised by ONS), by police force "
              "area; Black/White search ratio: Census 2011 residents by ethnic group")
    for group, figures in {**GROUP_ROWS, "England and Wales": {}}.items():
        for i, (fy_start, quarter) in enumerate(QUARTERS):
            row: dict[str, Any] = {
                "group_name": group, "financial_year": f"{fy_start}/{(fy_start + 1) % 100:02d}", "fy_start": fy_start,
                "financial_quarter": quarter, "quarter_start": _quarter_start(fy_start, quarter),
                "areas_in_group": {"VRU areas": 20, "non-VRU areas": 23}.get(group, 43), "population_source": source,
                "ae_knife_areas_excluded": 0, "knife_offences_areas_excluded": 0, "knife_homicides_areas_excluded": 0,
                "stop_search_areas_excluded": 0}
            row.update({column: values[i] for column, values in figures.items()})
            if group == "England and Wales":  # never plotted: the charts compare the two groups
                row.update({"knife_offences_rate_per_100k": D("999.0000"), "knife_offences_areas_contributing": 43})
            _insert(conn, "marts.vru_programme_comparison", row)
    for area in AREA_ROWS:
        _insert(conn, "marts.vru_outcomes_quarterly", {
            "financial_year": "2019/20", "fy_start": 2019, "financial_quarter": 3,
            "quarter_start": date(2019, 10, 1), "population_source": source, **area})
    yield conn
    for mart in MARTS:
        conn.execute(f"drop table if exists marts.{mart} cascade")


def _dicts(conn: psycopg.Connection, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(query, params).fetchall()


def _shown(target: Path) -> Rendered:
    """The page in Chromium: every chart's lines and markers, every table's cells (value or words)."""
    with serve(target.parent) as base:
        return render(f"{base}/{target.name}", {
            "charts": "Object.fromEntries([...document.querySelectorAll('svg.chart')].map(s => [s.dataset.measure, {"
                      "visible: s.getBoundingClientRect().height > 0,"
                      "lines: [...s.querySelectorAll('polyline')].map(p => ({group: p.dataset.group,"
                      "  xs: [...p.points].map(pt => pt.x)})),"
                      "marks: [...s.querySelectorAll('circle')].map(c => ({group: c.dataset.group,"
                      "  quarter: c.dataset.quarter, value: c.dataset.value, x: +c.getAttribute('cx')}))}]))",
            "tables": "Object.fromEntries([...document.querySelectorAll('table')].map(t => [t.id,"
                      "[...t.tBodies[0].rows].map(r => [...r.cells].map("
                      "c => c.dataset.value ?? c.textContent.trim()))]))",
            "leads": "Object.fromEntries([...document.querySelectorAll('p.lead[id]')].map(p => [p.id, {"
                     "text: p.innerText, gap: p.querySelector('[data-gap]')?.dataset.gap ?? null}]))",
            "title": "document.title",
        })


def _expected_data_table(conn: psycopg.Connection, key: str) -> list[list[Any]]:
    """What the chart's table must show: the mart's values as stored, NULL as (any) words."""
    m = next(m for m in MEASURES if m.key == key)
    rows = _dicts(conn, "select * from marts.vru_programme_comparison where group_name <> 'England and Wales' "
                        "order by quarter_start, group_name = 'non-VRU areas'")
    out = []
    for vru, other in zip(rows[::2], rows[1::2], strict=True):
        row = [f"{vru['financial_year']} Q{vru['financial_quarter']}", vru[m.group_rate], other[m.group_rate]]
        if m.index and m.gap:
            row += [vru[m.index], other[m.index], vru[m.gap]]
        row += [vru[m.contributing], other[m.contributing]]
        out.append([None if v is None else str(v) for v in row])
    return out


def _same(shown: list[list[Any]], expected: list[list[Any]]) -> None:
    assert len(shown) == len(expected)
    for page_row, mart_row in zip(shown, expected, strict=True):
        for cell, value in zip(page_row, mart_row, strict=True):
            if value is None:  # a NULL is said in words, never a number
                assert cell and not any(ch.isdigit() for ch in cell.split(":")[0]), (page_row, mart_row)
            else:
                assert cell == value, (page_row, mart_row)


def test_the_page_shows_the_marts_numbers_and_draws_nulls_as_gaps(marts: psycopg.Connection,
                                                                   clean_warehouse: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRU_WAREHOUSE_URL", clean_warehouse)
    target = write_outcomes_report(cfg=settings())
    assert target == settings().reports_dir / "outcomes.html" and not target.with_suffix(".tmp").exists()
    shown = _shown(target)
    assert shown.console_errors == [] and shown.page_errors == [] and shown.failed_requests == [], shown
    assert shown.title == "Programme outcomes: VRU areas against the other areas"

    # every chart has data: a visible SVG with a line of at least two quarters, two groups only
    charts = shown.values["charts"]
    assert set(charts) == {"ae_knife", "knife_offences", "knife_homicides", "stop_search"}
    for key, chart in charts.items():
        assert chart["visible"] and any(len(line["xs"]) >= 2 for line in chart["lines"]), key
        assert {line["group"] for line in chart["lines"]} == {"VRU areas", "non-VRU areas"}, key
    # the markers carry the mart's rates; England and Wales (999) is not drawn
    comparison = _dicts(marts, "select group_name, financial_year, financial_quarter, knife_offences_rate_per_100k "
                               "from marts.vru_programme_comparison where group_name <> 'England and Wales'")
    assert sorted((m["group"], m["quarter"], m["value"]) for m in charts["knife_offences"]["marks"]) == sorted(
        (r["group_name"], f"{r['financial_year']} Q{r['financial_quarter']}", str(r["knife_offences_rate_per_100k"]))
        for r in comparison if r["knife_offences_rate_per_100k"] is not None)

    # the non-VRU areas' NULL in 2019/20 Q1 is a gap, not a 0: two lines (4 and 2 quarters), no point there
    knife = charts["knife_offences"]
    other_lines = [line["xs"] for line in knife["lines"] if line["group"] == "non-VRU areas"]
    assert [len(xs) for xs in other_lines] == [4, 2]
    gap_x = next(m["x"] for m in knife["marks"] if m["group"] == "VRU areas" and m["quarter"] == "2019/20 Q1")
    assert all(abs(x - gap_x) > 1 for xs in other_lines for x in xs)
    assert not [m for m in knife["marks"] if m["group"] == "non-VRU areas" and m["quarter"] == "2019/20 Q1"]
    # the A&E lines start in 2019/20: the quarters before have no rate and no line
    assert [len(line["xs"]) for line in charts["ae_knife"]["lines"]] == [3, 3]

    # the chart tables hold the mart's values exactly; a NULL is words
    for m in MEASURES:
        _same(shown.values["tables"][f"{m.key}-data"], _expected_data_table(marts, m.key))
    assert "no figure: no area's figure is complete" in shown.values["tables"]["knife_offences-data"][4][2]

    # lead paragraphs: the latest gap as the mart gives it
    latest_gap = marts.execute(
        "select knife_offences_index_gap_vru_vs_non_vru from marts.vru_programme_comparison "
        "where group_name = 'VRU areas' and knife_offences_index_gap_vru_vs_non_vru is not null "
        "order by quarter_start desc limit 1").fetchone()
    leads = shown.values["leads"]
    assert latest_gap is not None and leads["knife_offences-lead"]["gap"] == str(latest_gap[0]) == "3.5"
    assert "In 2019/20 Q3" in leads["knife_offences-lead"]["text"] and "+3.5 index points" in \
        leads["knife_offences-lead"]["text"]
    assert leads["knife_homicides-lead"]["gap"] == "-12.5" and "did better" in leads["knife_homicides-lead"]["text"]
    assert leads["ae_knife-lead"]["gap"] is None and "no VRU vs non-VRU gap" in leads["ae_knife-lead"]["text"]
    assert leads["stop_search-lead"]["gap"] is None


def test_area_tables_show_the_marts_values_and_missing_figures_in_words(
        marts: psycopg.Connection, clean_warehouse: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRU_WAREHOUSE_URL", clean_warehouse)
    target = write_outcomes_report(cfg=settings())
    tables = _shown(target).values["tables"]
    area = {r["force_id"]: r for r in _dicts(marts, "select * from marts.vru_outcomes_quarterly")}

    def row(key: str, force: str) -> list[str]:
        name = area[force]["force_name"]
        return next(r for r in tables[f"{key}-areas"] if r[0] == name)

    # Area, VRU area in the quarter, Quarter, Figure, Rate, Baseline, Change, Coverage
    assert row("knife_offences", "merseyside")[1:7] == [
        "yes", "2019/20 Q3", str(area["merseyside"]["knife_offences"]),
        str(area["merseyside"]["knife_offences_rate_per_100k"]), str(area["merseyside"]["knife_offences_baseline"]),
        str(area["merseyside"]["knife_offences_change_pct"])]
    assert row("knife_offences", "durham")[3:7] == ["missing: not in the Home Office table"] * 2 + [
        "no baseline (2018/19 not complete)"] * 2
    west = row("knife_offences", "west-midlands")  # partial: the lower bound, no rate, no change
    assert west[3] == "200" and west[5] == "180.25" and west[6] == "no change: this quarter is not complete"
    assert west[7].startswith("partial")
    assert row("ae_knife", "merseyside")[3] == "withheld (small number)"
    assert row("ae_knife", "durham")[3] == "no A&E data for this area"
    assert row("ae_knife", "west-midlands")[3:5] == ["1234", "44.76"]
    assert row("knife_homicides", "west-midlands")[3] == "withheld or not published"
    assert row("stop_search", "merseyside")[3] == "150" and "2 of 3 months published" in row("stop_search",
                                                                                           "merseyside")[-1]
    page = target.read_text()
    assert "1,234" in page  # shown with a thousands separator
    # caveats: the latest quarter's population estimate, membership of the quarter, A&E only where
    # the seed has departments
    assert "(for 2019/20 Q3: ONS mid-2019 estimates, original edition" in page
    assert "Cleveland and Humberside count as VRU areas from\n2022/23 only" in page
    assert "ae_sites seed\n(Merseyside Police, West Midlands Police)" in page


def test_before_the_marts_exist_the_page_says_so(conn: psycopg.Connection, clean_warehouse: str,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VRU_WAREHOUSE_URL", clean_warehouse)
    for mart in MARTS:
        conn.execute(f"drop table if exists marts.{mart} cascade")
    assert main(["outcomes-report"]) == 0  # `vru outcomes-report` prints where it wrote the page
    target = settings().reports_dir / "outcomes.html"
    assert capsys.readouterr().out.strip() == str(target)
    page = target.read_text()
    assert 'id="not-built"' in page and "have\nnot been built yet" in page and "<svg" not in page
    assert 'href="outcomes.html"' in write_report(cfg=settings()).read_text()  # linked from the DQ report


@pytest.fixture
def built(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """The outcome marts built by dbt; every relation the build made for them dropped afterwards."""
    yield conn
    for mart in (*MARTS, "ae_assault_monthly", "knife_crime_quarterly"):
        conn.execute(f"drop table if exists marts.{mart}, marts_build.{mart} cascade")
    conn.execute("drop view if exists staging.stg_home_office__knife_offences cascade")


def test_built_by_dbt_the_page_shows_the_marts(built: psycopg.Connection, clean_warehouse: str,
                                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Merseyside (VRU from 2019/20) and Durham (non-VRU) knife crime, 2018/19 Q1 to 2019/20 Q3; one
    Durham figure withheld in 2019/20 Q1, so the non-VRU group has no complete area that quarter."""
    rows: list[tuple[object, ...]] = []
    for name, force_id, base in (("Merseyside", "merseyside", 10), ("Durham", "durham", 5)):
        for n, (fy_start, quarter) in enumerate(QUARTERS):
            for offence in OFFENCES:
                value = None if (force_id, fy_start, quarter, offence) == ("durham", 2019, 1, "Rape") else base + n
                rows.append((1, "0" * 64, None, len(rows) + 2, f"{fy_start}/{(fy_start + 1) % 100:02d}", fy_start,
                             quarter, name, force_id, offence, value, None if value is not None else "[x]"))
    load(built, 1, rows)
    done = dbt_build(clean_warehouse, tmp_path)
    assert done.returncode == 0, done.stdout[-5000:]
    publish_built(clean_warehouse)  # the page reads the published marts, as BI tools do

    monkeypatch.setenv("VRU_WAREHOUSE_URL", clean_warehouse)
    shown = _shown(write_outcomes_report(cfg=settings()))
    assert shown.console_errors == [] and shown.page_errors == [], shown
    for m in MEASURES:
        _same(shown.values["tables"][f"{m.key}-data"], _expected_data_table(built, m.key))
    lines = shown.values["charts"]["knife_offences"]["lines"]
    assert [len(line["xs"]) for line in lines if line["group"] == "non-VRU areas"] == [4, 2]
    # membership of the quarter: no area had a VRU in 2018/19, so the VRU line starts in 2019/20
    assert [len(line["xs"]) for line in lines if line["group"] == "VRU areas"] == [3]
    gap = built.execute(
        "select knife_offences_index_gap_vru_vs_non_vru from marts.vru_programme_comparison "
        "where group_name = 'VRU areas' and knife_offences_index_gap_vru_vs_non_vru is not null "
        "order by quarter_start desc limit 1").fetchone()
    assert gap is not None and shown.values["leads"]["knife_offences-lead"]["gap"] == str(gap[0])
    areas = {r[0]: r for r in shown.values["tables"]["knife_offences-areas"]}
    for name, figure, rate, baseline, change in built.execute(
            "select force_name, knife_offences, knife_offences_rate_per_100k, knife_offences_baseline, "
            "knife_offences_change_pct from marts.vru_outcomes_quarterly "
            "where force_id in ('merseyside', 'durham') and fy_start = 2019 and financial_quarter = 3"):
        assert areas[name][3:7] == [str(figure), str(rate), str(baseline), str(change)]
    metropolitan = areas["Metropolitan Police Service"]  # no figure in the fixture: words, not 0
    assert metropolitan[3] == "missing: not in the Home Office table"


EFFECTS_CONTRACT = REPO / "dbt_project" / "models" / "marts" / "outcomes" / "_effects__models.yml"
EFFECT_MARTS = ("vru_programme_effect", "vru_programme_event_study")


def _effect_row(measure: str, status: str, reason: str, **figures: Any) -> dict[str, Any]:
    """A hand-made row of marts.vru_programme_effect (not a real estimate)."""
    counts = {"areas_used": 43, "funded_areas_used": 20, "comparison_areas_used": 23, "quarters_used": 40,
              "area_quarters_used": 1700, "funded_area_quarters_used": 400, "area_quarters_excluded": 20,
              "excluded_missing": 12, "excluded_suppressed": 8, **{f"excluded_{r}": 0 for r in (
                  "partial_coverage", "series_break", "no_population", "zero_count", "no_quarter_before_funding",
                  "no_comparison_in_quarter", "outside_window")}}
    return {"measure": measure, "measure_label": f"Label of {measure}", "role": "outcome",
            "method": "did2s imputation (Gardner two-stage)", "analysis_window": "all quarters after funding",
            "status": status, "status_reason": reason, "permutations": 999 if "estimate_pct" in figures else 0,
            "pre_trend_leads_tested": 7, "edition_date": date(2026, 11, 30),
            "edition_source": "Home Office knife crime table: the latest edition fetched", **counts, **figures}


@pytest.fixture
def effect_marts(marts: psycopg.Connection) -> Iterator[psycopg.Connection]:
    models = {m["name"]: m for m in yaml.safe_load(EFFECTS_CONTRACT.read_text())["models"]}
    for mart in EFFECT_MARTS:
        marts.execute(f"drop table if exists marts.{mart} cascade")
        columns = ", ".join(f'{c["name"]} {c["data_type"]}' for c in models[mart]["columns"])
        marts.execute(f"create table marts.{mart} ({columns})")
    estimated = {"estimate_pct": D("-3.2"), "ci_low_pct": D("-11.0"), "ci_high_pct": D("6.1"),
                 "p_value_model": D("0.4100"), "p_value_permutation": D("0.4400"), "pre_trend_p_value": D("0.6000"),
                 "pre_trend_failed": False}
    for row in (
        _effect_row("knife_offences", "estimated", "pre-funding trends: no divergence detected", **estimated),
        _effect_row("ae_knife", "estimated", "pre-funding trends: no divergence detected",
                    **{**estimated, "estimate_pct": D("-15.4"), "ci_low_pct": D("-22.0"), "ci_high_pct": D("-8.3"),
                       "p_value_permutation": D("0.0030")}),
        _effect_row("knife_homicides", "not possible", "1,200 of 1,700 area-quarters had none: too few events"),
        _effect_row("searches", "not interpretable", "the funded and comparison areas were already diverging "
                    "before funding (joint test of 7 quarters before funding: p = 0.001)",
                    **{**estimated, "pre_trend_p_value": D("0.0010"), "pre_trend_failed": True}),
    ):
        _insert(marts, "marts.vru_programme_effect", row)
    # knife offences: -8..12 with no funded area-quarter at +5 (a gap); -1 the reference
    for q in range(-8, 13):
        value = None if q == 5 else D("0.0") if q == -1 else D(f"{-0.5 * q:.1f}")
        _insert(marts, "marts.vru_programme_event_study", {
            "measure": "knife_offences", "method": "did2s imputation (Gardner two-stage)", "relative_quarter": q,
            "is_reference": q == -1, "estimate_pct": value, "ci_low_pct": None if value is None else value - 4,
            "ci_high_pct": None if value is None else value + 4, "funded_area_quarters": 0 if q == 5 else 20})
    yield marts
    for mart in EFFECT_MARTS:
        marts.execute(f"drop table if exists marts.{mart} cascade")


def test_effect_sentences_follow_the_status_and_the_chart_has_a_band_and_gaps(
        effect_marts: psycopg.Connection, clean_warehouse: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRU_WAREHOUSE_URL", clean_warehouse)
    target = write_outcomes_report(cfg=settings())
    with serve(target.parent) as base:
        shown = render(f"{base}/{target.name}", {
            "effects": "Object.fromEntries([...document.querySelectorAll('div.effect')].map(d => [d.id.slice(7), {"
                       "status: d.dataset.status, sentence: d.querySelector('p.lead').innerText,"
                       "svg: d.querySelector('svg.event-study') !== null}]))",
            "chart": "(() => { const s = document.querySelector('#knife_offences-event-study');"
                     "return {visible: s.getBoundingClientRect().height > 0,"
                     "bands: [...s.querySelectorAll('polygon.band')].map(p => p.points.length),"
                     "lines: [...s.querySelectorAll('polyline.estimate')].map(p => p.points.length),"
                     "marks: [...s.querySelectorAll('circle')].map(c => [+c.dataset.quarter, c.dataset.value,"
                     " c.dataset.low, c.dataset.high])}; })()",
        })
    assert shown.console_errors == [] and shown.page_errors == [], shown
    effects = shown.values["effects"]
    assert effects["knife_offences"]["sentence"] == (
        "No change that we can distinguish from chance: -3.2% (95% interval -11.0% to +6.1%).")
    assert effects["ae_knife"]["sentence"].startswith(
        "The rate per resident fell in the VRU areas against the comparison areas by -15.4% "
        "(95% interval -22.0% to -8.3%)")
    assert effects["knife_homicides"]["sentence"].startswith("Not possible to estimate yet: ")
    assert not any(ch.isdigit() for ch in effects["searches"]["sentence"].split("(")[0])
    assert effects["searches"]["sentence"].startswith("Not interpretable: the funded and comparison areas were "
                                                      "already diverging before funding")
    assert "-3.2" not in effects["searches"]["sentence"]  # a not-interpretable estimate is not printed
    assert {k: e["svg"] for k, e in effects.items()} == {
        "knife_offences": True, "ae_knife": False, "knife_homicides": False, "searches": False}
    # the band and the line break at +5 (no estimate): -8..4 (13 quarters) and 6..12 (7)
    chart = shown.values["chart"]
    assert chart["visible"] and chart["lines"] == [13, 7] and chart["bands"] == [26, 14]
    mart = effect_marts.execute("select relative_quarter, estimate_pct, ci_low_pct, ci_high_pct from "
                                "marts.vru_programme_event_study where estimate_pct is not null "
                                "order by relative_quarter").fetchall()
    assert chart["marks"] == [[q, str(v), str(lo), str(hi)] for q, v, lo, hi in mart]
