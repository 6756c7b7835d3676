"""The knife crime suites (raw, staging, mart) against a real PostgreSQL (embedded) with hand-made figures.

The figures are small but realistic: 43 forces x 4 quarters x 3 offences for 2019/20 (a national total
of about 40,000), published in two editions (the second revises some figures, withholds one and adds
the first quarter of 2020/21). dbt is not run here: the staging view and the mart are plain tables
built from the raw figures in the test, and dropped afterwards.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from vru import validation
from vru.validation import ValidationOutcome, validate

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "dbt_project" / "seeds" / "force_areas.csv"

RAW = ("raw", "home_office.knife_offences", "raw.knife_offences")
STAGING = ("staging", "home_office.knife_offences", "staging.stg_home_office__knife_offences")
MART = ("marts", "home_office.knife_crime_quarterly", "marts.knife_crime_quarterly")

with SEED.open(newline="", encoding="utf-8") as seed_file:
    SEED_ROWS = list(csv.DictReader(seed_file))
FORCES = [row["force_id"] for row in SEED_ROWS]
FORCE_NAMES = {row["force_id"]: row["force_name"] for row in SEED_ROWS}
VRU_AREAS = {row["force_id"] for row in SEED_ROWS if row["is_vru_area"] == "true"}

OFFENCES = {  # as published -> offence group
    "Homicide": "homicide",
    "Assault with injury and assault with intent to cause serious harm": "assault_injury_or_intent",
    "Robbery": "robbery",
}
GROUPS = (
    "homicide",
    "attempted_murder",
    "threats_to_kill",
    "assault_injury_or_intent",
    "robbery",
    "rape",
    "sexual_assault",
)
WITHHELD = ("durham", 2019, 3, "Robbery")  # withheld in the second edition: the current figure is empty


# ------------------------------------------------------------------------------------------
# Fixtures and helpers
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("knife_data_docs")


@pytest.fixture
def knife_tables(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """An empty warehouse; the hand-made staging and mart tables are dropped afterwards."""
    drop_staging_and_mart(conn)
    yield conn
    drop_staging_and_mart(conn)


def drop_staging_and_mart(conn: psycopg.Connection) -> None:
    # In a full test run dbt may have built the real relations (a view and a table): drop either.
    for name in (STAGING[2], MART[2]):
        row = conn.execute("select c.relkind from pg_class c where c.oid = to_regclass(%s)", [name]).fetchone()
        if row is not None:
            kind = {"v": "view", "m": "materialized view"}.get(row[0], "table")
            conn.execute(f"drop {kind} {name} cascade")


def run(warehouse_url: str, docs_dir: Path, target: tuple[str, str, str]) -> ValidationOutcome:
    stage, dataset, table = target
    return validate(stage, dataset, table, warehouse_url=warehouse_url, docs_dir=docs_dir, run_id=f"test-knife-{stage}")


def failed_checks(descriptions: list[str]) -> list[str]:
    """'Check name [column]: 3 of 10 rows fail in t' -> 'Check name'."""
    return sorted(re.sub(r" \[[^\]]*\]$", "", d.split(": ")[0]) for d in descriptions)


def audit_rows(warehouse_url: str, validation_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(warehouse_url) as c, c.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute("select * from audit.validation_results where validation_id = %s", [validation_id])
        return cur.fetchall()


def suite(target: tuple[str, str, str]) -> dict[str, Any]:
    return validation.load_suite(validation.suite_path_for(target[0], target[1]))


def by_check(target: tuple[str, str, str], check: str) -> dict[str, Any]:
    (expectation,) = [e for e in suite(target)["expectations"] if e["meta"]["check"] == check]
    return expectation


# ------------------------------------------------------------------------------------------
# Hand-made figures
# ------------------------------------------------------------------------------------------

Row = dict[str, Any]


def figure(force_index: int, fy_start: int, quarter: int, offence: str) -> int:
    if offence == "Homicide":
        return (force_index + quarter) % 3
    if offence == "Robbery":
        return 40 + (force_index * 53 + quarter * 7 + fy_start) % 120
    return 60 + (force_index * 37 + quarter * 11 + fy_start) % 150


def edition(load_id: int, quarters: list[tuple[int, int]], revise: bool = False) -> list[Row]:
    rows: list[Row] = []
    for force_index, force_id in enumerate(FORCES):
        for fy_start, quarter in quarters:
            for offence_index, offence in enumerate(OFFENCES):
                offences: int | None = figure(force_index, fy_start, quarter, offence)
                marker = None
                if revise and (force_index + quarter + offence_index) % 10 == 0:
                    offences = (offences or 0) + 2  # the publisher revised the figure
                if revise and (force_id, fy_start, quarter, offence) == WITHHELD:
                    offences, marker = None, "[x]"
                rows.append(
                    {
                        "load_id": load_id,
                        "sha256": f"{load_id:064x}",
                        "sheet": None,
                        "line_no": len(rows) + 2,
                        "financial_year": f"{fy_start}/{(fy_start + 1) % 100:02d}",
                        "fy_start": fy_start,
                        "financial_quarter": quarter,
                        "force_name": FORCE_NAMES[force_id],
                        "force_id": force_id,
                        "offence": offence,
                        "offences": offences,
                        "value_marker": marker,
                    }
                )
    return rows


YEAR_2019 = [(2019, q) for q in (1, 2, 3, 4)]


def good_raw() -> list[Row]:
    """Edition 1: 2019/20. Edition 2: 2019/20 revised (one figure withheld) and 2020/21 quarter 1."""
    return edition(1, YEAR_2019) + edition(2, [*YEAR_2019, (2020, 1)], revise=True)


def current_figures(rows: list[Row]) -> dict[tuple[str, int, int, str], Row]:
    """The current figure of each cell: the one from the latest edition that has it."""
    current: dict[tuple[str, int, int, str], Row] = {}
    for row in sorted(rows, key=lambda r: r["load_id"]):
        current[(row["force_id"], row["fy_start"], row["financial_quarter"], row["offence"])] = row
    return current


def national_total(rows: list[Row], fy_start: int) -> int:
    return sum(r["offences"] or 0 for r in current_figures(rows).values() if r["fy_start"] == fy_start)


def load_raw(conn: psycopg.Connection, rows: list[Row]) -> None:
    columns = list(rows[0])
    conn.execute("truncate raw.knife_offences")
    with conn.cursor() as cur:
        cur.executemany(
            f"insert into raw.knife_offences ({', '.join(columns)}) values ({', '.join(['%s'] * len(columns))})",
            [[row[c] for c in columns] for row in rows],
        )


def quarter_start(fy_start: int, quarter: int) -> str:
    month = 4 + 3 * (quarter - 1)
    return f"{fy_start + (month > 12)}-{(month - 1) % 12 + 1:02d}-01"


def staging_rows(rows: list[Row]) -> list[Row]:
    editions: dict[tuple[str, int, int, str], list[Row]] = {}
    for row in sorted(rows, key=lambda r: r["load_id"]):
        editions.setdefault((row["force_id"], row["fy_start"], row["financial_quarter"], row["offence"]), []).append(
            row
        )
    staged = []
    for (force_id, fy_start, quarter, offence), history in editions.items():
        latest = history[-1]
        staged.append(
            {
                "force_id": force_id,
                "financial_year": latest["financial_year"],
                "fy_start": fy_start,
                "financial_quarter": quarter,
                "quarter_start": quarter_start(fy_start, quarter),
                "offence": offence,
                "offence_group": OFFENCES.get(offence),
                "offences": latest["offences"],
                "value_marker": latest["value_marker"],
                "is_withheld": latest["offences"] is None,
                "edition_load_id": latest["load_id"],
                "first_published_offences": history[0]["offences"],
                "editions": len(history),
                "is_revised": len({r["offences"] for r in history}) > 1,
            }
        )
    return staged


def population(force_id: str) -> int:
    return 600_000 + FORCES.index(force_id) * 73_541


def rate(total: int, people: int) -> Decimal:
    return (Decimal(total * 100_000) / Decimal(people)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def mart_rows(staged: list[Row]) -> list[Row]:
    quarters: dict[tuple[str, int, int], list[Row]] = {}
    for row in staged:
        quarters.setdefault((row["force_id"], row["fy_start"], row["financial_quarter"]), []).append(row)
    mart = []
    for (force_id, fy_start, quarter), cells in sorted(quarters.items()):
        groups = {g: sum(c["offences"] or 0 for c in cells if c["offence_group"] == g) for g in GROUPS}
        total = sum(groups.values())
        withheld = sum(c["is_withheld"] for c in cells)
        people = population(force_id)
        mart.append(
            {
                "force_id": force_id,
                "financial_year": cells[0]["financial_year"],
                "fy_start": fy_start,
                "financial_quarter": quarter,
                "quarter_start": quarter_start(fy_start, quarter),
                "coverage": "partial" if withheld else "complete",
                "total_offences": total,
                **groups,
                "withheld_figures": withheld,
                "population": people,
                "population_source": f"ONS mid-{fy_start} estimate",
                "rate_per_100k": None if withheld else rate(total, people),
                "is_vru_area": force_id in VRU_AREAS,
                "is_comparable": True,
                "series_breaks": None,
                "is_revised": any(c["is_revised"] for c in cells),
                "edition_load_id": max(c["edition_load_id"] for c in cells),
            }
        )
    return mart


STAGING_DDL = (
    "create table staging.stg_home_office__knife_offences (force_id text, financial_year text, "
    "fy_start integer, financial_quarter integer, quarter_start date, offence text, offence_group text, "
    "offences integer, value_marker text, is_withheld boolean, edition_load_id bigint, "
    "first_published_offences integer, editions integer, is_revised boolean)"
)
MART_DDL = (  # the mart's dbt contract
    "create table marts.knife_crime_quarterly (force_id text, financial_year text, fy_start integer, "
    "financial_quarter integer, quarter_start date, coverage text, total_offences integer, "
    + ", ".join(f"{g} integer" for g in GROUPS)
    + ", withheld_figures integer, population bigint, population_source text, rate_per_100k numeric(10,2), "
    "is_vru_area boolean, is_comparable boolean, series_breaks text, is_revised boolean, edition_load_id bigint)"
)


def insert(conn: psycopg.Connection, table: str, rows: list[Row]) -> None:
    columns = list(rows[0])
    with conn.cursor() as cur:
        cur.executemany(
            f"insert into {table} ({', '.join(columns)}) values ({', '.join(['%s'] * len(columns))})",
            [[row[c] for c in columns] for row in rows],
        )


def build_staging_and_mart(conn: psycopg.Connection, staged: list[Row], mart: list[Row]) -> None:
    drop_staging_and_mart(conn)
    conn.execute(STAGING_DDL)
    conn.execute(MART_DDL)
    insert(conn, STAGING[2], staged)
    insert(conn, MART[2], mart)


# ------------------------------------------------------------------------------------------
# Raw: a good batch, then one defect at a time
# ------------------------------------------------------------------------------------------


def test_hand_made_figures_are_realistic() -> None:
    rows = good_raw()
    assert len(FORCES) == 43 and len(rows) == 43 * 3 * (4 + 5)
    assert 35_000 < national_total(rows, 2019) < 50_000  # like the published 2019/20 total
    assert current_figures(rows)[WITHHELD]["offences"] is None


def test_good_raw_batch_passes_and_is_audited(
    knife_tables: psycopg.Connection, warehouse_url: str, docs_dir: Path
) -> None:
    load_raw(knife_tables, good_raw())

    outcome = run(warehouse_url, docs_dir, RAW)

    assert outcome.success, outcome
    assert outcome.evaluated == len(suite(RAW)["expectations"])
    rows = audit_rows(warehouse_url, outcome.validation_id)
    assert len(rows) == outcome.evaluated and all(r["success"] for r in rows)
    assert {r["suite"] for r in rows} == {"raw.home_office.knife_offences"}
    band = next(r for r in rows if "between 20,000 and 65,000" in r["meaning"])
    assert band["observed"] == {"observed_value": 0}
    (types,) = [r for r in rows if r["expectation"] == "expect_column_values_to_be_in_type_list"]
    assert types["observed"] == {"observed_value": "INTEGER"}


Defect = Callable[[list[Row]], None]


def first(rows: list[Row], **where: Any) -> Row:
    return next(r for r in rows if all(r[k] == v for k, v in where.items()))


def negative(rows: list[Row]) -> None:
    first(rows, load_id=2, force_id="essex", offence="Robbery")["offences"] = -5


def unknown_force(rows: list[Row]) -> None:
    rows.append({**first(rows, load_id=2), "force_id": "police-scotland", "force_name": "Police Scotland"})


def missing_quarter(rows: list[Row]) -> None:
    rows[:] = [r for r in rows if not (r["load_id"] == 2 and r["force_id"] == "kent" and r["financial_quarter"] == 2)]


def times_ten(rows: list[Row]) -> None:
    for row in rows:
        if row["offences"] is not None:
            row["offences"] *= 10


def duplicate(rows: list[Row]) -> None:
    rows.append({**first(rows, load_id=2, force_id="gwent"), "line_no": 99_999})


def unmarked_gap(rows: list[Row]) -> None:
    first(rows, load_id=2, force_id="dorset", offence="Robbery")["offences"] = None


def wrong_year_label(rows: list[Row]) -> None:
    first(rows, load_id=2, fy_start=2020)["financial_year"] = "2019/20"


def stray_digit_in_open_year(rows: list[Row]) -> None:
    first(rows, load_id=2, fy_start=2020, force_id="suffolk", offence="Robbery")["offences"] = 123_456


RAW_DEFECTS: list[tuple[Defect, list[str], list[str]]] = [
    (negative, ["Counts never negative"], []),
    (unknown_force, ["Every force known"], []),
    (missing_quarter, ["No missing quarter within a force's series"], []),
    (times_ten, ["National yearly total plausible"], []),
    (duplicate, ["No figure twice in one edition"], []),
    (unmarked_gap, ["Withheld figures are marked"], []),
    (wrong_year_label, ["Financial year label agrees"], []),
    # 2020/21 has one quarter only, so the national band cannot see it: the per-figure bound does.
    (stray_digit_in_open_year, [], ["No implausibly large single figure"]),
]


@pytest.mark.parametrize(
    ("defect", "critical", "warnings"), [pytest.param(*case, id=case[0].__name__) for case in RAW_DEFECTS]
)
def test_raw_defect_fails_the_right_check(
    knife_tables: psycopg.Connection,
    warehouse_url: str,
    docs_dir: Path,
    defect: Defect,
    critical: list[str],
    warnings: list[str],
) -> None:
    rows = good_raw()
    defect(rows)
    load_raw(knife_tables, rows)

    outcome = run(warehouse_url, docs_dir, RAW)

    assert not outcome.success
    assert failed_checks(outcome.critical_failures) == critical, outcome.critical_failures
    assert failed_checks(outcome.warnings) == warnings, outcome.warnings
    assert outcome.blocking == bool(critical)
    failed = [r for r in audit_rows(warehouse_url, outcome.validation_id) if not r["success"]]
    assert {r["severity"] for r in failed} == ({"critical"} if critical else {"warning"})
    for r in failed:  # counts only, never row values
        assert set(r["observed"] or {}) <= set(validation.OBSERVED_KEYS)
        if r["expectation"] == "unexpected_rows_expectation":
            assert r["observed"] == {"observed_value": 1}  # one offending force, year or cell


def test_band_failure_names_the_year(knife_tables: psycopg.Connection, warehouse_url: str, docs_dir: Path) -> None:
    rows = good_raw()
    times_ten(rows)
    load_raw(knife_tables, rows)
    query = by_check(RAW, "National yearly total plausible")["kwargs"]["unexpected_rows_query"]

    offending = knife_tables.execute(query.format(batch="raw.knife_offences")).fetchall()

    assert offending == [(2019, national_total(rows, 2019))]  # 2020/21 has one quarter: not judged


# ------------------------------------------------------------------------------------------
# Staging and mart (plain tables standing in for the dbt models)
# ------------------------------------------------------------------------------------------


def test_good_staging_and_mart_pass(knife_tables: psycopg.Connection, warehouse_url: str, docs_dir: Path) -> None:
    rows = good_raw()
    load_raw(knife_tables, rows)
    staged = staging_rows(rows)
    mart = mart_rows(staged)
    assert sum(r["coverage"] == "partial" for r in mart) == 1
    build_staging_and_mart(knife_tables, staged, mart)

    for target in (STAGING, MART):
        outcome = run(warehouse_url, docs_dir, target)
        assert outcome.success, outcome
        assert outcome.evaluated == len(suite(target)["expectations"])


def test_unclassified_offence_stops_staging(
    knife_tables: psycopg.Connection, warehouse_url: str, docs_dir: Path
) -> None:
    rows = good_raw()
    rows.append({**first(rows, load_id=2), "offence": "Possession of article with blade or point", "offences": 7})
    staged = staging_rows(rows)
    build_staging_and_mart(knife_tables, staged, mart_rows(staged))

    outcome = run(warehouse_url, docs_dir, STAGING)

    assert outcome.critical_failures == [
        f"Every offence classified [offence_group]: 1 of {len(staged)} rows fail in {STAGING[2]}"
    ]
    assert outcome.warnings == []


def test_bad_mart_fails_arithmetic_coverage_gaps_and_reconciliation(
    knife_tables: psycopg.Connection, warehouse_url: str, docs_dir: Path
) -> None:
    rows = good_raw()
    # Kent's 2019/20 quarter 2 is missing from the mart; it is left out of raw too, so totals still agree.
    rows = [r for r in rows if not (r["force_id"] == "kent" and r["fy_start"] == 2019 and r["financial_quarter"] == 2)]
    load_raw(knife_tables, rows)
    staged = staging_rows(rows)
    mart = mart_rows(staged)
    index = {(r["force_id"], r["fy_start"], r["financial_quarter"]): r for r in mart}
    index["essex", 2019, 1]["homicide"] += 1  # total no longer the sum of the groups
    index["merseyside", 2019, 1]["rate_per_100k"] += 1  # wrong rate
    durham = index["durham", 2019, 3]  # a figure withheld, but marked complete (with a correct rate)
    durham["coverage"] = "complete"
    durham["rate_per_100k"] = rate(durham["total_offences"], durham["population"])
    index["cumbria", 2019, 4]["coverage"] = "partial"  # partial, but keeps its rate
    lancashire = index["lancashire", 2020, 1]  # 5 robberies more than published: 2020/21 differs
    lancashire["robbery"] += 5
    lancashire["total_offences"] += 5
    lancashire["rate_per_100k"] = rate(lancashire["total_offences"], lancashire["population"])
    build_staging_and_mart(knife_tables, staged, mart)

    outcome = run(warehouse_url, docs_dir, MART)

    assert failed_checks(outcome.critical_failures) == sorted(
        [
            "No missing quarter within a force's series",
            "No rate for partial quarters",
            "Quarterly totals match the published figures",
            "Rate per 100,000 residents correct",
            "Total equals the sum of the offence groups",
            "Withheld figures mark the quarter partial",
        ]
    ), outcome.critical_failures
    assert outcome.warnings == []
    failed = [r for r in audit_rows(warehouse_url, outcome.validation_id) if not r["success"]]
    assert {r["severity"] for r in failed} == {"critical"}
    assert all(r["observed"] == {"observed_value": 1} for r in failed)  # one row or year each

    query = by_check(MART, "Quarterly totals match the published figures")["kwargs"]["unexpected_rows_query"]
    offending = knife_tables.execute(query.format(batch=MART[2])).fetchall()
    assert offending == [(2020, national_total(rows, 2020) + 5, national_total(rows, 2020))]


def test_mart_total_uses_current_figures_only(knife_tables: psycopg.Connection) -> None:
    """Summing every edition, not the latest figure of each cell, would not reconcile."""
    rows = good_raw()
    load_raw(knife_tables, rows)
    staged = staging_rows(rows)
    build_staging_and_mart(knife_tables, staged, mart_rows(staged))
    query = by_check(MART, "Quarterly totals match the published figures")["kwargs"]["unexpected_rows_query"]

    assert knife_tables.execute(query.format(batch=MART[2])).fetchall() == []
    knife_tables.execute(f"update {MART[2]} set total_offences = total_offences + 1, robbery = robbery + 1")
    assert len(knife_tables.execute(query.format(batch=MART[2])).fetchall()) == 2  # both years differ


def offending(conn: psycopg.Connection, target: tuple[str, str, str], check: str) -> list[tuple[Any, ...]]:
    """Run one check's query directly (no GX): the rows it would count as unexpected."""
    query = by_check(target, check)["kwargs"]["unexpected_rows_query"]
    return conn.execute(query.format(batch=target[2])).fetchall()


