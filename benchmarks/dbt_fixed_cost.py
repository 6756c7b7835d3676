"""Benchmark: the fixed cost of running the dbt project in many small invocations or few large ones.

Issue 15 part 4: each Cosmos task of the transform DAG (`dbt build` of one model, in a fresh task
process: `ExecutionMode.LOCAL`, `InvocationMode.DBT_RUNNER`) pays dbt's start-up. This measures
the same dbt work laid out as the options would run it, against a private warehouse holding the
bundled stop-and-search sample, each layout in fresh processes as Airflow would start them:

- per-model:  one `dbt build --select <model>` process per model, plus one per test over several
              models (what the DAG runs today: Cosmos `TestBehavior.BUILD`, detached tests);
- per-feed:   one process per feed's folder (staging + intermediate + marts of police, home_office,
              nhs, ons, istv), then one for the outcome marts that read several feeds;
- per-layer:  one process per layer (staging, intermediate, marts);
- one build:  one `dbt build` of the whole project (what Cosmos's watcher mode runs in its
              producer task, with sensor tasks per model following it);
- warm:       one process that imports dbt once and invokes `dbtRunner` once per model with the
              manifest already parsed (a warm dbt process).

Seeds are built once first and excluded from every layout, as the DAG's `dbt_seeds` task does.
For each layout: wall time, CPU of the dbt processes (children's user + system time: what the
layout costs the two cores whatever else runs), invocations, and nodes passed / failed / skipped.

    .venv/bin/python benchmarks/dbt_fixed_cost.py              # fixed cost per invocation, estimates
    .venv/bin/python benchmarks/dbt_fixed_cost.py --layouts    # every layout run whole (~30 processes)

Airflow's own cost per task (a task process, its supervisor, the API calls) comes on top of the
per-process figures and is not measured here.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "plugins") not in sys.path:
    sys.path.insert(0, str(REPO / "plugins"))
PROJECT = REPO / "dbt_project"
SAMPLE = REPO / "plugins" / "vru_sample" / "data" / "police"
EXCLUDE = ["resource_type:seed", "assert_ae_seeds_valid"]  # as the DAG's dbt group
FEEDS = ["police", "home_office", "nhs", "ons", "istv", "ae"]

_WARM = """
import json, sys, time
from dbt.cli.main import dbtRunner
args = json.loads(sys.argv[1])
first = dbtRunner().invoke(["parse", *args["common"]])
runner = dbtRunner(manifest=first.result)
counts = {"pass": 0, "fail": 0, "skip": 0, "calls": []}
for select in args["selections"]:
    started = time.perf_counter()
    res = runner.invoke(["build", "--select", *select, "--exclude", *args["exclude"], *args["common"]])
    counts["calls"].append(time.perf_counter() - started)
    for r in (res.result or []):
        s = str(r.status)
        counts["pass" if s in ("success", "pass") else "skip" if s == "skipped" else "fail"] += 1
