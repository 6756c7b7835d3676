"""What the programme effect estimates add to a transform run, at 43 areas x 40 quarters.

Starts a private embedded PostgreSQL, applies the product schema, fills the build's outcome mart
(marts_build.vru_outcomes_quarterly, the estimator's columns) with a SYNTHETIC panel of the 43 force
areas over 40 quarters (vru_sample.panels.synthetic_outcome_rows: knife offences with a planted
effect, A&E attendances with withheld cells, rare homicides), then times, as the transform runs
them:

1. estimate_effects: `vru.effects_build.build_effects` in a fresh interpreter (imports included,
   as an Airflow task process pays them), 999 permutations per estimate;
2. dbt_effects: `dbt build --select tag:effects` (the two effect marts and their tests);
3. the two effect suites in validate_marts (`vru.validation.validate`; GX already imported there).

Prints one Markdown table row per repeat (wall time, and the CPU seconds of the child processes,
which a loaded machine does not inflate as much) and the median, for docs/decisions.md.

    .venv/bin/python benchmarks/effects.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import yaml  # type: ignore[import-untyped]
from vru import warehouse
from vru.config import dbt_env
from vru_sample.panels import synthetic_outcome_rows

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"


def fill(url: str) -> int:
    with (PROJECT / "seeds" / "vru_membership_years.csv").open(newline="", encoding="utf-8") as f:
        funded_2019 = sorted({r["force_id"] for r in csv.DictReader(f)
                              if r["fy_start"] == "2019" and r["is_vru"] == "true"})
    with (PROJECT / "seeds" / "force_areas.csv").open(newline="", encoding="utf-8") as f:
        forces = [r["force_id"] for r in csv.DictReader(f)]
    models = yaml.safe_load((PROJECT / "models" / "marts" / "outcomes" / "_outcomes__models.yml").read_text())["models"]
    columns = next(m for m in models if m["name"] == "vru_outcomes_quarterly")["columns"]
    rows = synthetic_outcome_rows(forces, funded_2019, ["cleveland", "humberside"])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("drop table if exists marts_build.vru_outcomes_quarterly")
        conn.execute("create table marts_build.vru_outcomes_quarterly ("
                     + ", ".join(f"{c['name']} {c['data_type']}" for c in columns) + ")")
        names = list(rows[0])
        with conn.cursor() as cur:
            cur.executemany(f"insert into marts_build.vru_outcomes_quarterly ({', '.join(names)}) "
                            f"values ({', '.join(['%s'] * len(names))})", [list(r.values()) for r in rows])
    return len(rows)


def timed(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child: user + system) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{args[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - started, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from vru.validation import validate  # GX import (10+ s) outside the timings, as in validate_marts

    with tempfile.TemporaryDirectory() as tmp:
        server = warehouse.EmbeddedWarehouse(Path(tmp) / "warehouse")
        url = server.start()
        warehouse.apply_schema(url)
        rows = fill(url)
        print(f"{rows} area-quarters; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at start")
        print("| run | load average | estimate_effects: wall (CPU) | dbt_effects: wall (CPU) | 2 suites: wall "
              "| total wall |")
        print("|---|---|---|---|---|---|")
        totals = []
        for run in range(1, args.repeats + 1):
            load = os.getloadavg()[0]
            estimate, estimate_cpu = timed([sys.executable, "-c", "import sys; from vru.effects_build import "
                                            "build_effects; print(build_effects('bench', sys.argv[1]))", url])
            build, build_cpu = timed([str(DBT), "build", "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
                           "--target-path", f"{tmp}/target", "--log-path", f"{tmp}/logs", "--select", "tag:effects"],
                          env={**os.environ, **dbt_env(url), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"})
            started = time.perf_counter()
            for mart in ("vru_programme_effect", "vru_programme_event_study"):
                outcome = validate("marts", f"outcomes.{mart}", f"marts_build.{mart}", warehouse_url=url,
                                   docs_dir=Path(tmp) / "docs", run_id="bench")
                if not outcome.success:
                    raise SystemExit(f"{mart}: {outcome.critical_failures}")
            suites = time.perf_counter() - started
            totals.append(estimate + build + suites)
            print(f"| {run} | {load:.1f} | {estimate:.1f} s ({estimate_cpu:.1f} s) | {build:.1f} s ({build_cpu:.1f} s) "
                  f"| {suites:.1f} s | {totals[-1]:.1f} s |")
        print(f"median total wall: {statistics.median(totals):.1f} s (target: under 30 s on 2 cores; under load, "
              "the CPU seconds say what the work itself costs)")
        server.stop()


if __name__ == "__main__":
    main()
