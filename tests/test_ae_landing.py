"""A&E extracts in the landing area: checked, loaded once, rejected whole with a reason, or
quarantined row by row; and the watcher that fires for new files without touching them.

Real PostgreSQL (the session's embedded one), real files in a real folder; the extracts are the
bundled generator's synthetic ones, edited where a test needs a fault.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest
from vru.archive import Archive
from vru.config import settings
from vru.feeds import ae
from vru.landing import pending_files, process_landing
from vru.triggers import LandingFileTrigger
from vru_sample import istv as sample_istv

MONTH = date(2019, 6, 1)


@pytest.fixture(autouse=True)
def no_settle_period(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests drop a file and take it in at once (tests/test_landing_hardening.py has the wait)."""
    monkeypatch.setenv("VRU_AE_SETTLE_SECONDS", "0")


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def reference() -> ae.Reference:
    return ae.Reference.from_seeds(settings().dbt_project_dir)


@pytest.fixture
def take_in(conn: psycopg.Connection, landing: Path, tmp_path: Path, reference: ae.Reference) -> Iterator[object]:
    archive = Archive(tmp_path / "archive")
    yield lambda run_id="test": process_landing(conn, landing, archive, reference, run_id)


def rows_of(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def to_bytes(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def drop(landing: Path, name: str, data: bytes) -> Path:
    part = landing / f".{name}.part"
    part.write_bytes(data)
    os.replace(part, landing / name)
    return landing / name


def count(conn: psycopg.Connection, site: str) -> int:
    return conn.execute("select count(*) from restricted.ae_attendances where site_code = %s", (site,)).fetchone()[0]  # type: ignore[index]


def test_extracts_load_then_the_same_bytes_are_not_loaded_again(
        conn: psycopg.Connection, landing: Path, take_in) -> None:  # type: ignore[no-untyped-def]
    expected = {}
    for site in ("RWEAA", "RXPDA"):
        data = sample_istv.extract(site, MONTH)
        expected[site] = len(rows_of(data)) - 1
        drop(landing, sample_istv.file_name(site, MONTH), data)
    summary = take_in()
    assert [f.outcome for f in summary.files] == ["loaded", "loaded"]
    for site, n in expected.items():
        assert count(conn, site) == n
    assert pending_files(landing) == []
    assert sorted(p.name for p in (landing / "loaded").iterdir()) == sorted(
        sample_istv.file_name(s, MONTH) for s in expected)
    # Darlington shares no age band or sex: loaded as NULL, not as a code
    assert conn.execute("select count(*) from restricted.ae_attendances where site_code = 'RXPDA' "
                        "and (age_band is not null or sex is not null)").fetchone() == (0,)
    assert conn.execute("select distinct force_id from restricted.ae_attendances where site_code = 'RWEAA'"
                        ).fetchall() == [("leicestershire",)]

    # the same file dropped again, under its own name and under another: loaded once
    data = sample_istv.extract("RWEAA", MONTH)
    drop(landing, sample_istv.file_name("RWEAA", MONTH), data)
    drop(landing, "resent-by-email.csv", data)
    again = take_in()
    assert [f.outcome for f in again.files] == ["duplicate", "duplicate"]
    assert count(conn, "RWEAA") == expected["RWEAA"]
    assert pending_files(landing) == []
    assert conn.execute("select count(*) from audit.loads where dataset = 'ae.attendances'").fetchone() == (2,)
    assert conn.execute("select count(*) from audit.landed_files where outcome = 'duplicate' "
                        "and duplicate_of is not null").fetchone() == (2,)


def test_a_corrected_extract_replaces_the_earlier_one(conn: psycopg.Connection, landing: Path, take_in) -> None:  # type: ignore[no-untyped-def]
    rows = rows_of(sample_istv.extract("RFSDA", MONTH))
    drop(landing, "first.csv", to_bytes(rows))
    take_in()
    corrected = rows[:-3]  # the department withdrew three attendances
    drop(landing, "first.csv", to_bytes(corrected))
    summary = take_in()
    assert summary.files[0].outcome == "replaced"
    assert count(conn, "RFSDA") == len(corrected) - 1
    # both versions are kept in loaded/ (the second under a name with its checksum)
    assert len(list((landing / "loaded").iterdir())) == 2


def test_a_malformed_file_is_rejected_whole_with_a_reason_and_nothing_is_loaded(
        conn: psycopg.Connection, landing: Path, take_in) -> None:  # type: ignore[no-untyped-def]
    rows = rows_of(sample_istv.extract("RWEAA", MONTH))
    assert len(rows) > 60
    rows[49] = rows[49][:7]  # line 50 cut short, after 48 good rows
    drop(landing, "broken.csv", to_bytes(rows))
    summary = take_in()
    assert summary.files[0].outcome == "rejected"
    assert count(conn, "RWEAA") == 0  # nothing partial
    reason = (landing / "rejected" / "broken.csv.reason.txt").read_text()
    assert "line 50 has 7 fields, the header has 11" in reason and "nothing in this file was loaded" in reason
    assert (landing / "rejected" / "broken.csv").exists() and not (landing / "broken.csv").exists()
    assert conn.execute("select status, error like '%%line 50%%' from audit.loads where dataset = 'ae.attendances'"
                        ).fetchall() == [("refused", True)]
    assert conn.execute("select outcome from audit.landed_files").fetchall() == [("rejected",)]


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda rows: [rows[0] + ["nhs_number"]] + [[*r, "9434765919"] for r in rows[1:]],
     "1 column(s) the contract does not have (field(s) 12 of the header)"),
    (lambda rows: [[c for i, c in enumerate(r) if i != 5] for r in rows], "lacks required column(s) assault_method"),
    (lambda rows: [*rows[:5], [*rows[5][:2], "RHQNG", *rows[5][3:]], *rows[6:]],
     "line 6: the reporting period or site code differs from line 2's"),
    (lambda rows: rows[:1], "no rows after the header"),
    (lambda rows: [[*r[:1], "2019-05-31", *r[2:]] if i else r for i, r in enumerate(rows)],
     "reporting_period_end_date is before reporting_period_start_date"),
])
def test_files_outside_the_contract_are_rejected_naming_what_is_wrong(
        conn: psycopg.Connection, landing: Path, take_in, edit, expected: str) -> None:  # type: ignore[no-untyped-def]
    drop(landing, "bad.csv", to_bytes(edit(rows_of(sample_istv.extract("RFSDA", MONTH)))))
    summary = take_in()
    assert summary.files[0].outcome == "rejected", summary.files[0]
    assert expected in (summary.files[0].reason or "")
    assert "9434765919" not in (summary.files[0].reason or "")  # never a value from a row
    assert count(conn, "RFSDA") == 0


