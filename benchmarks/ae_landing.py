"""Benchmark: take in the bundled sample's A&E landing batch (every synthetic ISTV extract).

What a file-triggered run does with them, without Airflow: per file, archive, parse, check and
COPY into restricted.ae_attendances in one transaction, record, move. Then the same batch again,
as duplicates (what a department re-sending its files costs). Prints figures; not a test.

    .venv/bin/python benchmarks/ae_landing.py
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="vru_bench_ae_"))
    os.environ["VRU_HOME"] = str(home)
    os.environ.pop("VRU_WAREHOUSE_URL", None)
    os.environ["VRU_AE_SETTLE_SECONDS"] = "0"  # the files are written just before: take them at once
    import psycopg
    from vru import warehouse
    from vru.archive import Archive
    from vru.config import settings
    from vru.feeds import ae
    from vru.landing import process_landing
    from vru_sample import istv as sample_istv

    cfg = settings()
    server = warehouse.embedded(cfg)
    server.start()
    try:
        url = server.url()
        warehouse.apply_schema(url)
        reference = ae.Reference.from_seeds(cfg.dbt_project_dir)
        landing = cfg.ae_landing_dir
        started = time.perf_counter()
        files = sample_istv.write_extracts(landing)
        generated = time.perf_counter() - started
        size = sum(p.stat().st_size for p in files)
        with psycopg.connect(url, autocommit=True) as conn:
            started = time.perf_counter()
            first = process_landing(conn, landing, Archive(cfg.archive_dir), reference, "bench")
            took = time.perf_counter() - started
            rows = first.to_dict()["rows_loaded"]
            print(f"generated {len(files)} extracts ({size / 1e6:.1f} MB) in {generated:.1f} s")
            print(f"take-in:   {len(files)} files, {rows:,} attendances in {took:.1f} s "
                  f"({len(files) / took:.0f} files/s, {rows / took:,.0f} rows/s)")
            for p in (landing / "loaded").iterdir():
                shutil.copy2(p, landing / p.name)
            started = time.perf_counter()
            again = process_landing(conn, landing, Archive(cfg.archive_dir), reference, "bench-2")
            took = time.perf_counter() - started
            print(f"re-sent:   {again.count('duplicate')} duplicates recognised in {took:.1f} s "
                  "(hash and look-up only; nothing loaded)")
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