def test_raw_quarter_not_yet_over_is_caught(knife_tables: psycopg.Connection) -> None:
    rows = good_raw()
    load_raw(knife_tables, rows)
    assert offending(knife_tables, RAW, "No figures for quarters not yet over") == []

    today = knife_tables.execute("select current_date").fetchone()[0]  # type: ignore[index]
    fy_now = today.year if today.month >= 4 else today.year - 1
    label = f"{fy_now}/{(fy_now + 1) % 100:02d}"
    load_raw(knife_tables, [*rows, {**rows[0], "fy_start": fy_now, "financial_quarter": 4, "financial_year": label}])
    assert offending(knife_tables, RAW, "No figures for quarters not yet over") == [(fy_now, 4, 1)]


def test_mart_labels_and_negative_counts_are_caught(knife_tables: psycopg.Connection) -> None:
    rows = good_raw()
    staged = staging_rows(rows)
    build_staging_and_mart(knife_tables, staged, mart_rows(staged))
    for check in ("Quarter labels agree", "Counts never negative"):
        assert offending(knife_tables, MART, check) == []

    knife_tables.execute(
        f"update {MART[2]} set quarter_start = '2019-04-01' where fy_start = 2019 and financial_quarter = 2"
    )
    knife_tables.execute(
        f"update {MART[2]} set financial_year = '2019/2020' where force_id = 'kent' and fy_start = 2019"
    )
    knife_tables.execute(f"update {MART[2]} set rape = -1 where force_id = 'essex' and fy_start = 2020")
    assert len(offending(knife_tables, MART, "Quarter labels agree")) == 43 + 3  # kent's quarter 2 counted once
    assert offending(knife_tables, MART, "Counts never negative") == [("essex", 2020, 1)]


# ------------------------------------------------------------------------------------------
# Suite files (no database)
# ------------------------------------------------------------------------------------------

KNIFE_SUITES = (RAW, STAGING, MART)


def test_raw_force_list_equals_the_seed() -> None:
    assert by_check(RAW, "Every force known")["kwargs"]["value_set"] == FORCES
    assert len(set(FORCES)) == 43


def test_band_is_stated_once_and_used_by_the_query() -> None:
    expectation = by_check(RAW, "National yearly total plausible")
    band = expectation["meta"]["band"]
    assert (band["min"], band["max"]) == (20_000, 65_000)
    assert f"not between {band['min']} and {band['max']}" in expectation["kwargs"]["unexpected_rows_query"]
    assert f"{band['min']:,} and {band['max']:,}" in expectation["meta"]["meaning"]
    assert band["published_totals"] and band["reasoning"]


@pytest.mark.parametrize("target", KNIFE_SUITES, ids=lambda t: t[0])
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
        json.dumps(expectation)  # plain JSON, nothing GX-specific
