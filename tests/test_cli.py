"""The command line: the embedded warehouse's lifecycle, and the same code on an external URL."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios
from pathlib import Path

import psycopg
import pytest
from conftest import SAMPLE

VRU = [sys.executable, "-m", "vru.cli"]


def _vru(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VRU, *args], env=env, capture_output=True, text=True, timeout=180, check=False)


def test_warehouse_url_leaves_a_server_running_until_stopped(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "VRU_WAREHOUSE_URL"} | {"VRU_HOME": str(tmp_path)}
    try:
        done = _vru(["warehouse", "url"], env)
        assert done.returncode == 0, done.stderr
        url = done.stdout.strip()
        # the pipeline role's URL, not the superuser's
        assert url.startswith("postgresql://vru_pipeline:") and "@127.0.0.1:" in url and url.endswith("/warehouse")
        # the command has returned; the server is still there, with the product's schemas
        with psycopg.connect(url) as conn:
            schemas = {r[0] for r in conn.execute("select nspname from pg_namespace")}
        assert {"raw", "staging", "marts", "audit"} <= schemas
        assert (tmp_path / "warehouse" / "pgdata" / "PG_VERSION").exists()
        assert _vru(["warehouse", "status"], env).stdout.strip() == "running"
        # the password is not in what `start` prints (it is for logs); `url` is the one that shows it
        password = url.split(":")[2].split("@")[0]
        started = _vru(["warehouse", "start"], env)
        assert started.returncode == 0 and password not in started.stdout and "***" in started.stdout
    finally:
        stopped = _vru(["warehouse", "stop"], env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=3)
    assert _vru(["warehouse", "status"], env).returncode == 3


def test_external_warehouse_url_is_used_as_is(clean_warehouse: str, tmp_path: Path) -> None:
    """With VRU_WAREHOUSE_URL set, no embedded server is created; the same loader writes there."""
    env = dict(os.environ, VRU_HOME=str(tmp_path), VRU_WAREHOUSE_URL=clean_warehouse)
    files = [str(SAMPLE / "2019-12-durham-stop-and-search.csv"), str(SAMPLE / "2020-01-durham-stop-and-search.csv")]
    done = _vru(["load-archive", *files], env)
    assert done.returncode == 0, done.stderr
    assert "durham 2019-12: loaded" in done.stdout and "durham 2020-01: loaded" in done.stdout
    assert not (tmp_path / "warehouse").exists()
    with psycopg.connect(clean_warehouse) as conn:
        assert conn.execute("select count(distinct month) from raw.stop_searches").fetchone() == (2,)
    assert _vru(["warehouse", "url"], env).stdout.strip() == clean_warehouse
    again = _vru(["load-archive", *files], env)
    assert "unchanged" in again.stdout


def test_refused_file_makes_the_command_fail_with_the_reason(clean_warehouse: str, tmp_path: Path) -> None:
    bad = tmp_path / "2020-01-durham-stop-and-search.csv"
    bad.write_text("Type,Date,Force\nPerson search,2020-01-01T00:00:00+00:00,durham\n")
    env = dict(os.environ, VRU_HOME=str(tmp_path), VRU_WAREHOUSE_URL=clean_warehouse)
    done = _vru(["load-archive", str(bad)], env)
    assert done.returncode == 1
    assert "refused" in done.stdout and "missing" in done.stdout and "'Force'" in done.stdout


def _on_a_terminal(args: list[str], env: dict[str, str], columns: int = 120) -> tuple[int, str]:
    """Run `vru` with its stdout and stderr on a pseudo-terminal, as a person at a terminal sees it."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))  # a real terminal's size
    process = subprocess.Popen([*VRU, *args], env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other end closed (the process exited)
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    return process.wait(timeout=180), screen.decode()


ARCHIVE = sorted(str(p) for p in SAMPLE.glob("*.csv"))  # 21 force-months, Dec 2019 - Feb 2020


def test_load_archive_in_a_log_prints_plain_progress_lines(clean_warehouse: str, tmp_path: Path) -> None:
    env = dict(os.environ, VRU_HOME=str(tmp_path), VRU_WAREHOUSE_URL=clean_warehouse)
    done = _vru(["load-archive", "--every", "5", *ARCHIVE], env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len([line for line in lines if line.endswith(" quarantined")]) == 21  # a line per file
    progress = [line for line in lines if line.startswith("progress: ")]
    assert [line.split(" files")[0] for line in progress] == [f"progress: {n}/21" for n in (5, 10, 15, 20)]
    assert all(" rows loaded, 0 failed; " in line and " elapsed, about " in line for line in progress)
    with psycopg.connect(clean_warehouse) as conn:
        rows = conn.execute("select count(*) from raw.stop_searches").fetchone()[0]  # type: ignore[index]
    assert lines[-1].startswith(f"load-archive: 21 of 21 files (force-months: 21 loaded), {rows:,} rows loaded in ")
    assert "\r" not in done.stdout + done.stderr and "\x1b" not in done.stdout + done.stderr


def test_load_archive_on_a_terminal_draws_a_bar_below_the_lines(clean_warehouse: str, tmp_path: Path) -> None:
    env = dict(os.environ, VRU_HOME=str(tmp_path), VRU_WAREHOUSE_URL=clean_warehouse)
    env.pop("TERM", None)
    code, screen = _on_a_terminal(["load-archive", *ARCHIVE[:7]], env)
    assert code == 0, screen
    assert "\r" in screen  # the bar redrawn in place
    assert "load-archive: 100%" in screen and "files 7/7" in screen and "failed 0" in screen
    assert "progress: " not in screen  # the bar, not the log's lines
    # every file's line and the log records are written above the bar, each on a line of its own
    lines = [line.split("\r")[-1] for line in screen.split("\r\n")]
    assert len([line for line in lines if line.endswith(" quarantined")]) == 7
    assert any(line.endswith("from archive_csv") and " INFO vru.feeds.police: " in line for line in lines)
    assert lines[-2].startswith("load-archive: 7 of 7 files (force-months: 7 loaded), ")
