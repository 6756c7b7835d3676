"""Write-audit-publish: what a promotion costs (vru.publish.promote) and the disk the build copy needs.

Builds marts of national size and larger in a private embedded PostgreSQL, publishes them once,
then times promotions of tonight's build: nothing changed, one month changed (43 force rows per
mart), one revised force-month, and every row changed. Prints a table for docs/decisions.md.

    .venv/bin/python benchmarks/promotion.py [--rows-scale 1 10 100]

The mart shape is stop_search_monthly's (force, month, counts, rates; primary key); a scale of 1 is
43 forces x 120 months (10 years) = 5,160 rows, the largest mart at national volume being the A&E
mart at 43 x 120 x 4 bands = 20,640.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import psycopg
from vru import publish, warehouse

COLUMNS = ("force_id text not null, month date not null, coverage text not null, searches integer, "
           "s60_searches integer, weapon_searches integer, arrests integer, arrest_rate numeric(6, 4), "
           "is_vru_area boolean not null, primary key (force_id, month)")


def build(conn: psycopg.Connection, months: int) -> None:
    conn.execute("drop table if exists marts_build.bench_mart, marts.bench_mart")
    conn.execute(f"create table marts_build.bench_mart ({COLUMNS})")
    conn.execute(
        "insert into marts_build.bench_mart select 'force-' || f, date '2000-01-01' + (m || ' month')::interval, "
        "'published', 1000 + f * m %% 997, f %% 7, f %% 13, 100 + m %% 50, "
        "round((100 + m %% 50) / 1000.0, 4), f %% 3 = 0 "
        "from generate_series(1, 43) f, generate_series(0, %s - 1) m", (months,))
    conn.execute("analyze marts_build.bench_mart")


def timed(url: str, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        with psycopg.connect(url) as conn:
            started = time.perf_counter()
            publish.promote(conn, "bench", ["bench_mart"])
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows-scale", type=int, nargs="+", default=[1, 10, 100])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = warehouse.EmbeddedWarehouse(Path(tmp) / "warehouse")
        url = server.start()
        warehouse.apply_schema(url)
        print("| mart rows | nothing changed | one month (43 rows) | one force-month | every row | build on disk |")
        print("|---|---|---|---|---|---|")
        try:
            for scale in args.rows_scale:
                months = 120 * scale
                with psycopg.connect(url, autocommit=True) as conn:
                    build(conn, months)
                with psycopg.connect(url) as conn:
                    publish.promote(conn, "first", ["bench_mart"])
                unchanged = timed(url)
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("update marts_build.bench_mart set searches = searches + 1 "
                                 "where month = (select max(month) from marts_build.bench_mart)")
                one_month = timed(url, 1)
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("update marts_build.bench_mart set arrests = arrests + 1 "
                                 "where force_id = 'force-7' and month = '2000-06-01'")
                one_part = timed(url, 1)
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("update marts_build.bench_mart set s60_searches = s60_searches + 1")
                every = timed(url, 1)
                with psycopg.connect(url) as conn:
                    size = conn.execute("select pg_total_relation_size('marts_build.bench_mart')").fetchone()
                mb = (size[0] if size else 0) / 1e6
                print(f"| {43 * months:,} | {unchanged:.1f} ms | {one_month:.1f} ms | {one_part:.1f} ms | "
                      f"{every:.1f} ms | {mb:.1f} MB |")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
