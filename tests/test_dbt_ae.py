"""The A&E models (stg_istv__attendances, stg_istv__extracts, ae_assault_monthly) built by dbt against a
real PostgreSQL (embedded) from a small hand-made set of ISTV extracts.

The dbt unit tests (models/intermediate/ae/_int_ae__models.yml, models/marts/ae/_ae__models.yml,
models/staging/istv/_istv__models.yml) cover the suppression and coverage logic on fixtures; this
checks what they cannot: the real seeds, the contract, the data tests, where the relations are
built (row-level data only in `restricted`, every model it feeds before the mart configured there)
and, over the whole built mart, that no suppressed count can be recovered by subtraction.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from vru import publish
from vru.config import dbt_env
from vru.validation import validate

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
DATASET = "ae.attendances"
BANDS = ("all ages", "under 25", "25 and over", "not known")
MEASURES = ("attendances", "knife_or_sharp_attendances")
FLAGS = {"attendances": "attendances_suppressed", "knife_or_sharp_attendances": "knife_or_sharp_suppressed"}

with (PROJECT / "seeds" / "ae_sites.csv").open(newline="", encoding="utf-8") as seed_file:
    SITES: dict[str, list[str]] = defaultdict(list)
    for seed_row in csv.DictReader(seed_file):
        SITES[seed_row["force_id"]].append(seed_row["site_code"])
ESSEX, MERSEYSIDE = SITES["essex"], SITES["merseyside"]

Attendance = tuple[str, str, str | None, str]  # arrival, method, age band, site


class Warehouse:
    """Writes extracts the way the A&E loader does: audit.loads, audit.landed_files and the rows."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.next_load_id = 1

    def extract(self, site: str, start: str, end: str, rows: list[Attendance], *,
                outcome: str = "loaded", current: bool = True) -> int:
        rows = [row for row in rows if row[3] == site]
        load_id = self.next_load_id
        self.next_load_id += 1
        force_id = next(force for force, sites in SITES.items() if site in sites)
        sha = f"{load_id:064d}"
        with self.conn.cursor() as cur:
            cur.execute(
                "insert into audit.loads (load_id, dataset, force_id, month, origin, sha256, status, rows_read, "
                "rows_loaded) values (%s, %s, %s, date_trunc('month', %s::date), 'landing', %s, %s, %s, %s)",
                (load_id, DATASET, force_id, start, sha, outcome, len(rows), len(rows)))
            cur.execute(
                "insert into audit.landed_files (dataset, file_name, sha256, size_bytes, outcome, load_id, site_code, "
                "reporting_period_start, reporting_period_end, rows_loaded) values (%s, %s, %s, 1000, %s, %s, %s, %s, "
                "%s, %s)", (DATASET, f"{site}_{start}.csv", sha, outcome, load_id, site, start, end, len(rows)))
            if current:  # a replaced extract's rows were deleted by the loader
                cur.executemany(
                    "insert into restricted.ae_attendances (load_id, sha256, line_no, site_code, force_id, "
                    "reporting_period_start, reporting_period_end, arrival_at, assault_date, assault_time, "
                    "assault_method, assault_location_type, age_band, sex) "
                    "values (%s, %s, %s, %s, %s, %s, %s, %s, cast(%s as timestamp)::date, '00:30', %s, '02', %s, '1')",
                    [(load_id, sha, line_no, site, force_id, start, end, arrival, arrival, method, age)
                     for line_no, (arrival, method, age, _) in enumerate(rows, start=2)])
        return load_id


def attendances(n: int, day: str, method: str, age: str | None, site: str) -> list[Attendance]:
    return [(f"{day} {10 + i % 12:02d}:00", method, age, site) for i in range(n)]