print(json.dumps(counts))
"""


def _models_and_multi_parent_tests() -> tuple[list[str], list[str]]:
    """Models in build order, and the tests over two or more models (Cosmos runs those apart)."""
    manifest = json.loads((PROJECT / "target" / "manifest.json").read_text())
    nodes = manifest["nodes"]
    models = {k: v for k, v in nodes.items() if v["resource_type"] == "model"}
    order: list[str] = []
    seen: set[str] = set()

    def visit(node: str) -> None:
        if node in seen or node not in models:
            return
        seen.add(node)
        for parent in models[node]["depends_on"]["nodes"]:
            visit(parent)
        order.append(node)

    for node in sorted(models):
        visit(node)
    tests = sorted(
        v["name"] for v in nodes.values()
        if v["resource_type"] == "test" and v["name"] != "assert_ae_seeds_valid"
        and sum(p in models for p in v["depends_on"]["nodes"]) > 1
    )
    return [models[n]["name"] for n in order], tests


def _layouts(models: list[str], tests: list[str]) -> dict[str, list[list[str]]]:
    folders = {f: [p for layer in ("staging", "intermediate", "marts")
                   for p in glob.glob(str(PROJECT / "models" / layer / f))] for f in FEEDS}
    per_feed = [[f"path:{Path(p).relative_to(PROJECT)}" for p in paths] for paths in folders.values() if paths]
    return {
        "per-model (today)": [[m] for m in models] + [[t] for t in tests],
        "per-feed": [*per_feed, ["path:models/marts/outcomes"]],
        "per-layer": [["path:models/staging"], ["path:models/intermediate"], ["path:models/marts"]],
        "one build": [["path:models"]],
    }


def _count(output: str) -> dict[str, int]:
    """PASS/ERROR/SKIP of the dbt summary line ("Done. PASS=12 WARN=0 ERROR=1 SKIP=3 ...")."""
    for line in reversed(output.splitlines()):
        if "PASS=" in line:
            parts = dict(p.split("=") for p in line.split() if "=" in p)
            return {"pass": int(parts.get("PASS", 0)), "fail": int(parts.get("ERROR", 0)),
                    "skip": int(parts.get("SKIP", 0))}
    return {"pass": 0, "fail": 0, "skip": 0}


def run_layout(selections: list[list[str]], common: list[str], env: dict[str, str]) -> dict[str, Any]:
    dbt = str(Path(sys.executable).parent / "dbt")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    totals = {"pass": 0, "fail": 0, "skip": 0}
    for select in selections:
        done = subprocess.run([dbt, "build", "--select", *select, "--exclude", *EXCLUDE, *common],
                              env=env, capture_output=True, text=True, check=False)
        for key, value in _count(done.stdout).items():
            totals[key] += value
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": time.perf_counter() - started, "cpu": cpu, "invocations": len(selections), **totals}


def run_warm(models: list[str], tests: list[str], common: list[str], env: dict[str, str],
             extra: list[list[str]] | None = None) -> dict[str, Any]:
    selections = [[m] for m in models] + [[t] for t in tests] + (extra or [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WARM, json.dumps(
        {"common": common, "selections": selections, "exclude": EXCLUDE})],
        env=env, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"warm runner failed:\n{done.stderr[-3000:]}")
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": time.perf_counter() - started, "cpu": cpu, "invocations": len(selections), **counts}


def _all_layouts(models: list[str], tests: list[str], common: list[str], env: dict[str, str],
                 repeats: int) -> None:
    layouts = _layouts(models, tests)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in [*layouts, "warm runner"]}
    for repeat in range(1, repeats + 1):
        for name, selections in layouts.items():
            results[name].append(run_layout(selections, common, env))
            print(f"repeat {repeat}: {name}: {results[name][-1]} (load average {_loadavg()})", flush=True)
        results["warm runner"].append(run_warm(models, tests, common, env))
        print(f"repeat {repeat}: warm runner: {results['warm runner'][-1]}", flush=True)
    print(f"\n{len(models)} models, {len(tests)} tests over several models; {os.cpu_count()} CPUs; "
          f"medians of {repeats}")
    print(f"{'layout':<20} {'processes':>9} {'dbt calls':>9} {'wall s':>7} {'CPU s':>6} "
          f"{'CPU s/call':>10} {'pass':>5} {'fail':>5} {'skip':>5}")
    for name, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        calls = int(runs[0]["invocations"])
        processes = 1 if name == "warm runner" else calls
        print(f"{name:<20} {processes:>9} {calls:>9} {seconds:>7.1f} {cpu:>6.1f} {cpu / calls:>10.2f} "
              f"{int(runs[0]['pass']):>5} {int(runs[0]['fail']):>5} {int(runs[0]['skip']):>5}")


def _probe(models: list[str], common: list[str], env: dict[str, str], repeats: int) -> None:
    """The fixed cost of one dbt invocation, fresh process against warm, and one build of all.

    The per-layout totals follow: a layout costs about (its invocations x the fixed cost) + the
    work of the nodes, which is the same in every layout (the one-build figure minus one fixed cost).
    """
    small = ["stg_police__availability"]  # a view with one test: almost no work of its own
    fresh = [run_layout([small], common, env) for _ in range(max(3, repeats))]
    print(f"fresh process, one small model: {[round(r['seconds'], 1) for r in fresh]} s (load average {_loadavg()})",
          flush=True)
    warm = run_warm([], [], common, env, extra=[small] * max(3, repeats))
    print(f"warm process, same model: {warm} (load average {_loadavg()})", flush=True)
    whole = [run_layout([["path:models"]], common, env) for _ in range(repeats)]
    print(f"one build of every model: {whole} (load average {_loadavg()})", flush=True)
    f_wall = statistics.median(r["seconds"] for r in fresh)
    f_cpu = statistics.median(r["cpu"] for r in fresh)
    w_call = statistics.median(warm["calls"])
    all_wall = statistics.median(r["seconds"] for r in whole)
    all_cpu = statistics.median(r["cpu"] for r in whole)
    work_wall, work_cpu = max(all_wall - f_wall, 0.0), max(all_cpu - f_cpu, 0.0)
    print(f"\nfixed cost of a fresh dbt process (one small model): {f_wall:.1f} s wall, {f_cpu:.1f} s CPU; "
          f"a warm dbtRunner call on a parsed manifest: {w_call:.1f} s wall")
    print(f"one build of every model: {all_wall:.1f} s wall, {all_cpu:.1f} s CPU "
          f"(pass {int(whole[0]['pass'])}, fail {int(whole[0]['fail'])}, skip {int(whole[0]['skip'])})")
    print(f"\n{'layout':<22} {'dbt processes':>13} {'est. wall s':>11} {'est. CPU s':>10}")
    layouts = _layouts(models, _models_and_multi_parent_tests()[1])
    for name, selections in layouts.items():
        n = len(selections)
        print(f"{name:<22} {n:>13} {n * f_wall + work_wall:>11.0f} {n * f_cpu + work_cpu:>10.0f}")
    n = len(layouts["per-model (today)"])
    print(f"{'warm runner':<22} {1:>13} {f_wall + n * w_call + work_wall:>11.0f} {'':>10}")


def _loadavg() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--layouts", action="store_true",
                        help="run every layout whole (about 30 dbt processes; ~5 min idle, far more under load)")
    args = parser.parse_args()

    import logging

    import psycopg
    from vru import warehouse
    from vru.archive import Archive
    from vru.config import dbt_env
    from vru.feeds import police

    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="vru-dbt-bench-"))
    os.environ["VRU_HOME"] = str(tmp)
    os.environ.pop("VRU_WAREHOUSE_URL", None)
    server = warehouse.EmbeddedWarehouse(tmp / "warehouse")
    try:
        url = server.start()
        warehouse.apply_schema(url)
        with psycopg.connect(url, autocommit=True) as conn:
            for path in sorted(SAMPLE.glob("*-stop-and-search.csv")):
                police.ingest_archive_file(conn, Archive(tmp / "archive"), path)
        env = {**os.environ, **dbt_env(url), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}
        common = ["--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
                  "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")]
        dbt = str(Path(sys.executable).parent / "dbt")
        seeds = subprocess.run([dbt, "build", "--select", "resource_type:seed", "--indirect-selection",
                                "cautious", *common], env=env, capture_output=True, text=True, check=False)
        print(f"seeds: {_count(seeds.stdout)}; warehouse holds the bundled stop-and-search sample "
              f"({len(list(SAMPLE.glob('*.csv')))} force-months)", flush=True)
        models, tests = _models_and_multi_parent_tests()
        if args.layouts:
            _all_layouts(models, tests, common, env, args.repeats)
        else:
            _probe(models, common, env, args.repeats)
    finally:
        try:
            server.stop()
        finally:
            if args.keep:
                print(f"kept {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
