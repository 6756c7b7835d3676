"""Hostile files in the A&E landing area (issue 12, points 3 and 4).

Each test drops one hostile entry made here (a link to a secret outside the landing area, a FIFO,
a file still being written, a NUL byte after the first 4 KB, a name that is not UTF-8 or holds
control characters, a folder named like an extract, an oversized file, a file without its header
row) next to a good extract, runs the `take_in` task's function (`vru.landing.ingest_landed`)
against the session's real PostgreSQL, and checks:

* the good extract was loaded in the same run;
* the hostile entry was set aside (moved to rejected/, a reason, a row in audit.landed_files, an
  incident and its webhook alert) or, when still changing, left where it is;
* nothing of its content, and no raw control character of its name, appears anywhere a person
  reads: audit.landed_files, audit.loads, audit.incidents, the reason files, the webhook alerts,
  the alert subject, the data quality report and the captured logs;
* a second run takes nothing again (nothing lost, nothing loaded twice).

Tests run as root, so a permission error cannot be made with chmod: the take-in's reader is
replaced for one file by one raising PermissionError (the only stand-in here; the database,
files and HTTP receiver are real).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
from test_ae_landing import rows_of, to_bytes
from vru.config import settings
from vru_sample import istv as sample_istv

MONTH = date(2019, 6, 1)
GOOD_SITE = "RWEAA"
GOOD_NAME = sample_istv.file_name(GOOD_SITE, MONTH)
SECRET = "SECRET-7f3a9c-do-not-echo"  # noqa: S105 - a marker, not a password; in the hostile files' content; must never be shown
CONTROL = ("\x1b", "\r", "\x00", "\x07", "\u202e")


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    os.environ["VRU_ALERT_WEBHOOK_URL"] = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield received
    finally:
        os.environ.pop("VRU_ALERT_WEBHOOK_URL", None)
        server.shutdown()
        server.server_close()


@pytest.fixture
def landing(tmp_path: Path, clean_warehouse: str, webhook: list[dict[str, Any]],
            monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Path:
    """A landing folder and a VRU_HOME of this test's own, on the session's real warehouse."""
    folder = tmp_path / "landing"
    folder.mkdir()
    monkeypatch.setenv("VRU_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VRU_WAREHOUSE_URL", clean_warehouse)
    monkeypatch.setenv("VRU_AE_LANDING", str(folder))
    monkeypatch.setenv("VRU_AE_SETTLE_SECONDS", "0")
    monkeypatch.delenv("VRU_ALERT_EMAIL_TO", raising=False)
    caplog.set_level(logging.INFO)
    return folder


def take_in(deadline: float = 60.0) -> dict[str, Any]:
    """Run the take_in task's function; fail (not hang) if it blocks, on a FIFO say."""
    from vru.landing import ingest_landed

    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["value"] = ingest_landed("hardening-test")
        except BaseException as exc:  # handed to the test thread
            result["error"] = exc

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        for fifo in Path(os.environ["VRU_AE_LANDING"]).rglob("*"):
            if fifo.is_fifo():  # unblock a reader stuck opening it
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                os.close(fd)
        worker.join(10)
        pytest.fail(f"the take-in did not finish within {deadline} s")
    if "error" in result:
        raise result["error"]
    return dict(result["value"])


def drop_good(landing: Path) -> bytes:
    data = sample_istv.extract(GOOD_SITE, MONTH)
    (landing / GOOD_NAME).write_bytes(data)
    return data




def loaded_rows(conn: psycopg.Connection, site: str) -> int:
    return int(conn.execute("select count(*) from restricted.ae_attendances where site_code = %s",
                            (site,)).fetchone()[0])  # type: ignore[index]


def assert_good_loaded(conn: psycopg.Connection, landing: Path, data: bytes) -> None:
    assert loaded_rows(conn, GOOD_SITE) == len(rows_of(data)) - 1
    assert (landing / "loaded" / GOOD_NAME).read_bytes() == data
    assert not (landing / GOOD_NAME).exists()


