"""Benchmark: the .xlsx reader, hand-written (SpreadsheetML streamed with defusedxml) against openpyxl.

Writes a seeded workbook of `--rows` x `--columns` cells (default 200,000 x 20: a text code, a
text name, a date, integers and decimals, as the published tables mix them) with openpyxl's
write-only mode, then reads every row with `vru.tables.read_rows(data, "xlsx")`, each reader in a
fresh child interpreter, `--repeats` times:

- **hand-written**: `plugins/vru/tables.py` as it was at `--old-ref` (the last commit with the
  hand-written SpreadsheetML reader), taken with `git show` and imported beside the current package;
- **openpyxl**: the current `vru.tables` (openpyxl in read-only mode, values only);
- **openpyxl, padded** (one run): openpyxl's `iter_rows(max_col=16,384)`, what passing the column
  limit as `max_col` would cost: openpyxl pads every row to `max_col` cells.

Time is the reading alone (the file is in memory first, as the feeds hold a download), as CPU
time (what the reader costs, whatever else the machine runs) and wall clock; memory is
the child's peak RSS (`VmHWM`) and its RSS before reading (interpreter, imports and the file's
bytes), so the difference is what reading cost. Prints medians; not a test.

    .venv/bin/python benchmarks/xlsx_readers.py                          # 200k x 20, 3 repeats
    .venv/bin/python benchmarks/xlsx_readers.py --rows 20000 --repeats 1  # a quick look
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OLD_REF = "cf1e9f9"  # main before openpyxl: the last commit with the hand-written reader

_CHILD = """
import importlib.util, json, sys, time
from pathlib import Path

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024

mode, path, old = sys.argv[1], sys.argv[2], sys.argv[3]
if mode == "hand-written":
    spec = importlib.util.spec_from_file_location("old_tables", old)
    tables = importlib.util.module_from_spec(spec)
    sys.modules["old_tables"] = tables
    spec.loader.exec_module(tables)
else:
    from vru import tables
data = Path(path).read_bytes()
before = status("VmRSS")
started, cpu = time.perf_counter(), time.process_time()
rows = cells = 0
sample = None
if mode == "openpyxl, padded":
    import io
    from openpyxl import load_workbook
    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    for sheet in book.worksheets:
        for values in sheet.iter_rows(max_row=1_048_577, max_col=16_384, values_only=True):
            filled = [v for v in values if v is not None]
            if filled:
                rows += 1
                cells += len(filled)
    book.close()
else:
    for row in tables.read_rows(data, "xlsx"):
        rows += 1
        cells += len(row.cells)
        if rows == 2:
            sample = row.cells
took, cpu = time.perf_counter() - started, time.process_time() - cpu
print(json.dumps({"seconds": took, "cpu_seconds": cpu, "rows": rows, "cells": cells, "rss_before_mb": before,
                  "peak_rss_mb": status("VmHWM"), "sample": sample}))
"""


def write_workbook(path: Path, rows: int, columns: int, seed: int = 17) -> None:
    """A seeded workbook: header, then rows of a code, a name, a date, integers and decimals."""
    from openpyxl import Workbook
    from openpyxl.styles import NamedStyle

    rng = random.Random(seed)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Data")
    date_style = NamedStyle(name="day", number_format="yyyy-mm-dd")
    header = ["Code", "Name", "Period end"] + [f"Measure {i}" for i in range(1, columns - 2)]
    sheet.append(header)
    codes = [f"E{23000000 + i}" for i in range(43)]
    names = [f"Police force area {i}" for i in range(43)]
    start = datetime.date(2010, 3, 31)
    from openpyxl.cell import WriteOnlyCell

    for n in range(rows):
        day = WriteOnlyCell(sheet, value=start + datetime.timedelta(days=n % 5000))
        day.style = date_style
        values: list[object] = [codes[n % 43], names[n % 43], day]
        for i in range(columns - 3):
            values.append(rng.randrange(0, 100_000) if i % 2 == 0 else round(rng.uniform(0, 100), 6))
        sheet.append(values)
    book.save(path)


def run(mode: str, path: Path, old: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _CHILD, mode, str(path), str(old)], capture_output=True,
                          text=True, cwd=REPO, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--old-ref", default=OLD_REF)
    parser.add_argument("--padded", action=argparse.BooleanOptionalAction, default=True,
                        help="also time iter_rows(max_col=16,384) once")
    parser.add_argument("--workbook", type=Path, help="keep the generated workbook here (reused if present)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vru_bench_xlsx_"))
    path = args.workbook or work / f"table-{args.rows}x{args.columns}.xlsx"
    if not path.exists():
        started = time.perf_counter()
        write_workbook(path, args.rows, args.columns)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.0f} s")
    old = work / "old_tables.py"
    git = shutil.which("git")
    if git is None:
        raise SystemExit("git is needed: the hand-written reader is taken from the repository's history")
    old.write_text(subprocess.run([git, "show", f"{args.old_ref}:plugins/vru/tables.py"], cwd=REPO,
                                  capture_output=True, text=True, check=True).stdout)

    print(f"{args.rows:,} rows x {args.columns} columns, {path.stat().st_size / 1e6:.1f} MB; "
          f"medians of {args.repeats}; RSS before = interpreter, imports and the file's bytes")
    print("| reader | CPU time | rows/s (CPU) | wall clock | RSS before | peak RSS | reading cost |")
    print("|---|---|---|---|---|---|---|")
    modes = ["hand-written", "openpyxl"]
    results: dict[str, list[dict[str, object]]] = {m: [] for m in modes}
    for _ in range(args.repeats):
        for mode in modes:  # alternated, so load on the machine falls on both alike
            results[mode].append(run(mode, path, old))
            print(f"  ({mode}: {json.dumps({k: v for k, v in results[mode][-1].items() if k != 'sample'})})",
                  flush=True)
    if args.padded:
        results["openpyxl, padded"] = [run("openpyxl, padded", path, old)]
    for mode, runs in results.items():
        seconds = statistics.median(float(r["seconds"]) for r in runs)  # type: ignore[arg-type]
        cpu = statistics.median(float(r["cpu_seconds"]) for r in runs)  # type: ignore[arg-type]
        before = statistics.median(float(r["rss_before_mb"]) for r in runs)  # type: ignore[arg-type]
        peak = statistics.median(float(r["peak_rss_mb"]) for r in runs)  # type: ignore[arg-type]
        rows = int(runs[0]["rows"])  # type: ignore[call-overload]
        print(f"| {mode} | {cpu:.1f} s | {rows / cpu:,.0f} | {seconds:.1f} s | {before:.0f} MB | {peak:.0f} MB | "
              f"{peak - before:.0f} MB |", flush=True)
    for mode in modes:
        first = results[mode][0]
        print(f"{mode}: {first['rows']:,} rows, {first['cells']:,} cells; row 2: {first['sample']}")


if __name__ == "__main__":
    main()
