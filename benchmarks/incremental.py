"""Work in proportion to the change: the stop and search dbt models and validation at national volume.

Generates national-volume raw stop and search data in a private embedded PostgreSQL (43 forces x
36 months, about 1.5M stops: Metropolitan ~12,000 a month, ten large forces ~1,500, the others
~500, each +-10%; vocabularies of the published files), recorded in audit.loads as the loader
records them, then times three nights:

1. first: the first build (dbt creates the tables), the raw/staging/mart suites, the publication;
2. new month: a month for every force (43 force-months) loaded, an incremental build, the suites
   scoped to the changed force-months (vru.feeds.police FEED.changed_partitions), publication;
3. revision: three force-months republished (one with fewer records, one with more, one with none);

then a full rebuild of the same data (`dbt build --full-refresh`, whole-table suites) as the
yardstick, and checks that it gives the same staging rows and mart as the incremental builds.

    .venv/bin/python benchmarks/incremental.py [--months 36] [--scale 1.0]

dbt runs as one `dbt build --select +stop_search_monthly` (seeds, the police models and their
tests); the per-node times come from dbt's run_results.json. In the DAG each model is its own
Cosmos task and pays dbt's start-up (~4-8 s) on top, whatever the data. Validation is
vru.validation.validate, as the gates call it; Great Expectations is imported before timing
(10+ s per process, once per task in the DAG).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
from vru import publish, warehouse
from vru.config import dbt_env
from vru.feeds.police import FEED

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
STAGING = "staging.stg_police__stop_searches"
LARGE = ("west-midlands", "greater-manchester", "west-yorkshire", "merseyside", "thames-valley", "essex", "kent",
         "hampshire", "south-yorkshire", "avon-and-somerset")
MART_COLUMNS = ("force_id, month, coverage, searches, s60_searches, weapon_searches, arrests, outcome_linked_finds, "
                "searches_outcome_link_recorded, under_25_searches, searches_black, searches_white, arrest_rate, "
                "find_rate, is_vru_area, s60_relaxed")

# Weighted by repetition; every value is in the raw suite's sets (expectations/raw.police.*.json).
_PICK = {
    "type": ["Person search"] * 8 + ["Person and Vehicle search"] + ["Vehicle search"],
    "gender": ["Male"] * 8 + ["Female"] + [None],
    "age_range": ["18-24"] * 3 + ["25-34"] * 3 + ["10-17"] * 2 + ["over 34"] * 2 + [None],
    "officer_defined_ethnicity": ["White"] * 6 + ["Black"] * 2 + ["Asian"] + ["Other"] + [None],
    "legislation": ["Misuse of Drugs Act 1971 (section 23)"] * 6
    + ["Police and Criminal Evidence Act 1984 (section 1)"] * 3
    + ["Criminal Justice and Public Order Act 1994 (section 60)", "Criminal Justice Act 1988 (section 139B)",
       "Firearms Act 1968 (section 47)"],
    "object_of_search": ["Controlled drugs"] * 6 + ["Offensive weapons"] * 2
    + ["Stolen goods", "Article for use in theft", "Anything to threaten or harm anyone", "Firearms"],
    "outcome": ["A no further action disposal"] * 7 + ["Arrest"] * 2
    + ["Community resolution", "Khat or Cannabis warning", "Summons / charged by post", "Penalty Notice for Disorder"],
}


def _pick(column: str) -> str:
    """SQL choosing one of the column's values per row (psycopg placeholder for the array)."""
    return f"(%({column})s::text[])[1 + floor(random() * cardinality(%({column})s::text[]))::int]"


_GENERATE = f"""
insert into raw.stop_searches (load_id, force_id, month, line_no, type, involved_person, datetime,
    operation, latitude, longitude, street_id, street_name, gender, age_range, self_defined_ethnicity,
    officer_defined_ethnicity, legislation, object_of_search, outcome, outcome_id,
    outcome_linked_to_object_of_search, removal_of_more_than_outer_clothing)
select l.load_id, l.force_id, l.month, g.i, {_pick("type")}, true,
    (l.month::timestamp + random() * interval '28 days') at time zone 'UTC', false,
    51 + random() * 3, -2.5 + random() * 2.5, 900000 + g.i, 'On or near Bench Street',
    {_pick("gender")}, {_pick("age_range")}, null, {_pick("officer_defined_ethnicity")},
    {_pick("legislation")}, {_pick("object_of_search")}, {_pick("outcome")}, null,
    random() < 0.3, random() < 0.05
from audit.loads l cross join lateral generate_series(0, l.rows_loaded - 1) as g (i)
where l.load_id = any(%(load_ids)s)
"""


