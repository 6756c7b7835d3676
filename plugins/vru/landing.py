"""The A&E landing area: files emergency departments drop, taken in one by one.

Layout under ``VRU_AE_LANDING`` (default ``VRU_HOME/landing/ae``)::

    <landing>/            files arrive here (write to a name ending .part or starting with a
                          dot, then rename: half-written files are never picked up)
    <landing>/loaded/     files whose content is committed to the warehouse (and duplicates)
    <landing>/rejected/   files refused whole, each with <name>.reason.txt beside it

Order of work per file, so nothing is lost whatever fails: archive the bytes (content-addressed,
``VRU_HOME/archive/ae.attendances/``), load in one transaction and record the outcome in
``audit.landed_files``, commit, and only then move the file. A crash before the move leaves the
file in place; the next run finds its bytes already loaded and just moves it. A database error
leaves the file where it was and fails the task (Airflow retries it).

The folder is not trusted (:mod:`vru.landing_entries`): a file is taken only once it has been
unchanged for the settle period; a link, a FIFO, a folder, a file larger than the cap, a file
whose name cannot be shown as it is, and a file that fails in any other way are **set aside**:
moved to ``rejected/`` with a reason (never its content, never its raw name), recorded in
``audit.landed_files`` and alerted like a rejected extract, while every other file is still taken
in. Only a lost warehouse connection stops the run (the files stay where they are).
"""

from __future__ import annotations

import logging
import os
import stat
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from vru.archive import Archive, Archived
from vru.feed import SUCCESSFUL_LOADS
from vru.feeds import ae
from vru.landing_entries import LOADED, REJECTED, Entry, NotSettled, Unfit, entries, read_regular
from vru.names import NAME_LIMIT_BYTES, is_plain, safe_name

log = logging.getLogger(__name__)

__all__ = ["LOADED", "REJECTED", "FileOutcome", "LandingSummary", "Limits", "ingest_landed",
           "pending_files", "process_landing", "rejected_key", "take_in"]


def pending_files(landing: Path) -> list[Path]:
    """Everything waiting in the landing folder, oldest first (hidden and .part files are still
    being written); links, FIFOs and folders included: the take-in sets them aside."""
    return [e.path for e in entries(landing)]


@dataclass(frozen=True)
class Limits:
    settle_seconds: float  # unchanged this long before a file is taken (VRU_AE_SETTLE_SECONDS)
    max_file_bytes: int  # larger files are set aside unread (VRU_AE_MAX_FILE_BYTES)

    @classmethod
    def from_settings(cls, cfg: Any = None) -> Limits:
        from vru.config import settings

        cfg = cfg or settings()
        return cls(cfg.ae_settle_seconds, cfg.ae_max_file_bytes)


@dataclass
class FileOutcome:
    file_name: str
    outcome: str  # loaded | replaced | duplicate | rejected
    sha256: str
    moved_to: str
    site_code: str | None = None
    period: str | None = None
    rows_loaded: int = 0
    rows_quarantined: int = 0
    reason: str | None = None
    load_id: int | None = None


# FileOutcome fields that count A&E rows: kept out of anything Airflow users can read.
COUNT_FIELDS = ("rows_loaded", "rows_quarantined")


@dataclass
class LandingSummary:
    files: list[FileOutcome] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # shown names of files not settled yet
    stuck: list[str] = field(default_factory=list)  # shown names that could not even be set aside

    def count(self, outcome: str) -> int:
        return sum(1 for f in self.files if f.outcome == outcome)

    @property
    def changed(self) -> list[FileOutcome]:
        return [f for f in self.files if f.outcome in SUCCESSFUL_LOADS]

    def to_dict(self) -> dict[str, Any]:
        """What the task returns (XCom) and logs: readable by Airflow users, so no row counts.

        A count of rows per extract is a count of A&E attendances by site and period: for an area
        with one department, the force-month total the mart may withhold (issue 12). Exact counts
        stay in audit.landed_files, which only the pipeline's role reads.
        """
        return {
            "files": [{key: value for key, value in asdict(f).items() if key not in COUNT_FIELDS}
                      | {"rows_set_aside": f.rows_quarantined > 0} for f in self.files],
            "loaded": self.count("loaded"),
            "replaced": self.count("replaced"),
            "duplicates": self.count("duplicate"),
            "rejected": self.count("rejected"),
            "waiting": len(self.waiting),
            "stuck": len(self.stuck),
            "extracts_with_rows_set_aside": sum(1 for f in self.changed if f.rows_quarantined),
            "extracts": sorted(f"{f.site_code} {f.period}" for f in self.changed),
        }


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _target(name: str, folder: Path, sha256: str | None) -> Path:
    """Where a file called `name` goes in `folder`: its shown name, unless something else has it.

    `sha256` None (an entry that was not read): always a name of its own.
    """
    shown = Path(safe_name(name))
    target = folder / shown.name
    if not os.path.lexists(target):
        return target
    if sha256 and _is_regular(target) and _sha256(target) == sha256:
        return target  # the same bytes are already there
    tag = sha256[:12] if sha256 else f"{time.time_ns():x}"
    return folder / f"{shown.stem}.{tag}{shown.suffix}"


