"""The police models built incrementally by dbt give what a full refresh gives, on a real
PostgreSQL (embedded) with raw loaded by the real loader from the bundled monthly files.

stg_police__stop_searches is incremental by force-month (delete+insert, the changed force-months
read from audit.loads) and stop_search_monthly by month. The scenario is the one nights bring: a
first build, published; a revision that withdraws records, a force-month republished with no
records and a new month; a build whose gate fails (nothing published, the build keeps its
unpublished rows); one more revision; then the incremental build is compared with a full refresh.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import SAMPLE, publish_built
from vru import publish
from vru.archive import Archive
from vru.config import dbt_env
from vru.feeds import police

PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
STAGING = "staging.stg_police__stop_searches"
MART_COLUMNS = ("force_id, month, coverage, searches, s60_searches, weapon_searches, arrests, outcome_linked_finds, "
                "searches_outcome_link_recorded, under_25_searches, searches_black, searches_white, arrest_rate, "
                "find_rate, is_vru_area, s60_relaxed")  # every column but built_at


def dbt_build(url: str, tmp_path: Path, *extra: str) -> None:
    # target and logs outside the checkout: the checkout's target/manifest.json is the DAG's.
    done = subprocess.run(
        [str(DBT), "build", "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"),
         "--select", "+stop_search_monthly", "--exclude", "assert_force_ids_are_known",
         "--indirect-selection", "cautious", *extra],
        env={**os.environ, **dbt_env(url), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"},
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-5000:]


@pytest.fixture
def police_conn(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """An empty warehouse without police relations (other tests make their own shapes of them)."""
    def drop() -> None:
        for relation in (STAGING, "marts_build.stop_search_monthly", "marts.stop_search_monthly"):
            kind = conn.execute("select relkind::text from pg_class where oid = to_regclass(%s)",
                                (relation,)).fetchone()
            if kind:
                conn.execute(f"drop {'view' if kind[0] == 'v' else 'table'} {relation} cascade")

    drop()
    yield conn
    drop()


def staged(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(f"select * from {STAGING} order by stop_search_id").fetchall()


def mart(conn: psycopg.Connection, schema: str) -> list[tuple[Any, ...]]:
    return conn.execute(f"select {MART_COLUMNS} from {schema}.stop_search_monthly order by force_id, month").fetchall()


def row_versions(conn: psycopg.Connection, force_id: str, month: str) -> set[str]:
    """The physical versions (xmin) of a force-month's staged rows: unchanged when it was not rewritten."""
    return {r[0] for r in conn.execute(f"select xmin::text from {STAGING} where force_id = %s and month = %s",
                                       (force_id, month))}


def revise(tmp_path: Path, name: str, keep: slice, as_name: str | None = None) -> Path:
    """A republished monthly file: the sample's header and the records in `keep`."""
    lines = (SAMPLE / name).read_text(encoding="utf-8").splitlines(keepends=True)
    revised = tmp_path / "revised"
    folder = revised / str(len(list(revised.glob("*"))) if revised.exists() else 0)
    folder.mkdir(parents=True)
    path = folder / (as_name or name)
    path.write_text("".join(lines[:1] + lines[1:][keep]), encoding="utf-8")
    return path


def test_incremental_builds_equal_a_full_refresh_after_revisions_and_a_failed_gate(
        police_conn: psycopg.Connection, clean_warehouse: str, tmp_path: Path) -> None:
    conn, url = police_conn, clean_warehouse
    archive = Archive(tmp_path / "archive")
    for path in sorted(SAMPLE.glob("*.csv")):
        assert police.ingest_archive_file(conn, archive, path).status == "loaded"

    # Night 1: the first build creates the tables; published with the raw snapshot it was built
    # from, as publish_marts does, so the next nights' staging tests check only what changed.
    snapshot = str(conn.execute("select pg_current_snapshot()::text").fetchone()[0])  # type: ignore[index]
    dbt_build(url, tmp_path)
    assert conn.execute(f"select count(*) from {STAGING}").fetchone() == conn.execute(
        "select count(*) from raw.stop_searches").fetchone()
    with psycopg.connect(url) as tx:
        publish.promote(tx, "night-1", ["stop_search_monthly"], snapshot)
    assert conn.execute("select raw_snapshot::text from audit.publications order by publication_id desc "
                        "limit 1").fetchone() == (snapshot,)
    untouched = row_versions(conn, "essex", "2020-01-01")
    assert untouched

    # Night 2: Durham withdraws two February records, City of London republishes January with no
    # records, and March arrives for Durham (a new month: the spine grows for every force).
    durham_feb = "2020-02-durham-stop-and-search.csv"
    durham_rows = len((SAMPLE / durham_feb).read_text(encoding="utf-8").splitlines()) - 1
    results = [police.ingest_archive_file(conn, archive, revise(tmp_path, durham_feb, slice(2, None))),
               police.ingest_archive_file(conn, archive, revise(tmp_path, "2020-01-city-of-london-stop-and-search.csv",
                                                                  slice(0, 0))),
               police.ingest_archive_file(conn, archive, revise(tmp_path, durham_feb, slice(0, 5),
                                                                  "2020-03-durham-stop-and-search.csv"))]
    assert [r.status for r in results] == ["replaced", "replaced", "loaded"]
    dbt_build(url, tmp_path)
    # only the changed force-months were rewritten in staging
    assert row_versions(conn, "essex", "2020-01-01") == untouched
    figures = {(r[0], str(r[1])): r[3] for r in mart(conn, "marts_build")}
    assert figures[("durham", "2020-02-01")] == durham_rows - 2
    assert figures[("city-of-london", "2020-01-01")] == 0  # published with no records: a true zero
    assert figures[("durham", "2020-03-01")] == 5 and figures[("essex", "2020-03-01")] is None
    assert conn.execute(f"select count(*) from {STAGING} where force_id = 'city-of-london' "
                        "and month = '2020-01-01'").fetchone() == (0,)
    # Night 2's gate fails: nothing is published; the build keeps its unpublished rows.

    # Night 3: Merseyside revises December (drops its first ten records, keeps the rest).
    merseyside_dec = "2019-12-merseyside-stop-and-search.csv"
    result = police.ingest_archive_file(conn, archive, revise(tmp_path, merseyside_dec, slice(10, None)))
    assert result.status == "replaced"
    dbt_build(url, tmp_path)
    assert row_versions(conn, "essex", "2020-01-01") == untouched
    incremental_staged, incremental_mart = staged(conn), mart(conn, "marts_build")
    publish_built(url)  # no snapshot: the next run's tests check every force-month
    published = mart(conn, "marts")

    dbt_build(url, tmp_path, "--full-refresh")
    assert row_versions(conn, "essex", "2020-01-01") != untouched  # it did rebuild everything
    assert staged(conn) == incremental_staged
    assert mart(conn, "marts_build") == incremental_mart
    assert published == incremental_mart
    # and staging is the current loads, nothing more
    assert conn.execute(f"select count(*) from {STAGING}").fetchone() == conn.execute(
        "select sum(rows_loaded) from audit.loads where (force_id, month, load_id) in ("
        "select force_id, month, max(load_id) from audit.loads where status in ('loaded', 'replaced') "
        "group by force_id, month)").fetchone()
    shutil.rmtree(tmp_path / "revised")