def forces() -> list[str]:
    lines = (PROJECT / "seeds" / "force_areas.csv").read_text(encoding="utf-8").splitlines()[1:]
    return [line.split(",", 1)[0] for line in lines]


def volume(force: str, scale: float) -> int:
    return int((12000 if force == "metropolitan" else 1500 if force in LARGE else 500) * scale)


def month_of(index: int) -> date:
    return date(2021 + index // 12, index % 12 + 1, 1)


def load(conn: psycopg.Connection, parts: list[tuple[str, date, int]], status: str = "loaded") -> int:
    """Load force-months as the loader does: one transaction deletes each one's rows, records the
    load (loaded, or replaced) and writes the new rows. Returns the rows written."""
    with conn.transaction():
        conn.execute("select setseed(0.15)")
        ids = []
        for force, month, rows in parts:
            previous = conn.execute(
                "select max(load_id) from audit.loads where dataset = %s and force_id = %s and month = %s "
                "and status in ('loaded', 'replaced')", (FEED.dataset, force, month)).fetchone()
            conn.execute("delete from raw.stop_searches where force_id = %s and month = %s", (force, month))
            row = conn.execute(
                "insert into audit.loads (dataset, force_id, month, origin, sha256, status, rows_read, rows_loaded, "
                "previous_load_id, run_id, finished_at) values (%s, %s, %s, 'api', md5(random()::text), %s, %s, %s, "
                "%s, 'bench', now()) returning load_id",
                (FEED.dataset, force, month, status, rows, rows, previous[0] if previous else None)).fetchone()
            assert row is not None
            ids.append(row[0])
            conn.execute("insert into raw.police_availability (force_id, month) values (%s, %s) "
                         "on conflict do nothing", (force, month))
        cur = conn.execute(_GENERATE, {**_PICK, "load_ids": ids})
        return cur.rowcount


def dbt_build(url: str, target: Path, *extra: str) -> dict[str, float]:
    """Run dbt; wall time and the summed node times per group, from run_results.json."""
    project = target.parent / "dbt_project"  # a copy: edits to the checkout during a run change nothing
    if not project.exists():
        shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    started = time.perf_counter()
    done = subprocess.run(
        [str(DBT), "build", "--project-dir", str(project), "--profiles-dir", str(project),
         "--target-path", str(target), "--log-path", str(target / "logs"),
         "--select", "+stop_search_monthly", "--exclude", "assert_force_ids_are_known",
         "--indirect-selection", "cautious", *extra],
        env={**os.environ, **dbt_env(url), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"},
        capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"dbt build failed:\n{done.stdout[-4000:]}")
    manifest = json.loads((target / "manifest.json").read_text())["nodes"]
    groups: dict[str, float] = defaultdict(float)
    for result in json.loads((target / "run_results.json").read_text())["results"]:
        node = result["unique_id"]
        parents = set(manifest.get(node, {}).get("depends_on", {}).get("nodes", []))
        if node.startswith("seed."):
            group = "seeds"
        elif node == "model.vru.stg_police__stop_searches":
            group = "stg model"
        elif node == "model.vru.stop_search_monthly":
            group = "mart model"
        elif node.startswith("unit_test."):
            group = "unit tests"
        elif "model.vru.stop_search_monthly" in parents:
            group = "mart tests"  # the staging-vs-mart test included
        elif "model.vru.stg_police__stop_searches" in parents:
            group = "stg tests"
        else:
            group = "other"  # the availability and load models (views) and their tests, seed tests
        groups[group] += float(result["execution_time"])
    groups["dbt nodes"] = sum(groups.values())
    groups["dbt wall"] = wall
    return dict(groups)


def validate_all(url: str, docs: Path, *, scoped: bool) -> dict[str, float]:
    from vru.validation import validate

    times = {}
    build = f"{publish.BUILD_SCHEMA}.stop_search_monthly"
    for stage, dataset, table in (("raw", FEED.dataset, FEED.raw_table), ("staging", FEED.dataset, STAGING),
                                  ("marts", "police.stop_search_monthly", build)):
        scope = FEED.changed_partitions if scoped and stage != "marts" else None
        started = time.perf_counter()
        outcome = validate(stage, dataset, table, warehouse_url=url, docs_dir=docs, run_id="bench", scope=scope)
        times[f"validate {stage}"] = time.perf_counter() - started
        if outcome.critical_failures:
            raise SystemExit(f"{stage} suite failed: {outcome.critical_failures}")
    times["validation"] = sum(times.values())
    return times


def night(url: str, tmp: Path, name: str, *, full: bool = False) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        snapshot = str(conn.execute("select pg_current_snapshot()::text").fetchone()[0])  # type: ignore[index]
    figures: dict[str, Any] = {"night": name}
    figures.update(dbt_build(url, tmp / "target", *(["--full-refresh"] if full else [])))
    figures.update(validate_all(url, tmp / "docs", scoped=not full))
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        publish.promote(conn, "bench", ["stop_search_monthly"], snapshot)
    figures["publish"] = time.perf_counter() - started
    figures["dbt + validation"] = figures["dbt wall"] + figures["validation"]
    figures["nodes + validation"] = figures["dbt nodes"] + figures["validation"]
    return figures


def state(url: str) -> tuple[int, str, list[Any]]:
    with psycopg.connect(url) as conn:
        staged = conn.execute(f"select count(*), md5(string_agg(t::text, '|' order by stop_search_id)) "
                              f"from {STAGING} t").fetchone()
        mart = conn.execute(f"select {MART_COLUMNS} from {publish.BUILD_SCHEMA}.stop_search_monthly "
                            "order by force_id, month").fetchall()
    assert staged is not None
    return int(staged[0]), str(staged[1]), mart


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every force's monthly volume")
    args = parser.parse_args()
    import great_expectations  # noqa: F401  # 10+ s of import, paid once before timing

    names = forces()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        server = warehouse.EmbeddedWarehouse(tmp / "warehouse")
        url = server.start()
        try:
            warehouse.apply_schema(url)
            with psycopg.connect(url) as conn:
                history = [(f, month_of(m), volume(f, args.scale)) for m in range(args.months) for f in names]
                started = time.perf_counter()
                written = load(conn, history)
                print(f"generated {written:,} stops in {len(history):,} force-months "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
            rows.append({**night(url, tmp, "first (empty build)"), "rows": written, "partitions": len(history)})
            print(rows[-1], flush=True)

            with psycopg.connect(url) as conn:
                new = [(f, month_of(args.months), volume(f, args.scale)) for f in names]
                written = load(conn, new)
            rows.append({**night(url, tmp, "new month (43 force-months)"), "rows": written, "partitions": len(new)})
            print(rows[-1], flush=True)

            with psycopg.connect(url) as conn:
                revised = [("metropolitan", month_of(args.months - 6), volume("metropolitan", args.scale) - 250),
                           ("kent", month_of(args.months), volume("kent", args.scale) + 40),
                           ("durham", month_of(3), 0)]
                written = load(conn, revised, "replaced")
            rows.append({**night(url, tmp, "revision (3 force-months)"), "rows": written, "partitions": len(revised)})
            print(rows[-1], flush=True)
            incremental = state(url)

            with psycopg.connect(url) as conn:  # forget what was published: the dbt tests check everything
                conn.execute("update audit.publications set raw_snapshot = null")
            rows.append({**night(url, tmp, "full rebuild, same data (--full-refresh, whole tables)", full=True),
                         "rows": incremental[0], "partitions": len(history) + len(new)})
            print(rows[-1], flush=True)
            full = state(url)
            identical = incremental == full
        finally:
            server.stop()

    keys = ("dbt wall", "dbt nodes", "seeds", "stg model", "stg tests", "mart model", "mart tests", "unit tests",
            "other", "validate raw", "validate staging", "validate marts", "validation", "nodes + validation",
            "dbt + validation", "publish")
    yardstick, work = rows[-1]["dbt + validation"], rows[-1]["nodes + validation"]
    print()
    print("Seconds. 'dbt nodes' is dbt's own time per node, without its start-up; the last columns are")
    print("each night's dbt + validation as a share of the full rebuild's, with and without dbt start-up.")
    print()
    print("| night | rows changed | " + " | ".join(keys) + " | vs full rebuild (wall) | (nodes) |")
    print("|---|---|" + "---|" * (len(keys) + 2))
    for row in rows:
        cells = " | ".join(f"{row.get(k, 0):.1f}" for k in keys)
        print(f"| {row['night']} | {row['rows']:,} in {row['partitions']:,} force-months | {cells} | "
              f"{100 * row['dbt + validation'] / yardstick:.0f}% | {100 * row['nodes + validation'] / work:.0f}% |")
    print()
    print(f"incremental builds and the full refresh give identical staging rows and mart: {identical}")
    if not identical:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