def _move(path: Path, target: Path) -> None:
    """Called only after the outcome is committed. The same bytes already there: drop this copy.

    A rename moves a link or a FIFO itself, never what a link points to."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(target):
        path.unlink()  # identical bytes (checked by _target), archived and committed
    else:
        os.replace(path, target)


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _record(conn: psycopg.Connection, o: FileOutcome, size: int, run_id: str | None,
            duplicate_of: int | None = None, period: tuple[Any, Any] | None = None) -> None:
    conn.execute(
        """insert into audit.landed_files (dataset, file_name, sha256, size_bytes, outcome, load_id,
               duplicate_of, site_code, reporting_period_start, reporting_period_end, rows_loaded,
               rows_quarantined, reason, moved_to, run_id)
           values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (ae.DATASET, o.file_name, o.sha256, size, o.outcome, o.load_id, duplicate_of, o.site_code,
         period[0] if period else None, period[1] if period else None, o.rows_loaded,
         o.rows_quarantined, o.reason, o.moved_to, run_id),
    )


def process_landing(conn: psycopg.Connection, landing: Path, archive: Archive,
                    reference: ae.Reference, run_id: str | None,
                    limits: Limits | None = None) -> LandingSummary:
    """Take in every settled file waiting in `landing` (one at a time, oldest first).

    One file's failure never stops the others: it is set aside (see :func:`_take_one`). Only a
    lost warehouse connection stops the run, leaving the remaining files where they are.
    """
    limits = limits or Limits.from_settings()
    _check_work_folders(landing)
    summary = LandingSummary()
    # one taker at a time (a file-triggered run and the nightly sweep, or the CLI)
    conn.execute("select pg_advisory_lock(hashtext('vru.ae_landing'))")
    try:
        for entry in entries(landing):
            shown = safe_name(entry.name)
            if not entry.settled(limits.settle_seconds):
                summary.waiting.append(shown)
                log.info("%s: changed less than %s s ago; left for a later run", shown, limits.settle_seconds)
                continue
            try:
                outcome = _take_one(conn, entry, landing, archive, reference, run_id, limits)
            except Exception as exc:
                if _warehouse_lost(conn, exc):
                    raise
                # not even setting it aside worked (the rejected/ folder not writable, say)
                summary.stuck.append(shown)
                log.error("%s: could not be set aside (%s); it stays in the landing folder", shown, _kind(exc))
                continue
            if outcome is None:
                summary.waiting.append(shown)
            else:
                summary.files.append(outcome)
    finally:
        conn.execute("select pg_advisory_unlock(hashtext('vru.ae_landing'))")
    return summary


class LandingFolderError(RuntimeError):
    """The landing area's own folders are not what they should be: nothing is taken in."""


def _check_work_folders(landing: Path) -> None:
    """loaded/ and rejected/ must be real folders: files are never moved through a link planted there."""
    for sub in (LOADED, REJECTED):
        folder = landing / sub
        if os.path.lexists(folder) and not stat.S_ISDIR(os.lstat(folder).st_mode):
            raise LandingFolderError(f"{folder} is not a folder (a link, or a file); nothing was taken in. "
                                     "Remove it; the next run makes the folder again")


def _kind(exc: BaseException) -> str:
    """An exception named without its message (a message can quote the file: a COPY error does)."""
    code = getattr(exc, "sqlstate", None)
    return type(exc).__name__ + (f" (SQLSTATE {code})" if code else "")