def test_non_csv_and_non_utf8_files_are_rejected(conn: psycopg.Connection, landing: Path, take_in) -> None:  # type: ignore[no-untyped-def]
    drop(landing, "extract.xlsx", b"PK\x03\x04 not a csv")
    latin1 = sample_istv.extract("RFSDA", MONTH).replace(b"Station Road", "Caf\xe9".encode("latin-1"))
    drop(landing, "latin1.csv", latin1)
    reasons = {f.file_name: f.reason for f in take_in().files}
    assert "not a .csv file" in reasons["extract.xlsx"]
    assert "is not UTF-8 text" in reasons["latin1.csv"]


def test_an_overlapping_period_is_rejected(conn: psycopg.Connection, landing: Path, take_in) -> None:  # type: ignore[no-untyped-def]
    rows = rows_of(sample_istv.extract("RFSDA", MONTH))
    drop(landing, "june.csv", to_bytes(rows))
    take_in()
    quarter = [rows[0]] + [["2019-06-15", "2019-07-14", *r[2:]] for r in rows[1:] if r[3] >= "2019-06-15"]
    drop(landing, "mid-june-to-mid-july.csv", to_bytes(quarter))
    result = take_in().files[0]
    assert result.outcome == "rejected" and "overlaps the period 2019-06-01..2019-06-30" in (result.reason or "")
    assert count(conn, "RFSDA") == len(rows) - 1


def test_bad_rows_are_quarantined_with_line_and_column_and_the_rest_loaded(
        conn: psycopg.Connection, landing: Path, take_in) -> None:  # type: ignore[no-untyped-def]
    rows = rows_of(sample_istv.extract("RFSDA", MONTH))
    header = rows[0]
    col = {name: header.index(name) for name in header}
    rows[2][col["assault_date_and_time"]] = "2019-06-30 23:59"  # after its arrival
    rows[3][col["assault_method"]] = "07"  # not a code
    rows[4][col["arrival_date_and_time"]] = "2019-07-01 00:10"  # outside the period
    rows[5][col["assault_location_type"]] = "2"  # a spreadsheet dropped the zero: read as 02
    rows[6][col["sex"]] = "M"
    drop(landing, "rows.csv", to_bytes(rows))
    result = take_in().files[0]
    assert result.outcome == "loaded" and result.rows_quarantined == 4
    assert result.rows_loaded == len(rows) - 1 - 4 == count(conn, "RFSDA")
    reasons = dict(conn.execute("select line_no, reason from restricted.ae_quarantine order by line_no").fetchall())
    assert reasons[3] == "line 3, column assault_date_and_time: the assault is after the arrival at the department"
    assert reasons[4].startswith("line 4, column assault_method: '07' is not one of the codes")
    assert reasons[5] == "line 5, column arrival_date_and_time: the arrival is outside the extract's reporting period"
    assert reasons[7].startswith("line 7, column sex: 'M'")
    assert dict(conn.execute("select line_no, column_name from restricted.ae_quarantine").fetchall()) == {
        3: "assault_date_and_time", 4: "assault_method", 5: "arrival_date_and_time", 7: "sex"}
    assert conn.execute("select assault_location_type from restricted.ae_attendances where line_no = 6"
                        ).fetchone() == ("02",)
    # the quarantine (row-level) is in the restricted schema, not raw.quarantine
    assert conn.execute("select count(*) from raw.quarantine").fetchone() == (0,)