def load_fixture(conn: psycopg.Connection) -> None:
    """January-March 2024 (2023/24 Q4). Hand-computed mart values are in the test below.

    Essex, January: every site sends the whole month; under 25: 3 (one knife, '03'), 25 and over: 8,
    not known: 0. February: nothing. March: only the first site sends; under 25: 6, 25 and over: 5,
    not known: 2, no knife.
    Merseyside, January: the first site sends 1-15 January only; under 25: 5, all 'other sharp
    object' ('04'). March: the first site's extract is re-sent (replaced): its current rows are one
    attendance, age not shared, body part ('01').
    """
    w = Warehouse(conn)
    january: list[Attendance] = [
        *attendances(1, "2024-01-03", "03", "16-17", ESSEX[0]),
        *attendances(1, "2024-01-09", "01", "0-15", ESSEX[0]),
        ("2024-01-31 23:30", "02", "18-24", ESSEX[0]),  # last minutes of the month
    ]
    for i in range(8):  # 25 and over, spread over the sites
        january.append((f"2024-01-{10 + i:02d} 08:15", "01", ("25-34", "35-44", "65+")[i % 3], ESSEX[i % len(ESSEX)]))
    for site in ESSEX:
        w.extract(site, "2024-01-01", "2024-01-31", january)
    march = [*attendances(6, "2024-03-05", "01", "18-24", ESSEX[0]),
             *attendances(5, "2024-03-20", "02", "45-54", ESSEX[0]),
             *attendances(2, "2024-03-31", "06", None, ESSEX[0])]
    w.extract(ESSEX[0], "2024-03-01", "2024-03-31", march)

    w.extract(MERSEYSIDE[0], "2024-01-01", "2024-01-15", attendances(5, "2024-01-14", "04", "18-24", MERSEYSIDE[0]))
    w.extract(MERSEYSIDE[0], "2024-03-01", "2024-03-31", attendances(2, "2024-03-02", "01", "25-34", MERSEYSIDE[0]),
              current=False)
    w.extract(MERSEYSIDE[0], "2024-03-01", "2024-03-31", attendances(1, "2024-03-02", "01", None, MERSEYSIDE[0]),
              outcome="replaced")


