"""Progress of the long commands: `vru load-archive` (years of monthly files) and `vru run` (a night
of DAG runs). On a terminal, a live bar (tqdm) with totals and an estimate of the time left, and
the lines that are a record (a file's result, a run's state change) written above it. Anywhere
else (CI, a log file, a pipe) plain lines only, never a bar's control characters: a line per file
and a totals line every `every` files; a line per DAG run state change and one every `heartbeat`
seconds while a run's state stays the same.

The estimates are what the figures allow, no more: for files, the bytes read so far against the
bytes left (files differ in size by a factor of 50 between forces); for a DAG run, the duration of
the same DAG's previous successful run, when there is one.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from vru.feed import FAILED_LOADS, SUCCESSFUL_LOADS

if TYPE_CHECKING:
    from airflow_client.client import DAGRunResponse


def is_terminal(stream: TextIO) -> bool:
    """Is someone watching `stream` live (a terminal that understands a redrawn line)?"""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty()) and os.environ.get("TERM") != "dumb"


def duration(seconds: float) -> str:
    """3s, 4m05s, 2h03m: short enough for a progress line."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class _Output:
    """Writes lines plainly, or above a live bar; owns the bar."""

    def __init__(self, stream: TextIO, live: bool | None, write: Callable[[str], object] | None = None) -> None:
        self.stream = stream
        self.write = write
        self.live = write is None and (is_terminal(stream) if live is None else live)
        self.bar: tqdm[None] | None = None
        self._logging: contextlib.ExitStack | None = None

    def open_bar(self, **options: object) -> None:
        if not self.live:
            return
        self.bar = tqdm(file=self.stream, dynamic_ncols=True, mininterval=0.5, **options)
        # log records (stderr) would break the bar's line: written above it instead
        self._logging = contextlib.ExitStack()
        self._logging.enter_context(logging_redirect_tqdm())

    def line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        elif self.write is not None:
            self.write(text)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self._logging is not None:
            self._logging.close()
            self._logging = None


# ------------------------------------------------------------------------------------------------
# Files: `vru load-archive`
# ------------------------------------------------------------------------------------------------


class FileProgress:
    """Files loaded of those given, force-months by outcome, rows loaded, time left."""

    def __init__(self, files: Sequence[Path], stream: TextIO | None = None, live: bool | None = None,
                 every: int = 10, clock: Callable[[], float] = time.monotonic) -> None:
        self.files = len(files)
        self.total_bytes = sum(path.stat().st_size for path in files)
        self.every = max(1, every)
        self.clock = clock
        self.started = clock()
        self.done = 0
        self.done_bytes = 0
        self.rows = 0
        self.statuses: dict[str, int] = {}
        self.closed = False
        self.out = _Output(stream or sys.stdout, live)
        self.out.open_bar(total=self.total_bytes, unit="B", unit_scale=True, unit_divisor=1024,
                          desc="load-archive", postfix=self._postfix())

    def __enter__(self) -> FileProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def failed(self) -> int:
        return sum(self.statuses.get(s, 0) for s in FAILED_LOADS)

    def _postfix(self) -> str:
        return f"files {self.done}/{self.files}, rows {self.rows:,}, failed {self.failed}"

    def left(self) -> float | None:
        """Seconds left at the rate so far (None before the first byte)."""
        if not self.done_bytes:
            return None
        return (self.clock() - self.started) / self.done_bytes * (self.total_bytes - self.done_bytes)

    def file_done(self, path: Path, status: str, rows_loaded: int, line: str) -> None:
        """One file's result: its line (the record), then the totals."""
        size = path.stat().st_size
        self.done += 1
        self.done_bytes += size
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status in SUCCESSFUL_LOADS:
            self.rows += rows_loaded
        self.out.line(line)
        if self.out.bar is not None:
            self.out.bar.set_postfix_str(self._postfix(), refresh=False)
            self.out.bar.update(size)
        elif self.done % self.every == 0 and self.done < self.files:
            self.out.line(self.status_line())

    def status_line(self) -> str:
        share = self.done_bytes / self.total_bytes if self.total_bytes else 1.0
        left = self.left()
        return (f"progress: {self.done}/{self.files} files ({share:.0%} of the bytes), {self.rows:,} rows "
                f"loaded, {self.failed} failed; {duration(self.clock() - self.started)} elapsed"
                + (f", about {duration(left)} left" if left is not None else ""))

    def summary_line(self) -> str:
        outcomes = ", ".join(f"{n} {status}" for status, n in sorted(self.statuses.items()))
        return (f"load-archive: {self.done} of {self.files} files (force-months: {outcomes or 'none'}), "
                f"{self.rows:,} rows loaded in {duration(self.clock() - self.started)}")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.out.close()
        self.out.line(self.summary_line())