def _warehouse_lost(conn: psycopg.Connection, exc: BaseException) -> bool:
    """True when the failure is the warehouse connection, not the file: then the run stops."""
    if isinstance(exc, psycopg.OperationalError) or conn.closed or conn.broken:
        return True
    try:
        conn.execute("select 1")
    except psycopg.Error:
        return True
    return False


def _take_one(conn: psycopg.Connection, entry: Entry, landing: Path, archive: Archive,
              reference: ae.Reference, run_id: str | None, limits: Limits) -> FileOutcome | None:
    """Take in one entry, or set it aside with a reason; None: it changed, leave it for later."""
    shown = safe_name(entry.name)
    try:
        return take_in(conn, entry, landing, archive, reference, run_id, limits)
    except NotSettled as exc:
        log.info("%s: %s; left for a later run", shown, exc)
        return None
    except Unfit as exc:
        return _reject(conn, entry, landing, None, f"{shown}: {exc}", run_id)
    except Exception as exc:
        if _warehouse_lost(conn, exc):
            raise
        log.error("%s: could not be taken in (%s); set aside", shown, _kind(exc))
        return _reject(conn, entry, landing, None,
                       f"{shown}: the file could not be taken in ({_kind(exc)}); it is kept in rejected/ "
                       "unchanged. Tell the data team: the task log says when it happened", run_id)


def take_in(conn: psycopg.Connection, entry: Entry, landing: Path, archive: Archive,
            reference: ae.Reference, run_id: str | None, limits: Limits | None = None) -> FileOutcome:
    limits = limits or Limits.from_settings()
    if not is_plain(entry.name):
        raise Unfit(f"the file name has characters that cannot be shown as they are (control or other "
                    f"non-printable characters, or bytes that are not UTF-8) or is longer than "
                    f"{NAME_LIMIT_BYTES} bytes; rename the file and drop it again")
    data = read_regular(entry, limits.max_file_bytes)
    path, name = entry.path, entry.name
    stored = archive.put_bytes(ae.DATASET, data, path.suffix.lower() or ".csv")
    # The same bytes are loaded once, unless rows of them were set aside: then dropping the file
    # again retries them (after the seed gained the site, say) and replaces the earlier load.
    already = conn.execute(
        """select load_id from audit.landed_files where dataset = %s and sha256 = %s
             and outcome = any(%s) and rows_quarantined = 0
           order by landed_id limit 1""",
        (ae.DATASET, stored.sha256, list(SUCCESSFUL_LOADS)),
    ).fetchone()
    if already:
        target = _target(name, landing / LOADED, stored.sha256)
        o = FileOutcome(name, "duplicate", stored.sha256, str(target),
                        reason=f"the same bytes were already loaded (load {already[0]}); nothing loaded again")
        _record(conn, o, stored.size, run_id, duplicate_of=already[0])
        _move(path, target)
        log.info("%s: duplicate of load %s", name, already[0])
        return o
    target = _target(name, landing / LOADED, stored.sha256)
    try:
        if path.suffix.lower() != ".csv":
            raise ae.Rejected(f"{name}: not a .csv file; the contract is one CSV (UTF-8) file per extract")
        parsed = ae.parse(data, name, reference)
        with conn.transaction():  # the load and its landing record commit together
            loaded = ae.load_extract(conn, file_name=name, sha256=stored.sha256,
                                       archive_path=str(stored.path), parsed=parsed, run_id=run_id)
            x = loaded.extract
            o = FileOutcome(name, loaded.outcome, stored.sha256, str(target), x.site_code,
                            f"{x.period_start:%Y-%m-%d}..{x.period_end:%Y-%m-%d}", loaded.rows_loaded,
                            loaded.rows_quarantined, load_id=loaded.load_id)
            if loaded.outcome == "replaced":
                o.reason = f"replaces load {loaded.previous_load_id} (the same site and reporting period)"
            _record(conn, o, stored.size, run_id, period=(x.period_start, x.period_end))
    except ae.Rejected as exc:
        return _reject(conn, entry, landing, stored, str(exc), run_id)
    try:
        _move(path, target)
    except OSError as exc:  # committed: the next run finds the bytes loaded and moves the file
        log.error("%s: %s, but it could not be moved to %s/ (%s); the next run moves it",
                  name, o.outcome, LOADED, _kind(exc))
    # no row counts in the task log (Airflow users read it): see LandingSummary.to_dict
    log.info("%s: %s (site %s, %s)%s", name, o.outcome, o.site_code, o.period,
             "; some rows set aside (restricted.ae_quarantine)" if o.rows_quarantined else "")
    return o


