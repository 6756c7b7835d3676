"""Loading into a real PostgreSQL: idempotent reruns, revisions, quarantine, a killed loader."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psycopg
from conftest import SAMPLE
from vru.archive import Archive
from vru.feeds import police

FILE = "2020-02-durham-stop-and-search.csv"


def _count(conn: psycopg.Connection, force: str = "durham", month: str = "2020-02-01") -> int:
    return int(conn.execute("select count(*) from raw.stop_searches where force_id = %s and month = %s",
                            (force, month)).fetchone()[0])  # type: ignore[index]


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_load_then_rerun_loads_nothing_twice(conn: psycopg.Connection, tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    first = police.ingest_archive_file(conn, archive, SAMPLE / FILE, run_id="r1")
    expected = len(_lines(SAMPLE / FILE)) - 1
    assert (first.status, first.rows_read, first.rows_loaded, first.rows_quarantined) == (
        "loaded", expected, expected, 0)
    second = police.ingest_archive_file(conn, archive, SAMPLE / FILE, run_id="r2")
    assert second.status == "unchanged"
    assert _count(conn) == expected
    loads = conn.execute("select status, rows_read, rows_loaded, rows_quarantined, sha256, archive_path "
                         "from audit.loads").fetchall()
    assert len(loads) == 1 and loads[0][:4] == ("loaded", expected, expected, 0)
    kept = Path(loads[0][5])
    assert kept.read_bytes() == (SAMPLE / FILE).read_bytes() and loads[0][4] in kept.name
    # where the rows came from is their load's: origin and sha256 in audit.loads, by load_id
    meta = conn.execute("select distinct l.origin, l.sha256, s.load_id from raw.stop_searches s "
                        "join audit.loads l using (load_id)").fetchall()
    assert meta == [("archive_csv", loads[0][4], first.load_id)]
    columns = conn.execute("select * from raw.stop_searches limit 0").description
    assert not {"origin", "sha256"} & {c.name for c in columns}


def test_revised_publication_replaces_rows_and_is_audited(conn: psycopg.Connection, tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    police.ingest_archive_file(conn, archive, SAMPLE / FILE)
    lines = _lines(SAMPLE / FILE)
    revised_dir = tmp_path / "revised"
    revised_dir.mkdir()
    revised = lines[:1] + lines[2:-1]  # the source withdrew two records
    (revised_dir / FILE).write_text("".join(revised), encoding="utf-8")
    result = police.ingest_archive_file(conn, archive, revised_dir / FILE)
    assert result.status == "replaced" and result.previous_rows == len(lines) - 1
    assert _count(conn) == len(revised) - 1
    audit = conn.execute("""select status, rows_loaded, previous_rows, previous_sha256 is not null,
                                   previous_load_id is not null
                            from audit.loads order by load_id""").fetchall()
    assert audit == [("loaded", len(lines) - 1, None, False, False),
                     ("replaced", len(revised) - 1, len(lines) - 1, True, True)]
    assert conn.execute("select count(distinct load_id) from raw.stop_searches").fetchone() == (1,)


def test_unparseable_rows_are_kept_in_quarantine(conn: psycopg.Connection, tmp_path: Path) -> None:
    lines = _lines(SAMPLE / FILE)
    lines[3] = lines[3].replace("2020-02-", "2020-02-3", 1)  # an impossible date
    lines[5] = "Person search,2020-02-02T10:00:00+00:00,only,five,fields\r\n"
    (tmp_path / FILE).write_text("".join(lines), encoding="utf-8")
    result = police.ingest_archive_file(conn, Archive(tmp_path / "archive"), tmp_path / FILE)
    assert result.rows_read == len(lines) - 1 == result.rows_loaded + result.rows_quarantined
    assert result.rows_quarantined == 2
    rows = conn.execute("select line_no, split_part(reason, ':', 1), dataset, force_id, month::text, "
                        "origin from raw.quarantine order by line_no").fetchall()
    assert rows == [(4, "bad date", "police.stop_searches", "durham", "2020-02-01", "archive_csv"),
                    (6, "wrong field count", "police.stop_searches", "durham", "2020-02-01", "archive_csv")]
    assert conn.execute("select rows_read = rows_loaded + rows_quarantined from audit.loads").fetchone() == (True,)


def test_changed_header_is_refused_and_recorded(conn: psycopg.Connection, tmp_path: Path) -> None:
    lines = _lines(SAMPLE / FILE)
    lines[0] = lines[0].replace("Legislation", "Power used")
    (tmp_path / FILE).write_text("".join(lines), encoding="utf-8")
    result = police.ingest_archive_file(conn, Archive(tmp_path / "archive"), tmp_path / FILE)
    assert result.status == "refused"
    assert "missing ['Legislation']" in (result.error or "") and "unexpected ['Power used']" in (result.error or "")
    assert _count(conn) == 0
    assert conn.execute("select status, error like %s from audit.loads", ("%Power used%",)).fetchone() == (
        "refused", True)


_KILLABLE_LOADER = """
import sys, psycopg
from pathlib import Path
from vru.archive import Archive
from vru.feeds import police
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    police.ingest_archive_file(conn, Archive(Path(sys.argv[2])), Path(sys.argv[3]))
"""


def test_loader_killed_mid_load_leaves_no_partial_force_month(conn: psycopg.Connection, clean_warehouse: str,
                                                              tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    police.ingest_archive_file(conn, archive, SAMPLE / FILE)
    before = conn.execute("select count(*), min(load_id) from raw.stop_searches").fetchone()
    big_dir = tmp_path / "big"
    big_dir.mkdir()
    lines = _lines(SAMPLE / FILE)
    with open(big_dir / FILE, "w", encoding="utf-8") as out:  # a revision big enough to kill mid-COPY
        out.write(lines[0])
        for _ in range(3000):
            out.writelines(lines[1:])
    proc = subprocess.Popen([sys.executable, "-c", _KILLABLE_LOADER, clean_warehouse,
                             str(tmp_path / "archive"), str(big_dir / FILE)], start_new_session=True)
    deadline = time.monotonic() + 60
    copying = False
    while time.monotonic() < deadline and proc.poll() is None:
        copying = conn.execute("select count(*) from pg_stat_activity where query ilike 'copy %%raw%%'"
                               " and state = 'active'").fetchone() == (1,)
        if copying:
            time.sleep(0.3)  # let some rows reach the server
            break
        time.sleep(0.02)
    assert copying, "the loader never reached COPY: the test proves nothing"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while conn.execute("select count(*) from pg_stat_activity where query ilike 'copy %%raw%%'").fetchone() != (0,):
        assert time.monotonic() < deadline, "the killed loader's transaction never ended"
        time.sleep(0.1)
    assert conn.execute("select count(*), min(load_id) from raw.stop_searches").fetchone() == before
    assert conn.execute("select count(*) from audit.loads").fetchone() == (1,)
    # and the next run loads the revision whole
    result = police.ingest_archive_file(conn, archive, big_dir / FILE)
    assert result.status == "replaced" and _count(conn) == 3000 * (len(lines) - 1)
    shutil.rmtree(big_dir)


def test_values_at_the_edges_of_the_fast_path_load_as_python_reads_them(conn: psycopg.Connection,
                                                                        tmp_path: Path) -> None:
    header = list(police.CSV_COLUMNS)
    good = _lines(SAMPLE / FILE)[1].rstrip("\r\n").split(",")
    edges = [("9999-12-31T23:59:59+14:59", "-0.0000000000000001", "true", "\\."),
             ("1000-01-01T00:00:00-14:59", "1234.5", "false", "a\tb"),
             ("2020-04-30T00:00:00Z", "", "", "x\\y"),
             ("2020-02-29T23:59:59+15:59", "1e5", "True", "\u2028")]  # the last one line by line
    lines = [",".join(header) + "\r\n"]
    for when, number, flag, text in edges:
        row = dict(zip(header, good, strict=True)) | {
            "Date": when, "Latitude": number, "Outcome linked to object of search": flag, "Policing operation": text}
        lines.append(",".join(row[c] for c in header) + "\r\n")
    (tmp_path / FILE).write_text("".join(lines), encoding="utf-8")
    result = police.ingest_archive_file(conn, Archive(tmp_path / "archive"), tmp_path / FILE)
    assert (result.status, result.rows_loaded, result.rows_quarantined) == ("loaded", len(edges), 0)
    loaded = conn.execute("select datetime, latitude, outcome_linked_to_object_of_search, operation_name "
                          "from raw.stop_searches order by line_no").fetchall()
    assert loaded == [(datetime.fromisoformat(when), float(number) if number else None,
                       {"": None}.get(flag, flag.lower() == "true"), text) for when, number, flag, text in edges]


def test_an_offset_postgresql_refuses_is_quarantined_not_a_failed_load(conn: psycopg.Connection,
                                                                       tmp_path: Path) -> None:
    lines = _lines(SAMPLE / FILE)
    lines[2] = lines[2].replace("+00:00", "+16:00", 1)  # Python reads it; PostgreSQL's limit is 15:59
    (tmp_path / FILE).write_text("".join(lines), encoding="utf-8")
    result = police.ingest_archive_file(conn, Archive(tmp_path / "archive"), tmp_path / FILE)
    assert (result.status, result.rows_quarantined) == ("loaded", 1)
    assert conn.execute("select line_no, reason from raw.quarantine").fetchall() == [
        (3, "bad date: column 'Date' is " + repr(lines[2].split(",")[1]))]
