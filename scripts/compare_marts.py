"""Build the dbt project of two git revisions on the bundled sample and compare every mart: the
check behind "behaviour unchanged" for a refactoring of the SQL.

    .venv/bin/python scripts/compare_marts.py main            # main against the working tree
    .venv/bin/python scripts/compare_marts.py main int-layer  # two revisions

Loads the sample into a fresh embedded warehouse under a temporary VRU_HOME, as `vru run --sample`
would but without Airflow (the police archive files, every bundled edition, the synthetic A&E
extracts through the landing area), then for each side builds the whole project
(`dbt build --full-refresh`, tests and unit tests included) from `git archive <rev> dbt_project`
(or the working tree's dbt_project) with the A&E publication date fixed (`--as-of`) and the
publication history emptied first, so both sides see the same inputs. Each mart (and the
recorded A&E publication history) is copied into a schema per side and compared with EXCEPT ALL
both ways on every column but timestamps (`built_at`, `first_published_at`: when it ran), and
the column names and types in order. Prints one line per mart; exit status 1 on any difference.
Took 9 minutes on the shared 2-core machine (two full builds and the sample load).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parents[1]
DBT = Path(sys.executable).parent / "dbt"
MARTS = ("stop_search_monthly", "knife_crime_quarterly", "sharp_object_admissions_yearly", "ae_assault_monthly",
         "pfa_knife_crime_12_months", "vru_outcomes_quarterly", "vru_programme_comparison")
HISTORY = ("restricted", "ae_published_cells")


def load_sample(url: str) -> None:
    from vru import landing, registry
    from vru.archive import Archive
    from vru.config import settings
    from vru.feeds import police
    from vru_sample import istv
    from vru_sample.server import SAMPLE_EDITIONS, bundled_sample_dir

    cfg = settings()
    with psycopg.connect(url, autocommit=True) as conn:
        for path in sorted(bundled_sample_dir().glob("*.csv")):
            police.ingest_archive_file(conn, Archive(cfg.archive_dir), path, run_id="compare-marts")
        for sample in SAMPLE_EDITIONS:
            feed = registry.feed(sample.feed)
            assert feed.load_file is not None
            for path in sample.editions():
                feed.load_file(conn, Archive(cfg.archive_dir), path, "compare-marts", cfg)
    istv.write_extracts(cfg.ae_landing_dir)
    landing.ingest_landed("compare-marts", cfg=cfg)


def project_of(rev: str | None, into: Path) -> Path:
    """dbt_project of a git revision (None: the working tree's)."""
    if rev is None:
        return REPO / "dbt_project"
    git = shutil.which("git")
    assert git, "git is needed to read a revision"
    archive = into / f"{rev.replace('/', '_')}.tar"
    subprocess.run([git, "-C", str(REPO), "archive", "-o", str(archive), rev, "dbt_project"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / rev.replace("/", "_"), filter="data")
    return into / rev.replace("/", "_") / "dbt_project"


def build(url: str, project: Path, work: Path, as_of: str, schema: str) -> None:
    from vru.config import dbt_env

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("truncate {}").format(sql.Identifier(*HISTORY)))
    done = subprocess.run(
        [str(DBT), "build", "--full-refresh", "--project-dir", str(project), "--profiles-dir", str(project),
         "--target-path", str(work / f"target-{schema}"), "--log-path", str(work / f"logs-{schema}"),
         "--vars", f'{{"ae_publication_as_of": "{as_of}"}}'],
        env={**os.environ, **dbt_env(url), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"},
        capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"dbt build of {project} failed:\n{done.stdout[-4000:]}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
        for source in [("marts_build", m) for m in MARTS] + [HISTORY]:
            conn.execute(sql.SQL("create table {} as select * from {}").format(
                sql.Identifier(schema, source[1]), sql.Identifier(*source)))


def columns(conn: psycopg.Connection, schema: str, table: str) -> list[tuple[str, str]]:
    return [(name, kind) for name, kind in conn.execute(
        "select column_name, data_type from information_schema.columns where table_schema = %s "
        "and table_name = %s order by ordinal_position", (schema, table))]


def only_in(conn: psycopg.Connection, table: str, compared: sql.Composable, a: str, b: str) -> int:
    """Rows of schema a's table (on the compared columns) that schema b's lacks, duplicates counted."""
    row = conn.execute(sql.SQL("select count(*) from (select {c} from {a} except all select {c} from {b}) as d").format(
        c=compared, a=sql.Identifier(a, table), b=sql.Identifier(b, table))).fetchone()
    assert row is not None
    return int(row[0])


def compare(url: str, before: str, after: str) -> bool:
    same = True
    with psycopg.connect(url) as conn:
        for table in (*MARTS, HISTORY[1]):
            cols = columns(conn, before, table)
            compared = sql.SQL(", ").join(sql.Identifier(c) for c, kind in cols if not kind.startswith("timestamp"))
            rows = conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(before, table))).fetchone()
            gone, new = only_in(conn, table, compared, before, after), only_in(conn, table, compared, after, before)
            columns_same = cols == columns(conn, after, table)
            ok = gone == new == 0 and columns_same
            same &= ok
            print(f"{table:32} {rows[0] if rows else 0:6} rows  only before {gone:5}  only after {new:5}  "
                  f"columns {'same' if columns_same else 'DIFFER'}  {'ok' if ok else 'DIFFERENT'}")
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", help="git revision built first (e.g. main)")
    parser.add_argument("after", nargs="?", help="git revision built second (default: the working tree)")
    parser.add_argument("--as-of", default="2026-12-01", help="ae_publication_as_of of both builds (YYYY-MM-DD)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="compare-marts-") as tmp:
        work = Path(tmp)
        os.environ["VRU_HOME"] = str(work / "home")
        os.environ["VRU_AE_SETTLE_SECONDS"] = "0"  # the extracts just written are complete
        for variable in ("VRU_WAREHOUSE_URL",):
            os.environ.pop(variable, None)
        from vru import warehouse
        from vru.config import settings

        cfg = settings()
        url = warehouse.prepare(cfg)
        try:
            load_sample(url)
            build(url, project_of(args.before, work), work, args.as_of, "compare_before")
            build(url, project_of(args.after, work), work, args.as_of, "compare_after")
            return 0 if compare(url, "compare_before", "compare_after") else 1
        finally:
            warehouse.embedded(cfg).stop()


if __name__ == "__main__":
    sys.exit(main())