def _reject(conn: psycopg.Connection, entry: Entry, landing: Path, stored: Archived | None, reason: str,
            run_id: str | None) -> FileOutcome:
    """Refuse the entry whole: record it, move it to rejected/ with a reason file beside it.

    `stored` None: the entry was not read (a link, a FIFO, too large, an unshowable name, a
    failure): no checksum is recorded ('' in audit.landed_files.sha256) and it is not archived.
    """
    shown = safe_name(entry.name)
    sha256 = stored.sha256 if stored else ""
    target = _target(entry.name, landing / REJECTED, stored.sha256 if stored else None)
    with conn.transaction():
        load_id = conn.execute(
            """insert into audit.loads (dataset, origin, sha256, archive_path, status, error, run_id, finished_at)
               values (%s, %s, %s, %s, 'refused', %s, %s, now()) returning load_id""",
            (ae.DATASET, ae.ORIGIN, stored.sha256 if stored else None,
             str(stored.path) if stored else None, reason, run_id),
        ).fetchone()[0]  # type: ignore[index]
        o = FileOutcome(shown, "rejected", sha256, str(target), reason=reason, load_id=load_id)
        _record(conn, o, stored.size if stored else entry.size, run_id)
    _move(entry.path, target)
    _write_note(target.with_name(target.name + ".reason.txt"), shown,
                f"File: {shown}\nReceived: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}\n"
                f"sha256: {sha256 or 'not read'}\n"
                f"Rejected: nothing in this file was loaded.\nReason: {reason}\n\n"
                "Correct the extract (the file contract is in docs/ae-file-contract.md) "
                "and drop the corrected file into the landing folder again.\n")
    log.warning("%s rejected: %s", shown, reason)
    return o


def _write_note(path: Path, shown: str, text: str) -> None:
    """Write the reason file; never through a link someone left under that name. The refusal is
    already committed and the file moved: a note that cannot be written is logged, not raised."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        log.error("%s: its reason file could not be written (%s); the reason is in audit.landed_files",
                  shown, _kind(exc))


def ingest_landed(run_id: str | None, context: Any = None, cfg: Any = None) -> dict[str, Any]:
    """The `take_in` task: take in every waiting extract; alert once per rejected file."""
    from vru import incidents, warehouse
    from vru.config import settings

    cfg = cfg or settings()
    url = warehouse.warehouse_url(cfg)
    landing = cfg.ae_landing_dir
    landing.mkdir(parents=True, exist_ok=True)
    for folder in (landing / LOADED, landing / REJECTED):
        if not os.path.lexists(folder):
            folder.mkdir()
    reference = ae.Reference.from_seeds(cfg.dbt_project_dir)
    with psycopg.connect(url, autocommit=True) as conn:
        summary = process_landing(conn, landing, Archive(cfg.archive_dir), reference, run_id,
                                  Limits.from_settings(cfg))
        for f in summary.files:
            if f.outcome in SUCCESSFUL_LOADS:
                incidents.resolve(conn, rejected_key(f.file_name))  # the corrected file arrived
    origin = incidents.origin_of(context) if context else incidents.Origin(run_id=run_id)
    for f in summary.files:
        if f.outcome == "rejected":
            incidents.report_incident(incidents.Incident(
                key=rejected_key(f.file_name), kind=incidents.FILE_REJECTED, dataset=ae.DATASET, stage="loading",
                summary=f"A&E extract {f.file_name} was rejected: nothing in it was loaded",
                detail=f.reason), origin, cfg=cfg, context=context)
    for shown in summary.stuck:
        incidents.report_incident(incidents.Incident(
            key=rejected_key(shown), kind=incidents.FILE_REJECTED, dataset=ae.DATASET, stage="loading",
            summary=f"A&E file {shown} could not be taken in nor set aside; it stays in the landing folder",
            detail="The task log names the error; check the landing folder's rejected/ folder can be written."),
            origin, cfg=cfg, context=context)
    result = summary.to_dict()
    log.info("A&E landing: %s loaded, %s replaced, %s duplicates, %s rejected, %s not settled yet, %s stuck",
             result["loaded"], result["replaced"], result["duplicates"], result["rejected"], result["waiting"],
             result["stuck"])
    return result


def rejected_key(file_name: str) -> str:
    return f"rejected:{ae.DATASET}:{file_name}"
