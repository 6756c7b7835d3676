"""Progress of `vru run` (DAG runs) and `vru load-archive` (files): a bar on a terminal, plain lines
in a log. The reporters alone, on a clock the test moves; the real runs through Airflow are the
end-to-end tests, and load-archive's output on a real terminal is in test_cli.py."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow_client.client import DAGRunResponse
from conftest import SAMPLE, dag_run
from vru.progress import FileProgress, RunProgress, duration

START = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
CONTROL = ("\r", "\x1b")  # a bar's redraws: never in a log


class Clock:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return START + timedelta(seconds=self.seconds)


def _run(dag_id: str, run_id: str, state: str, clock: Clock | None = None, started: float | None = 0) -> DAGRunResponse:
    run = dag_run(dag_id, run_id, state)
    if started is not None:
        run.start_date = START + timedelta(seconds=started)
    if state in ("success", "failed") and clock is not None:
        run.duration = clock.seconds - (started or 0)
    return run


def test_durations_are_short() -> None:
    assert [duration(s) for s in (0, 59.4, 61, 3599, 3600 * 2 + 180)] == ["0s", "59s", "1m01s", "59m59s", "2h03m"]


def test_plain_lines_say_each_state_change_and_how_long_is_left() -> None:
    clock, log = Clock(), io.StringIO()
    progress = RunProgress(stream=log, live=False, heartbeat=300, clock=clock, now=clock.now)
    progress.plan("vru_ingest_police", "vru_ingest_knife_crime")
    progress.expect("vru_ingest_police", 600.0)  # its previous successful run took 10 minutes
    progress.update(_run("vru_ingest_police", "r1", "queued", started=None))
    clock.seconds = 5
    progress.update(_run("vru_ingest_police", "r1", "running", started=5))
    clock.seconds = 125
    progress.update(_run("vru_ingest_police", "r1", "running", started=5))  # no change: no line
    clock.seconds = 310
    progress.update(_run("vru_ingest_police", "r1", "running", started=5))  # 5 minutes on: a line
    clock.seconds = 400
    progress.update(_run("vru_ingest_police", "r1", "success", clock, started=5))
    progress.update(_run("vru_ingest_knife_crime", "r1", "running", started=390))  # the same run id, another DAG
    clock.seconds = 420
    progress.update(_run("vru_ingest_knife_crime", "r1", "failed", clock, started=390))
    progress.plan("vru_transform")
    progress.note("waiting for the vru_transform run the asset event starts")
    progress.close()
    assert log.getvalue().splitlines() == [
        "vru_ingest_police r1: queued; the last run took 10m00s",
        "vru_ingest_police r1: running; about 10m00s left (the last run took 10m00s)",
        "vru_ingest_police r1: still running after 5m05s; about 4m55s left (the last run took 10m00s)",
        "vru_ingest_police r1: success in 6m35s (DAG runs finished: 1 of 2)",
        "vru_ingest_knife_crime r1: running; no estimate yet (no earlier successful run)",
        "vru_ingest_knife_crime r1: failed in 30s (DAG runs finished: 2 of 2)",
        "waiting for the vru_transform run the asset event starts",
    ]
    assert not any(c in log.getvalue() for c in CONTROL)


def test_plain_lines_can_go_to_a_callable_and_never_draw_a_bar() -> None:
    lines: list[str] = []
    with RunProgress(live=True, write=lines.append) as progress:  # `vru run` called with out=...
        progress.update(_run("vru_transform", "t1", "running"))
    assert lines and lines[0].startswith("vru_transform t1: running; ")


def test_a_run_longer_than_the_last_one_says_so() -> None:
    clock, log = Clock(), io.StringIO()
    progress = RunProgress(stream=log, live=False, heartbeat=60, clock=clock, now=clock.now)
    progress.expect("vru_transform", 100.0)
    progress.update(_run("vru_transform", "t1", "running"))
    clock.seconds = 150
    progress.update(_run("vru_transform", "t1", "running"))
    assert log.getvalue().splitlines()[-1] == ("vru_transform t1: still running after 2m30s; "
                                               "longer than the last run (1m40s)")


def test_on_a_terminal_a_bar_counts_finished_runs_and_the_lines_stay_above_it() -> None:
    clock, screen = Clock(), io.StringIO()
    progress = RunProgress(stream=screen, live=True, clock=clock, now=clock.now)
    progress.plan("vru_ingest_police", "vru_transform")
    progress.expect("vru_ingest_police", 60.0)
    progress.update(_run("vru_ingest_police", "r1", "running"))
    clock.seconds = 20
    progress.update(_run("vru_ingest_police", "r1", "running"))
    clock.seconds = 50
    progress.update(_run("vru_ingest_police", "r1", "success", clock))
    progress.close()
    drawn = screen.getvalue()
    assert "\r" in drawn  # redrawn in place
    assert "DAG runs: 0/2 finished" in drawn and "DAG runs: 1/2 finished" in drawn
    assert "] vru_ingest_police running 20s; about 40s left (the last run took 1m00s)" in drawn
    assert "vru_ingest_police r1: success in 50s (DAG runs finished: 1 of 2)\n" in drawn


def test_file_progress_in_a_log_every_n_files_with_rows_and_time_left(tmp_path: Path) -> None:
    files = sorted(SAMPLE.glob("2019-12-*.csv"))[:4]
    clock, log = Clock(), io.StringIO()
    with FileProgress(files, stream=log, live=False, every=2, clock=clock) as progress:
        for n, (path, status) in enumerate(zip(files, ("loaded", "unchanged", "refused", "loaded"), strict=True)):
            clock.seconds += 10
            progress.file_done(path, status, 100 * (n + 1), f"{path.name}: {status}")
    lines = log.getvalue().splitlines()
    done = sum(p.stat().st_size for p in files[:2])
    left = 20 / done * sum(p.stat().st_size for p in files[2:])
    share = done / sum(p.stat().st_size for p in files)
    assert lines == [
        f"{files[0].name}: loaded",
        f"{files[1].name}: unchanged",
        f"progress: 2/4 files ({share:.0%} of the bytes), 100 rows loaded, 0 failed; 20s elapsed, "
        f"about {duration(left)} left",
        f"{files[2].name}: refused",
        f"{files[3].name}: loaded",
        "load-archive: 4 of 4 files (force-months: 2 loaded, 1 refused, 1 unchanged), 500 rows loaded in 40s",
    ]
    assert progress.failed == 1
    assert not any(c in log.getvalue() for c in CONTROL)


def test_is_a_terminal_only_when_the_stream_is_one(tmp_path: Path) -> None:
    files = sorted(SAMPLE.glob("2019-12-*.csv"))[:1]
    with open(tmp_path / "log", "w") as log:
        assert not FileProgress(files, stream=log).out.live
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w") as terminal:
            progress = FileProgress(files, stream=terminal)
            assert progress.out.live and progress.out.bar is not None
            progress.close()
    finally:
        os.close(master)