def landed(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    """{file name as recorded: (outcome, reason)}"""
    return {n: (o, r or "") for n, o, r in conn.execute(
        "select file_name, outcome, reason from audit.landed_files order by landed_id").fetchall()}


def everything_shown(conn: psycopg.Connection, landing: Path, webhook: list[dict[str, Any]],
                     caplog: pytest.LogCaptureFixture) -> str:
    """All a person can read about the run: audit rows, reason files, alerts, the report, logs."""
    from vru import incidents
    from vru.report import write_report

    parts = []
    for query in ("select coalesce(string_agg(t::text, E'\\n'), '') from audit.landed_files t",
                  "select coalesce(string_agg(t::text, E'\\n'), '') from audit.loads t",
                  "select coalesce(string_agg(t::text, E'\\n'), '') from audit.incidents t"):
        parts.append(str(conn.execute(query).fetchone()[0]))  # type: ignore[index]
    for kind, summary in conn.execute("select kind, summary from audit.incidents").fetchall():
        parts.append(incidents._subject(incidents.Incident(key="k", kind=kind, summary=summary)))
    parts += [note.read_text(encoding="utf-8") for note in (landing / "rejected").glob("*.reason.txt")]
    parts += [json.dumps(payload, ensure_ascii=False) for payload in webhook]
    parts.append(write_report(cfg=settings()).read_text(encoding="utf-8"))
    parts.append(caplog.text)
    return "\n".join(parts)


def assert_nothing_echoed(shown: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in shown, f"{secret!r} is shown"
    for ch in CONTROL:
        assert ch not in shown, f"a raw control character {ch!r} is shown"


def assert_set_aside(conn: psycopg.Connection, landing: Path, webhook: list[dict[str, Any]],
                     name: str, says: str) -> str:
    """The entry `name` (as shown) was moved to rejected/ with a reason, recorded and alerted."""
    records = landed(conn)
    assert name in records, f"{name!r} not in audit.landed_files: {sorted(records)}"
    outcome, reason = records[name]
    assert outcome == "rejected" and says in reason, reason
    assert os.path.lexists(landing / "rejected" / name)
    note = (landing / "rejected" / f"{name}.reason.txt").read_text(encoding="utf-8")
    assert says in note and "nothing in this file was loaded" in note
    assert conn.execute("select count(*) from audit.incidents where kind = 'file_rejected' and strpos(summary, %s) > 0",
                        (name,)).fetchone() == (1,)
    assert any(name in str(p.get("summary")) for p in webhook), webhook
    return reason


def assert_nothing_taken_twice(conn: psycopg.Connection, before: int) -> None:
    """A second run finds nothing to take: every entry was moved, nothing is loaded again."""
    rows = loaded_rows(conn, GOOD_SITE)
    again = take_in()
    assert again["files"] == [] and loaded_rows(conn, GOOD_SITE) == rows
    assert conn.execute("select count(*) from audit.landed_files").fetchone() == (before,)


# ------------------------------------------------------------------------------------------------


def test_a_link_to_a_secret_outside_the_landing_area_is_set_aside_unopened(
        conn: psycopg.Connection, landing: Path, tmp_path: Path, webhook: list[dict[str, Any]],
        caplog: pytest.LogCaptureFixture) -> None:
    secret = tmp_path / "outside" / "credentials.csv"
    secret.parent.mkdir()
    secret.write_text(f"{SECRET}_header,password\nroot,{SECRET}_value\n", encoding="utf-8")
    good = drop_good(landing)
    (landing / "istv_link.csv").symlink_to(secret)
    take_in()
    assert_good_loaded(conn, landing, good)
    assert_set_aside(conn, landing, webhook, "istv_link.csv", "a symbolic link")
    assert (landing / "rejected" / "istv_link.csv").is_symlink()  # the link moved, not what it points to
    assert secret.read_text(encoding="utf-8").startswith(SECRET)
    archived = [p.read_bytes() for p in (tmp_path / "home" / "archive").rglob("*") if p.is_file()]
    assert archived and not any(SECRET.encode() in b for b in archived)
    assert_nothing_echoed(everything_shown(conn, landing, webhook, caplog), SECRET)
    assert_nothing_taken_twice(conn, 2)


def test_a_fifo_is_set_aside_without_blocking_the_run(
        conn: psycopg.Connection, landing: Path, webhook: list[dict[str, Any]],
        caplog: pytest.LogCaptureFixture) -> None:
    good = drop_good(landing)
    os.mkfifo(landing / "istv_pipe.csv")
    take_in()
    assert_good_loaded(conn, landing, good)
    assert_set_aside(conn, landing, webhook, "istv_pipe.csv", "a named pipe (FIFO)")
    assert (landing / "rejected" / "istv_pipe.csv").is_fifo()
    assert_nothing_taken_twice(conn, 2)


def test_a_file_still_growing_is_not_taken_until_it_has_settled(
        conn: psycopg.Connection, landing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settle = 1.0
    monkeypatch.setenv("VRU_AE_SETTLE_SECONDS", str(settle))
    good = drop_good(landing)
    time.sleep(settle + 0.2)  # the good file has settled
    full = sample_istv.extract("RFSDA", MONTH)
    growing = landing / "istv_RFSDA_2019-06.csv"
    growing.write_bytes(full[: len(full) // 2])  # a copy half done, cut mid-row
    first = take_in()
    assert_good_loaded(conn, landing, good)
    assert growing.exists() and first["waiting"] == 1
    assert [r for r in landed(conn) if r != GOOD_NAME] == []  # not taken, not rejected
    with open(growing, "ab") as handle:
        handle.write(full[len(full) // 2:])  # the copy finishes
    assert take_in()["files"] == [] and growing.exists()  # it changed just now: still waiting
    time.sleep(settle + 0.2)
    taken = take_in()
    assert [f["outcome"] for f in taken["files"]] == ["loaded"]
    assert loaded_rows(conn, "RFSDA") == len(rows_of(full)) - 1  # all of it, not the first half
    assert (landing / "loaded" / growing.name).read_bytes() == full
    assert_nothing_taken_twice(conn, 2)


def test_a_nul_byte_after_the_first_4_kb_is_set_aside(
        conn: psycopg.Connection, landing: Path, webhook: list[dict[str, Any]],
        caplog: pytest.LogCaptureFixture) -> None:
    rows = rows_of(sample_istv.extract("RFSDA", MONTH))
    line = next(i for i in range(1, len(rows)) if len(to_bytes(rows[:i])) > 5000) + 1  # after 4 KB
    rows[line - 1][rows[0].index("assault_location_description")] = f"{SECRET}\x00 by the bus stop"
    data = to_bytes(rows)
    assert data.index(b"\x00") > 4096
    good = drop_good(landing)
    (landing / "istv_nul.csv").write_bytes(data)
    take_in()
    assert_good_loaded(conn, landing, good)
    reason = assert_set_aside(conn, landing, webhook, "istv_nul.csv", "NUL byte")
    assert f"line {line}" in reason
    assert loaded_rows(conn, "RFSDA") == 0
    assert_nothing_echoed(everything_shown(conn, landing, webhook, caplog), SECRET)
    assert_nothing_taken_twice(conn, 2)


def test_a_file_name_that_is_not_utf8_is_set_aside_under_a_shown_name(
        conn: psycopg.Connection, landing: Path, webhook: list[dict[str, Any]],
        caplog: pytest.LogCaptureFixture) -> None:
    good = drop_good(landing)
    raw = os.fsdecode(b"istv_\xff\xfe_2019-06.csv")
    (landing / raw).write_bytes(sample_istv.extract("RFSDA", MONTH))
    take_in()
    assert_good_loaded(conn, landing, good)
    assert_set_aside(conn, landing, webhook, "istv_\\xff\\xfe_2019-06.csv", "not UTF-8")
    assert loaded_rows(conn, "RFSDA") == 0
    assert_nothing_echoed(everything_shown(conn, landing, webhook, caplog), raw)
    assert_nothing_taken_twice(conn, 2)


def test_control_characters_in_a_file_name_are_never_shown_raw(
        conn: psycopg.Connection, landing: Path, webhook: list[dict[str, Any]],
        caplog: pytest.LogCaptureFixture) -> None:
    good = drop_good(landing)
    raw = "istv\x1b[31m\r\nERROR forged log line\u202e\x07.csv"
    (landing / raw).write_bytes(sample_istv.extract("RFSDA", MONTH))
    take_in()
    assert_good_loaded(conn, landing, good)
    shown_name = "istv\\x1b[31m\\x0d\\x0aERROR forged log line\\u202e\\x07.csv"
    assert_set_aside(conn, landing, webhook, shown_name, "cannot be shown as they are")
    shown = everything_shown(conn, landing, webhook, caplog)
    assert shown_name in shown
    assert_nothing_echoed(shown, raw)
    assert "\nERROR forged log line" not in caplog.text
    assert_nothing_taken_twice(conn, 2)


def test_a_folder_named_like_an_extract_is_set_aside(
        conn: psycopg.Connection, landing: Path, webhook: list[dict[str, Any]]) -> None:
    good = drop_good(landing)
    (landing / "istv_folder.csv").mkdir()
    (landing / "istv_folder.csv" / "inside.csv").write_text(SECRET, encoding="utf-8")
    take_in()
    assert_good_loaded(conn, landing, good)
    assert_set_aside(conn, landing, webhook, "istv_folder.csv", "a folder")
    assert (landing / "rejected" / "istv_folder.csv" / "inside.csv").read_text(encoding="utf-8") == SECRET
    assert_nothing_taken_twice(conn, 2)


@pytest.mark.parametrize("error", [PermissionError(13, f"Permission denied: {SECRET}"),
                                   RuntimeError(f"unexpected, quoting the file: {SECRET}")])
def test_a_file_that_fails_to_read_is_set_aside_and_the_rest_still_taken(
        conn: psycopg.Connection, landing: Path, webhook: list[dict[str, Any]],
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    from vru import landing as landing_module

    real = landing_module.read_regular

    def read(entry: Any, max_bytes: int) -> bytes:
        if entry.name == "istv_unreadable.csv":
            raise error
        return real(entry, max_bytes)

    monkeypatch.setattr(landing_module, "read_regular", read)
    (landing / "istv_unreadable.csv").write_bytes(sample_istv.extract("RFSDA", MONTH))
    os.utime(landing / "istv_unreadable.csv", ns=(1, 1))  # listed first: the good file comes after it
    good = drop_good(landing)
    take_in()
    assert_good_loaded(conn, landing, good)
    assert_set_aside(conn, landing, webhook, "istv_unreadable.csv", type(error).__name__)
    assert_nothing_echoed(everything_shown(conn, landing, webhook, caplog), SECRET)
    assert_nothing_taken_twice(conn, 2)


def test_a_file_over_the_size_cap_is_set_aside_unread(
        conn: psycopg.Connection, landing: Path, webhook: list[dict[str, Any]],
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    good = drop_good(landing)
    cap = len(good) + 1000
    monkeypatch.setenv("VRU_AE_MAX_FILE_BYTES", str(cap))
    big = (f"{SECRET}," * (cap // 10)).encode()
    (landing / "istv_big.csv").write_bytes(big)
    take_in()
    assert_good_loaded(conn, landing, good)
    reason = assert_set_aside(conn, landing, webhook, "istv_big.csv", "VRU_AE_MAX_FILE_BYTES")
    assert f"{len(big):,} bytes" in reason and f"{cap:,}" in reason
    assert (landing / "rejected" / "istv_big.csv").read_bytes() == big  # kept whole, not lost
    archived = [p.read_bytes() for p in (tmp_path / "home" / "archive").rglob("*") if p.is_file()]
    assert not any(SECRET.encode() in b for b in archived)  # never read
    assert_nothing_echoed(everything_shown(conn, landing, webhook, caplog), SECRET)
    assert_nothing_taken_twice(conn, 2)


def test_a_file_without_its_header_row_never_shows_its_first_attendance(
        conn: psycopg.Connection, landing: Path, webhook: list[dict[str, Any]],
        caplog: pytest.LogCaptureFixture) -> None:
    rows = rows_of(sample_istv.extract("RFSDA", MONTH))
    first = rows[1]
    header = rows[0]
    first[header.index("assault_location_description")] = f"{SECRET} Flat 3, 12 Acacia Avenue"
    first[header.index("assault_method_other_description")] = f"{SECRET}-method"
    good = drop_good(landing)
    (landing / "istv_no_header.csv").write_bytes(to_bytes(rows[1:]))
    take_in()
    assert_good_loaded(conn, landing, good)
    reason = assert_set_aside(conn, landing, webhook, "istv_no_header.csv", "line 1 (header) lacks")
    assert "reporting_period_start_date" in reason  # the contract's own column names
    arrival = first[header.index("arrival_date_and_time")]
    assert_nothing_echoed(everything_shown(conn, landing, webhook, caplog), SECRET, arrival)
    assert_nothing_taken_twice(conn, 2)


def test_an_extra_column_is_named_by_position_never_by_its_header_cell(
        conn: psycopg.Connection, landing: Path, webhook: list[dict[str, Any]],
        caplog: pytest.LogCaptureFixture) -> None:
    rows = rows_of(sample_istv.extract("RFSDA", MONTH))
    rows = [[*rows[0], f"{SECRET}_patient_name"], *[[*r, "x"] for r in rows[1:]]]
    good = drop_good(landing)
    (landing / "istv_extra.csv").write_bytes(to_bytes(rows))
    take_in()
    assert_good_loaded(conn, landing, good)
    reason = assert_set_aside(conn, landing, webhook, "istv_extra.csv", "field(s) 12 of the header")
    assert "the contract does not have" in reason
    assert_nothing_echoed(everything_shown(conn, landing, webhook, caplog), SECRET)


def test_a_link_planted_as_the_loaded_folder_stops_the_run_before_any_file_moves(
        conn: psycopg.Connection, landing: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (landing / "loaded").symlink_to(elsewhere)
    good = drop_good(landing)
    with pytest.raises(Exception, match="is not a folder"):
        take_in()
    assert list(elsewhere.iterdir()) == []  # nothing written through the link
    assert (landing / GOOD_NAME).read_bytes() == good  # nothing lost: still waiting
    assert loaded_rows(conn, GOOD_SITE) == 0


def test_the_watcher_announces_a_file_only_once_it_has_settled_and_never_follows_a_link(
        landing: Path, tmp_path: Path) -> None:
    from vru.triggers import LandingFileTrigger

    secret = tmp_path / "secret.csv"
    secret.write_text(SECRET, encoding="utf-8")
    settle = 0.8

    async def scenario() -> list[tuple[float, list[str]]]:
        trigger = LandingFileTrigger(directory=str(landing), poke_interval=0.05, settle_seconds=settle)
        events: list[tuple[float, list[str]]] = []
        started = time.monotonic()

        async def watch() -> None:
            async for event in trigger.run():
                events.append((time.monotonic() - started, event.payload["files"]))

        watcher = asyncio.create_task(watch())
        (landing / "growing.csv").write_bytes(b"a")
        (landing / "link.csv").symlink_to(secret)
        (landing / os.fsdecode(b"bad\xff.csv")).write_bytes(b"x")
        for _ in range(8):  # a copy that keeps writing for 0.8 s
            await asyncio.sleep(0.1)
            with open(landing / "growing.csv", "ab") as handle:
                handle.write(b"b")
        await asyncio.sleep(settle + 0.6)
        watcher.cancel()
        return events

    events = asyncio.run(scenario())
    link_events = [t for t, files in events if "link.csv" in files]
    growing_events = [t for t, files in events if "growing.csv" in files]
    assert len(link_events) == 1 and link_events[0] >= settle  # announced (to be set aside), after settling
    assert len(growing_events) == 1 and growing_events[0] >= 0.8 + settle  # not while it grew
    assert secret.read_text(encoding="utf-8") == SECRET
    assert [files for _, files in events if "bad\\xff.csv" in files]  # announced under its shown name


def test_a_site_code_that_is_not_a_code_is_refused_and_never_recorded(
        conn: psycopg.Connection, landing: Path, webhook: list[dict[str, Any]],
        caplog: pytest.LogCaptureFixture) -> None:
    rows = rows_of(sample_istv.extract("RFSDA", MONTH))
    site = rows[0].index("site_code_of_treatment")
    for row in rows[1:]:
        row[site] = f"{SECRET} Ward 7"  # free text where the ODS code belongs
    good = drop_good(landing)
    (landing / "istv_site.csv").write_bytes(to_bytes(rows))
    take_in()
    assert_good_loaded(conn, landing, good)
    assert_set_aside(conn, landing, webhook, "istv_site.csv", "column site_code_of_treatment: not an ODS site code")
    assert_nothing_echoed(everything_shown(conn, landing, webhook, caplog), SECRET, SECRET.upper())


def test_a_name_too_long_to_show_is_set_aside_under_a_short_name_and_the_rest_still_taken(
        conn: psycopg.Connection, landing: Path, webhook: list[dict[str, Any]]) -> None:
    raw = "istv_" + "a" * 240 + ".csv"  # 249 bytes: a legal name, but its reason file's would not be
    rows = rows_of(sample_istv.extract("RFSDA", MONTH))
    (landing / raw).write_bytes(to_bytes(rows[1:]))  # and it is refused anyway (no header row)
    os.utime(landing / raw, ns=(1, 1))  # listed first: the good file comes after it
    good = drop_good(landing)
    take_in()
    assert_good_loaded(conn, landing, good)
    from vru.names import NAME_LIMIT_BYTES, safe_name

    shown = safe_name(raw)
    assert len(shown.encode()) <= NAME_LIMIT_BYTES and shown != safe_name(raw.replace("a", "b"))
    assert_set_aside(conn, landing, webhook, shown, "longer than")
    assert_nothing_taken_twice(conn, 2)


@pytest.mark.parametrize(("name", "shown"), [
    ("istv_RWEAA_2019-06.csv", "istv_RWEAA_2019-06.csv"),
    ("Café extract (June).csv", "Café extract (June).csv"),
    ("a\tb\x7f.csv", "a\\x09b\\x7f.csv"),
    ("bidi\u202egpj.csv", "bidi\\u202egpj.csv"),
    (os.fsdecode(b"x\xc3.csv"), "x\\xc3.csv"),
    (b"x\xc3.csv", "x\\xc3.csv"),
])
def test_safe_name_escapes_what_cannot_be_shown(name: str | bytes, shown: str) -> None:
    from vru.names import safe_name, safe_text

    assert safe_name(name) == shown
    assert safe_name(shown) == shown  # showing a shown name changes nothing
    assert safe_text(f"subject {shown}\r\nBcc: x") == f"subject {shown}\\x0d\\x0aBcc: x"