def dbt_build(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # target and logs outside the checkout: the checkout's target/manifest.json is the DAG's.
    return subprocess.run(
        [str(DBT), "build", "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"),
         "--select", "+ae_assault_monthly", "--indirect-selection", "cautious"],
        env={**os.environ, **dbt_env(url), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"},
        capture_output=True, text=True, timeout=600,
    )


@pytest.fixture
def ae_conn(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """An empty warehouse; the dbt-built A&E relations are dropped afterwards (other tests make their own)."""
    yield conn
    conn.execute("drop table if exists marts.ae_assault_monthly, marts_build.ae_assault_monthly cascade")
    conn.execute("drop view if exists restricted.stg_istv__attendances cascade")
    conn.execute("drop view if exists restricted.stg_istv__extracts cascade")


def mart_rows(conn: psycopg.Connection) -> dict[tuple[str, str, str], dict[str, Any]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute("select *, to_char(month, 'YYYY-MM') as ym from marts_build.ae_assault_monthly")
        return {(r["force_id"], r["ym"], r["age_band"]): r for r in cur.fetchall()}


def cells(mart: dict[tuple[str, str, str], dict[str, Any]], force: str, month: str,
          measure: str) -> list[tuple[int | None, bool]]:
    """(shown count, suppressed) for all ages, under 25, 25 and over, not known."""
    return [(mart[(force, month, band)][measure], mart[(force, month, band)][FLAGS[measure]]) for band in BANDS]


S = (None, True)  # a suppressed cell


def test_build_suppresses_and_keeps_row_level_data_restricted(ae_conn: psycopg.Connection, clean_warehouse: str,
                                                               tmp_path: Path) -> None:
    load_fixture(ae_conn)

    done = dbt_build(clean_warehouse, tmp_path)
    assert done.returncode == 0, done.stdout[-6000:]
    for unit_test in ("int_ae_cells_suppressed_primary_and_secondary_suppression",  # the rules' unit tests ran
                      "ae_assault_monthly_names_the_cells"):
        assert re.search(rf"PASS (\w+::)?{unit_test}\b", done.stdout), unit_test
    assert "assert_ae_assault_monthly_disclosure_safe" in done.stdout

    mart = mart_rows(ae_conn)
    months = ("2024-01", "2024-02", "2024-03")
    assert set(mart) == {(force, month, band) for force in SITES for month in months for band in BANDS}

    # Essex January: attendances 11 = 3 + 8 + 0: under 25 (3) is 1-4, so all four cells are
    # withheld (all or nothing, the zero too); knife 1 = 1 + 0 + 0: all four withheld likewise.
    assert cells(mart, "essex", "2024-01", "attendances") == [S, S, S, S]
    assert cells(mart, "essex", "2024-01", "knife_or_sharp_attendances") == [S, S, S, S]
    essex_january = mart[("essex", "2024-01", "all ages")]
    assert (essex_january["coverage"], essex_january["sites_expected"], essex_january["sites_reporting"],
            essex_january["under_25_share"]) == ("complete", len(ESSEX), len(ESSEX), None)
    assert (essex_january["financial_year"], essex_january["fy_start"], essex_january["financial_quarter"],
            essex_january["force_name"], essex_january["is_vru_area"]) == ("2023/24", 2023, 4, "Essex Police", True)

    # Essex February: no extract from any site: NULL counts, nothing flagged
    for band in BANDS:
        row = mart[("essex", "2024-02", band)]
        assert (row["attendances"], row["knife_or_sharp_attendances"], row["attendances_suppressed"],
                row["knife_or_sharp_suppressed"], row["coverage"], row["sites_reporting"]) == (
            None, None, False, False, "no extract", 0)

    # Essex March: one site of four (partial, published: the publication lag has long passed):
    # 13 = 6 + 5 + 2: not known (2) is 1-4, so all four attendances cells are withheld (the old
    # rule showed 13 and 6 and withheld 5 and 2); no knife: zeros shown; no share
    assert cells(mart, "essex", "2024-03", "attendances") == [S, S, S, S]
    assert cells(mart, "essex", "2024-03", "knife_or_sharp_attendances") == [(0, False)] * 4
    essex_march = mart[("essex", "2024-03", "all ages")]
    assert (essex_march["coverage"], essex_march["sites_reporting"], essex_march["under_25_share"]) == (
        "partial", 1, None)

    # Merseyside January: half a month from one site (partial, no site reporting the whole month);
    # 5 under 25, all other sharp object: nothing suppressed, share 1
    assert cells(mart, "merseyside", "2024-01", "attendances") == [(5, False), (5, False), (0, False), (0, False)]
    assert cells(mart, "merseyside", "2024-01", "knife_or_sharp_attendances") == [
        (5, False), (5, False), (0, False), (0, False)]
    merseyside_january = mart[("merseyside", "2024-01", "all ages")]
    assert (merseyside_january["coverage"], merseyside_january["sites_reporting"],
            merseyside_january["under_25_share"]) == ("partial", 0, Decimal("1.0000"))
    # Merseyside March: only the re-sent extract counts (1 attendance, age not shared)
    assert cells(mart, "merseyside", "2024-03", "attendances") == [S, S, S, S]
    assert mart[("merseyside", "2024-03", "all ages")]["sites_reporting"] == 1

    # A force with sites but no extract at all
    assert {mart[("durham", m, b)]["coverage"] for m in months for b in BANDS} == {"no extract"}
    assert mart[("derbyshire", "2024-01", "all ages")]["is_vru_area"] is False

    # Over the whole mart: no count 1-4 shown, and no suppressed cell recoverable by subtraction
    for (force, month, band), row in mart.items():
        for measure in MEASURES:
            assert not (row[measure] is not None and 1 <= row[measure] <= 4), (force, month, band, measure)
            if row["coverage"] != "no extract":
                assert (row[measure] is None) == row[FLAGS[measure]], (force, month, band, measure)
        if band == "all ages":
            for measure in MEASURES:
                suppressed = sum(1 for _, flag in cells(mart, force, month, measure) if flag)
                assert suppressed in (0, 4), (force, month, measure)  # all or nothing

    # Shown all-ages totals equal the attendances loaded for the force-month
    loaded = dict(((f, m), n) for f, m, n in ae_conn.execute(
        "select force_id, to_char(arrival_at, 'YYYY-MM'), count(*) from restricted.ae_attendances group by 1, 2"))
    for (force, month, band), row in mart.items():
        if band == "all ages" and row["attendances"] is not None:
            assert row["attendances"] == loaded.get((force, month), 0), (force, month)

    # Where things are built: row-level staging in `restricted` (views, no BI access), the mart in marts
    kinds = dict(ae_conn.execute(
        "select n.nspname || '.' || c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where c.relname in ('stg_istv__attendances', 'stg_istv__extracts', 'ae_assault_monthly')").fetchall())
    assert kinds == {"restricted.stg_istv__attendances": "v", "restricted.stg_istv__extracts": "v",
                     "marts_build.ae_assault_monthly": "r"}
    # built where no BI reader can see it; readable once published (write-audit-publish)
    assert ae_conn.execute("select has_table_privilege('vru_bi_reader', 'marts_build.ae_assault_monthly', "
                           "'select')").fetchone() == (False,)
    with psycopg.connect(clean_warehouse) as publishing:
        publish.promote(publishing, "test", ["ae_assault_monthly"])
    privileges = ae_conn.execute(
        "select has_table_privilege('vru_bi_reader', 'marts.ae_assault_monthly', 'select'), "
        "has_schema_privilege('vru_bi_reader', 'restricted', 'usage'), "
        "has_table_privilege('vru_bi_reader', 'restricted.stg_istv__attendances', 'select'), "
        "has_table_privilege('vru_bi_reader', 'restricted.ae_attendances', 'select')").fetchone()
    assert privileges == (True, False, False, False)
    outside = ae_conn.execute(
        "select n.nspname || '.' || c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "join pg_attribute a on a.attrelid = c.oid and a.attname = 'arrival_at' and not a.attisdropped "
        "where n.nspname <> 'restricted' and c.relkind in ('r', 'v', 'm', 'p')").fetchall()
    assert outside == []  # no relation with arrival times (row-level A&E data) outside restricted
    # Every model fed by the row-level rows, until the suppressing mart, is configured into
    # `restricted` (the ephemeral ones too, should they ever be materialised), and the
    # intermediate models built no relation anywhere
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text(encoding="utf-8"))
    children = manifest["child_map"]
    fed, todo = set(), list(children["source.vru.istv.ae_attendances"])
    while todo:
        node = todo.pop()
        if node in fed or not node.startswith("model."):
            continue
        fed.add(node)
        if node != "model.vru.ae_assault_monthly":  # its output is suppressed: its readers may be anywhere
            todo.extend(children[node])
    assert {"model.vru.int_ae_cells_suppressed", "model.vru.ae_assault_monthly"} <= fed
    assert {n: manifest["nodes"][n]["schema"] for n in fed - {"model.vru.ae_assault_monthly"}} == {
        n: "restricted" for n in fed - {"model.vru.ae_assault_monthly"}}
    assert all(manifest["nodes"][n]["config"]["materialized"] in ("view", "ephemeral")
               for n in fed - {"model.vru.ae_assault_monthly"})
    assert ae_conn.execute("select count(*) from pg_class where relname like 'int\\_%'").fetchone() == (0,)

    # The dbt-built mart and the raw rows pass their suites (the suites' failures: test_validation_ae.py)
    for stage, dataset, table in (("raw", "ae.attendances", "restricted.ae_attendances"),
                                  ("marts", "ae.ae_assault_monthly", "marts_build.ae_assault_monthly")):
        outcome = validate(stage, dataset, table, warehouse_url=clean_warehouse, docs_dir=tmp_path / "docs")
        assert outcome.success, outcome.critical_failures + outcome.warnings


def test_an_unknown_code_fails_the_build_without_showing_attendances(ae_conn: psycopg.Connection,
                                                                    clean_warehouse: str, tmp_path: Path) -> None:
    w = Warehouse(ae_conn)
    w.extract(ESSEX[0], "2024-01-01", "2024-01-31",
              [*attendances(6, "2024-01-05", "01", "18-24", ESSEX[0]),
               *attendances(2, "2024-01-06", "01", "25+", ESSEX[0])])

    done = dbt_build(clean_warehouse, tmp_path)
    assert done.returncode != 0
    assert "FAIL 1 assert_istv_attendances_codes_known" in done.stdout, done.stdout[-6000:]
    assert "2024-01-06" not in done.stdout  # the failure names the code and a count, never an attendance
