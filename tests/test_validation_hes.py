"""The HES suites (raw, mart) against a real PostgreSQL (embedded) with hand-made figures.

Two editions of England's X99 figures (the published measures, with HES's 24 age columns):
2015/16-2018/19, then 2015/16-2019/20 with one figure revised and one suppressed ('*'). dbt is not run
here: the mart is a plain table with the contract's columns built in the test (tests/test_dbt_hes.py
builds the real one). Defects are planted several at a time,
each caught by its own check, so one validation run proves several checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from vru import validation
from vru.feeds import hes
from vru.validation import ValidationOutcome, validate

RAW = ("raw", "nhs.sharp_object_admissions", "raw.sharp_object_admissions")
MART = ("marts", "nhs.sharp_object_admissions_yearly", "marts.sharp_object_admissions_yearly")
MEASURES = tuple(m.name for m in hes.MEASURES)  # the published ones
BANDS = tuple(m.name for m in hes.AGE_BANDS)
BANDS_0_24, BANDS_25_PLUS = BANDS[:BANDS.index("age_25_29")], BANDS[BANDS.index("age_25_29"):]
COUNTS = MEASURES[:MEASURES.index("age_0")]
MART_COLUMNS = ("geography_code", "geography_name", "financial_year", "fy_start", *COUNTS, "age_0_24", "age_25_plus",
                *BANDS, "withheld_figures", "is_revised", "edition_load_id")
Row = dict[str, Any]


def year_figures(fy_start: int) -> dict[str, int]:
    fces = 3_600 + 250 * (fy_start - 2015)
    return {"finished_consultant_episodes": fces, "admissions": fces - 300, "emergency_admissions": fces - 400,
            "male": fces - 500, "female": 480, "gender_unknown": 3, **{band: 100 for band in BANDS}}


def group(figures: dict[str, int | None], bands: tuple[str, ...]) -> int | None:
    values = [figures[b] for b in bands]
    return None if None in values else sum(v for v in values if v is not None)


def edition(load_id: int, years: range, revise: bool = False) -> list[Row]:
    rows: list[Row] = []
    for fy_start in years:
        for measure, figure in year_figures(fy_start).items():
            value: int | None = figure
            marker = None
            if revise and (fy_start, measure) == (2018, "admissions"):
                value = figure + 12
            if revise and (fy_start, measure) == (2019, "age_90_plus"):
                value, marker = None, "*"
            rows.append({"load_id": load_id, "sha256": f"{load_id:064x}", "sheet": None, "line_no": fy_start - 2011,
                         "financial_year": f"{fy_start}-{(fy_start + 1) % 100:02d}", "fy_start": fy_start,
                         "geography_code": "E92000001", "geography_name": "England", "cause_code": "X99",
                         "cause_description": "Assault by sharp object", "measure": measure, "value": value,
                         "value_marker": marker})
    return rows


def good_raw() -> list[Row]:
    return edition(1, range(2015, 2019)) + edition(2, range(2015, 2020), revise=True)


def mart_rows(raw: list[Row]) -> list[Row]:
    current: dict[tuple[int, str], Row] = {}
    for row in sorted(raw, key=lambda r: r["load_id"]):
        current[(row["fy_start"], row["measure"])] = row
    years = sorted({fy for fy, _ in current})
    rows = []
    for fy in years:
        figures = {m: current[(fy, m)]["value"] for m in MEASURES}
        row = {"geography_code": "E92000001", "geography_name": "England",
               "financial_year": f"{fy}/{(fy + 1) % 100:02d}", "fy_start": fy, **figures,
               "age_0_24": group(figures, BANDS_0_24), "age_25_plus": group(figures, BANDS_25_PLUS),
               "withheld_figures": sum(v is None for v in figures.values()),
               "is_revised": fy == 2018, "edition_load_id": max(current[(fy, m)]["load_id"] for m in MEASURES)}
        rows.append({c: row[c] for c in MART_COLUMNS})
    return rows


MART_DDL = ("create table marts.sharp_object_admissions_yearly (geography_code text, geography_name text, "
            "financial_year text, fy_start integer, "
            + ", ".join(f"{m} integer" for m in MART_COLUMNS[4:-3])
            + ", withheld_figures integer, is_revised boolean, edition_load_id bigint)")


def insert(conn: psycopg.Connection, table: str, rows: list[Row]) -> None:
    columns = list(rows[0])
    with conn.cursor() as cur:
        cur.executemany(f"insert into {table} ({', '.join(columns)}) values ({', '.join(['%s'] * len(columns))})",
                        [[row[c] for c in columns] for row in rows])


def drop_mart(conn: psycopg.Connection) -> None:
    row = conn.execute("select relkind from pg_class where oid = to_regclass(%s)", [MART[2]]).fetchone()
    if row is not None:
        conn.execute(f"drop {'view' if row[0] == 'v' else 'table'} {MART[2]} cascade")


@pytest.fixture
def hes_tables(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    drop_mart(conn)
    yield conn
    drop_mart(conn)


def build(conn: psycopg.Connection, raw: list[Row], mart: list[Row] | None = None) -> None:
    conn.execute("truncate raw.sharp_object_admissions")
    insert(conn, RAW[2], raw)
    drop_mart(conn)
    conn.execute(MART_DDL)
    insert(conn, MART[2], mart_rows(raw) if mart is None else mart)


def run(url: str, tmp_path: Path, target: tuple[str, str, str]) -> ValidationOutcome:
    stage, dataset, table = target
    return validate(stage, dataset, table, warehouse_url=url, docs_dir=tmp_path / "docs", run_id=f"test-hes-{stage}")


def failed(descriptions: list[str]) -> list[str]:
    """'Check name [column]: 3 of 10 rows fail in t' -> 'Check name'."""
    return sorted(re.sub(r" \[[^\]]*\]$", "", d.split(": ")[0]) for d in descriptions)


def suite(target: tuple[str, str, str]) -> dict[str, Any]:
    return validation.load_suite(validation.suite_path_for(target[0], target[1]))


def by_check(target: tuple[str, str, str], check: str) -> dict[str, Any]:
    (expectation,) = [e for e in suite(target)["expectations"] if e["meta"]["check"] == check]
    return expectation


def first(rows: list[Row], **where: Any) -> Row:
    return next(r for r in rows if all(r[k] == v for k, v in where.items()))


# ------------------------------------------------------------------------------------------------


def test_good_figures_pass_both_suites(hes_tables: psycopg.Connection, warehouse_url: str, tmp_path: Path) -> None:
    build(hes_tables, good_raw())
    for target in (RAW, MART):
        outcome = run(warehouse_url, tmp_path, target)
        assert outcome.success, outcome
        assert outcome.evaluated == len(suite(target)["expectations"])


def test_raw_defects_are_each_caught_by_their_check(hes_tables: psycopg.Connection, warehouse_url: str,
                                                    tmp_path: Path) -> None:
    rows = good_raw()
    first(rows, load_id=2, fy_start=2019, measure="male")["value"] = -3  # negative
    first(rows, load_id=2, fy_start=2019, measure="female")["value"] = None  # lost, not marked
    rows[:] = [r for r in rows if r["fy_start"] != 2016]  # a year lost
    rows.append({**first(rows, load_id=2, fy_start=2017, measure="male"), "cause_code": "W26",
                 "value": 9_000})  # another cause loaded
    rows.append({**first(rows, load_id=2, fy_start=2017, measure="female"), "line_no": 99})  # twice
    for row in rows:  # a stray digit in one year's episodes
        if row["fy_start"] == 2015 and row["measure"] == "finished_consultant_episodes":
            row["value"] *= 10
    first(rows, load_id=2, fy_start=2018, measure="emergency_admissions")["value"] = 9_999  # above admissions
    first(rows, load_id=2, fy_start=2017, measure="admissions")["value"] = 4_500  # above its episodes (4,100)
    build(hes_tables, rows)

    outcome = run(warehouse_url, tmp_path, RAW)

    assert failed(outcome.critical_failures) == sorted([
        "Counts never negative", "Withheld figures are marked", "No missing year in the series",
        "Only assault codes", "No figure twice in one edition", "England yearly episodes plausible",
        "Admissions within episodes",
    ]), outcome.critical_failures
    assert failed(outcome.warnings) == ["Breakdowns within their totals"]


def test_a_lost_measure_and_a_future_year_are_caught(hes_tables: psycopg.Connection, warehouse_url: str,
                                                     tmp_path: Path) -> None:
    rows = good_raw()
    rows[:] = [r for r in rows if not (r["fy_start"] == 2019 and r["measure"] == "age_17")]
    today = hes_tables.execute("select current_date").fetchone()[0]  # type: ignore[index]
    fy_now = today.year if today.month >= 4 else today.year - 1
    rows.append({**rows[0], "fy_start": fy_now, "financial_year": f"{fy_now}-{(fy_now + 1) % 100:02d}"})
    rows.append({**rows[0], "financial_year": "2014-15", "line_no": 77, "measure": "male"})
    build(hes_tables, rows, mart=mart_rows(good_raw()))
    query = by_check(RAW, "No figures for years not yet over")["kwargs"]["unexpected_rows_query"]
    assert hes_tables.execute(query.format(batch=RAW[2])).fetchall() == [(fy_now, 1)]

    outcome = run(warehouse_url, tmp_path, RAW)
    assert {"Every measure for every year", "No figures for years not yet over", "Financial year label agrees",
            "No missing year in the series"} <= set(failed(outcome.critical_failures)), outcome.critical_failures


def test_mart_defects_are_caught(hes_tables: psycopg.Connection, warehouse_url: str, tmp_path: Path) -> None:
    raw = good_raw()
    mart = mart_rows(raw)
    index = {r["fy_start"]: r for r in mart}
    index[2018]["admissions"] -= 12  # the older edition's figure, not the current one
    index[2019]["withheld_figures"] = 0  # a suppressed figure not counted
    index[2017]["financial_year"] = "2017-18"
    index[2019]["age_25_plus"] = sum(v for b in BANDS_25_PLUS if (v := index[2019][b]) is not None)  # partial sum
    index[2018]["age_0_24"] += 1
    mart = [r for r in mart if r["fy_start"] != 2015] + [{**index[2017], "fy_start": 2014, "financial_year": "2014/15"}]
    del mart[0]  # 2016 too: 2014, 2017-2019 are left, so years are missing in the middle
    build(hes_tables, raw, mart)

    outcome = run(warehouse_url, tmp_path, MART)

    assert failed(outcome.critical_failures) == sorted([
        "Yearly figures match the published figures", "Withheld figures counted", "Year labels agree",
        "No missing year in the series", "Age groups add up from the published ages",
    ]), outcome.critical_failures
    assert outcome.warnings == []
    query = by_check(MART, "Yearly figures match the published figures")["kwargs"]["unexpected_rows_query"]
    offending = {(r[0], r[2]) for r in hes_tables.execute(query.format(batch=MART[2])).fetchall()}
    assert (2018, "admissions") in offending and (2015, "finished_consultant_episodes") in offending
    assert (2014, "admissions") in offending  # a year the mart has and raw does not
    query = by_check(MART, "Age groups add up from the published ages")["kwargs"]["unexpected_rows_query"]
    assert sorted(r[1] for r in hes_tables.execute(query.format(batch=MART[2])).fetchall()) == [2018, 2019]


def test_admissions_above_episodes_fail_the_mart(hes_tables: psycopg.Connection, warehouse_url: str,
                                                 tmp_path: Path) -> None:
    raw = good_raw()
    first(raw, load_id=2, fy_start=2016, measure="admissions")["value"] = 9_999
    mart = mart_rows(raw)
    build(hes_tables, raw, mart)
    query = by_check(MART, "Admissions within episodes")["kwargs"]["unexpected_rows_query"]
    assert [r[1] for r in hes_tables.execute(query.format(batch=MART[2])).fetchall()] == [2016]


# ------------------------------------------------------------------------------------------------
# Suite files (no database)
# ------------------------------------------------------------------------------------------------


def test_band_is_stated_once_and_used_by_the_query() -> None:
    expectation = by_check(RAW, "England yearly episodes plausible")
    band = expectation["meta"]["band"]
    assert (band["min"], band["max"]) == (2_000, 10_000)
    assert f"not between {band['min']} and {band['max']}" in expectation["kwargs"]["unexpected_rows_query"]
    assert f"{band['min']:,} and {band['max']:,}" in expectation["meta"]["meaning"]
    assert "4,757" in band["published_totals"] and band["reasoning"]


def test_suites_list_the_tables_columns() -> None:
    ddl = (Path(__file__).resolve().parents[1] / "plugins" / "vru" / "sql" / "warehouse.sql").read_text()
    table = ddl.split("create table if not exists raw.sharp_object_admissions (")[1].split(");")[0]
    columns = [line.split()[0] for line in table.splitlines() if line.strip() and not line.strip().startswith("--")]
    assert by_check(RAW, "Table layout as designed")["kwargs"]["column_set"] == columns
    mart = by_check(MART, "Published columns as agreed")["kwargs"]["column_set"]
    assert mart == list(MART_COLUMNS)


@pytest.mark.parametrize("target", (RAW, MART), ids=lambda t: t[0])
def test_meanings_are_one_plain_sentence(target: tuple[str, str, str]) -> None:
    loaded = suite(target)
    assert loaded["meta"]["table"] == target[2]
    checks = [e["meta"]["check"] for e in loaded["expectations"]]
    assert len(checks) == len(set(checks)), "check names identify failures: keep them unique"
    for expectation in loaded["expectations"]:
        meta = expectation["meta"]
        meaning = meta["meaning"]
        assert meaning[0].isupper() and meaning.endswith(".") and meaning.count(". ") == 0, meaning
        assert not re.search(r"\b(null|sql|query|load_id|fy_start|batch|expect_)\b", meaning, re.IGNORECASE), meaning
        assert meta["severity_reason"].startswith(meta["severity"] + ": ")
        query = expectation["kwargs"].get("unexpected_rows_query")
        if query is not None:
            assert "{batch}" in query and "select *" not in query.lower()
        json.dumps(expectation)