# ------------------------------------------------------------------------------------------------
# DAG runs: `vru run`
# ------------------------------------------------------------------------------------------------


@dataclass
class _Run:
    label: str
    state: str
    expected: float | None  # seconds: the previous successful run of the same DAG
    said_at: float  # clock() of the last line about it


class RunProgress:
    """DAG runs followed and finished, the state of the one followed now, its time left."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None, heartbeat: float = 300,
                 write: Callable[[str], object] | None = None, clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """`live`: a bar (default: when `stream` is a terminal); `write`: where plain lines go
        instead of `stream` (then never a bar)."""
        self.heartbeat = heartbeat
        self.clock = clock
        self.now = now
        self.planned: list[str] = []  # a DAG id per run to follow that has not been seen yet
        self.runs: dict[tuple[str, str], _Run] = {}  # (dag_id, run_id): run ids repeat across DAGs
        self.expected: dict[str, float] = {}
        self.out = _Output(stream or sys.stdout, live, write)
        # the run followed now in {desc}: tqdm puts a comma before {postfix}
        self.out.open_bar(total=0, desc="", bar_format="DAG runs: {n_fmt}/{total_fmt} finished "
                          "|{bar:20}| [{elapsed}] {desc}")

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def finished(self) -> int:
        return sum(r.state in ("success", "failed") for r in self.runs.values())

    @property
    def total(self) -> int:
        return len(self.runs) + len(self.planned)

    def plan(self, *dag_ids: str) -> None:
        """A run of each of these DAGs will be followed (before it exists: a total to show)."""
        self.planned += dag_ids
        self._refresh()

    def expect(self, dag_id: str, seconds: float | None) -> None:
        """How long the DAG's runs take (its previous successful run), for the estimate."""
        if seconds:
            self.expected[dag_id] = seconds

    def note(self, text: str) -> None:
        self.out.line(text)

    def _elapsed(self, run: DAGRunResponse) -> float | None:
        if run.duration is not None:
            return float(run.duration)
        return (self.now() - run.start_date).total_seconds() if run.start_date else None

    def _left(self, run: DAGRunResponse, expected: float | None) -> str:
        elapsed = self._elapsed(run)
        if expected is None:
            return "no estimate yet (no earlier successful run)"
        if elapsed is None:
            return f"the last run took {duration(expected)}"
        if elapsed > expected:
            return f"longer than the last run ({duration(expected)})"
        return f"about {duration(expected - elapsed)} left (the last run took {duration(expected)})"

    def update(self, run: DAGRunResponse) -> None:
        """What the API said about a run just now: a line when its state changed (or, plain, every
        `heartbeat` seconds while it did not)."""
        state = run.state.value
        seen = self.runs.get((run.dag_id, run.dag_run_id))
        if seen is None:
            seen = self.runs[(run.dag_id, run.dag_run_id)] = _Run(f"{run.dag_id} {run.dag_run_id}", "",
                                                    self.expected.get(run.dag_id), self.clock())
            if run.dag_id in self.planned:
                self.planned.remove(run.dag_id)
        changed = state != seen.state
        elapsed = self._elapsed(run)
        if changed:
            seen.state = state
            if state in ("success", "failed"):
                self.note(f"{seen.label}: {state}"
                          + (f" in {duration(elapsed)}" if elapsed is not None else "")
                          + f" (DAG runs finished: {self.finished} of {self.total})")
            else:
                self.note(f"{seen.label}: {state}; {self._left(run, seen.expected)}")
            seen.said_at = self.clock()
        elif self.out.bar is None and self.clock() - seen.said_at >= self.heartbeat:
            self.note(f"{seen.label}: still {state} after {duration(elapsed or 0)}; "
                      f"{self._left(run, seen.expected)}")
            seen.said_at = self.clock()
        if self.out.bar is not None:
            self.out.bar.set_description_str(f"{run.dag_id} {state} {duration(elapsed or 0)}; "
                                             f"{self._left(run, seen.expected)}", refresh=False)
        self._refresh()

    def _refresh(self) -> None:
        if self.out.bar is not None:
            self.out.bar.total = self.total
            self.out.bar.n = self.finished
            self.out.bar.refresh()

    def close(self) -> None:
        self.out.close()