def test_an_unknown_site_code_quarantines_every_row_and_the_file_loads_once_the_site_is_known(
        conn: psycopg.Connection, landing: Path, tmp_path: Path, reference: ae.Reference) -> None:
    rows = rows_of(sample_istv.extract("RFSDA", MONTH))
    rows = [rows[0]] + [[r[0], r[1], "RZZ99", *r[3:]] for r in rows[1:]]
    data = to_bytes(rows)
    archive = Archive(tmp_path / "archive")
    drop(landing, "new-department.csv", data)
    result = process_landing(conn, landing, archive, reference, "night-1").files[0]
    assert result.outcome == "loaded" and result.rows_loaded == 0 and result.rows_quarantined == len(rows) - 1
    assert conn.execute("select distinct reason like %s from restricted.ae_quarantine",
                        ("%site code 'RZZ99' is not a known emergency department%",)).fetchall() == [(True,)]
    # the department is added to the seed; the same file dropped again is retried, not a duplicate
    known = ae.Reference({**reference.sites, "RZZ99": "derbyshire"}, reference.codes)
    drop(landing, "new-department.csv", data)
    again = process_landing(conn, landing, archive, known, "night-2").files[0]
    assert again.outcome == "replaced" and again.rows_loaded == len(rows) - 1 == count(conn, "RZZ99")
    assert conn.execute("select count(*) from restricted.ae_quarantine").fetchone() == (0,)
    # and once loaded in full, the same bytes are a duplicate
    drop(landing, "new-department.csv", data)
    assert process_landing(conn, landing, archive, known, "night-3").files[0].outcome == "duplicate"


def test_data_dictionary_headers_are_accepted(reference: ae.Reference) -> None:
    rows = rows_of(sample_istv.extract("RFSDA", MONTH))
    rows[0] = ["REPORTING PERIOD START DATE", "REPORTING PERIOD END DATE", "SITE CODE (OF TREATMENT)",
               "ARRIVAL DATE AND TIME AT ACCIDENT AND EMERGENCY DEPARTMENT", "ASSAULT DATE AND TIME",
               "ASSAULT METHOD", "ASSAULT METHOD OTHER DESCRIPTION", "ASSAULT LOCATION TYPE",
               "ASSAULT LOCATION DESCRIPTION", "Age band", "Person Phenotypic Sex"]
    parsed = ae.parse(to_bytes(rows), "dd.csv", reference)
    records = list(parsed.parsed.records)
    assert parsed.rows == len(rows) - 1 == len(records) and not parsed.quarantined


def test_the_generator_is_deterministic_and_synthetic_at_realistic_levels() -> None:
    assert sample_istv.extract("RWEAA", MONTH) == sample_istv.extract("RWEAA", MONTH)
    rows = [r for m in sample_istv.months(date(2019, 4, 1), date(2020, 3, 1))
            for r in rows_of(sample_istv.extract("RWEAA", m))[1:]]
    assert 1500 < len(rows) < 2600  # ~170 a month
    sharp = sum(r[5] in ("03", "04") for r in rows) / len(rows)
    assert 0.05 < sharp < 0.15


def test_the_watcher_fires_once_per_new_file_and_leaves_it_in_place(landing: Path) -> None:
    async def scenario() -> list[list[str]]:
        trigger = LandingFileTrigger(directory=str(landing), poke_interval=0.05)
        events: list[list[str]] = []

        async def watch() -> None:
            async for event in trigger.run():
                events.append(event.payload["files"])

        watcher = asyncio.create_task(watch())
        drop(landing, "a.csv", b"x")
        drop(landing, "b.csv", b"y")
        await asyncio.sleep(0.6)
        assert (landing / "a.csv").exists() and (landing / "b.csv").exists()  # not deleted, not moved
        os.replace(landing / "a.csv", landing / "taken.csv.part")  # a.csv taken in (moved away)
        await asyncio.sleep(0.3)
        drop(landing, "a.csv", b"x again")  # the same name dropped later is a new file
        await asyncio.sleep(0.6)
        watcher.cancel()
        return events

    # one event for both files, none while they wait (b.csv never fires twice), one for the re-drop
    assert asyncio.run(scenario()) == [["a.csv", "b.csv"], ["a.csv"]]
