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
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from vru.archive import Archive, Archived
from vru.feeds import istv

log = logging.getLogger(__name__)

LOADED = "loaded"
REJECTED = "rejected"


def pending_files(landing: Path) -> list[Path]:
    """Files waiting in the landing folder, oldest first (hidden and .part files are still being written)."""
    if not landing.is_dir():
        return []
    files = [p for p in landing.iterdir()
             if p.is_file() and not p.name.startswith(".") and not p.name.endswith((".part", ".tmp"))]
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))


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

    def count(self, outcome: str) -> int:
        return sum(1 for f in self.files if f.outcome == outcome)

    @property
    def changed(self) -> list[FileOutcome]:
        return [f for f in self.files if f.outcome in ("loaded", "replaced")]

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
            "extracts_with_rows_set_aside": sum(1 for f in self.changed if f.rows_quarantined),
            "extracts": sorted(f"{f.site_code} {f.period}" for f in self.changed),
        }


def _target(path: Path, folder: Path, sha256: str) -> Path:
    """Where `path` goes in `folder`: its own name, unless a different file already has it."""
    target = folder / path.name
    if target.exists() and _sha256(target) != sha256:
        target = folder / f"{path.stem}.{sha256[:12]}{path.suffix}"
    return target


def _move(path: Path, target: Path) -> None:
    """Called only after the outcome is committed. The same bytes already there: drop this copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        path.unlink()  # identical bytes (checked by _target), archived and committed
    else:
        os.replace(path, target)


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
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
        (istv.DATASET, o.file_name, o.sha256, size, o.outcome, o.load_id, duplicate_of, o.site_code,
         period[0] if period else None, period[1] if period else None, o.rows_loaded,
         o.rows_quarantined, o.reason, o.moved_to, run_id),
    )


def process_landing(conn: psycopg.Connection, landing: Path, archive: Archive,
                    reference: istv.Reference, run_id: str | None) -> LandingSummary:
    """Take in every file waiting in `landing` (one at a time, oldest first)."""
    summary = LandingSummary()
    # one taker at a time (a file-triggered run and the nightly sweep, or the CLI)
    conn.execute("select pg_advisory_lock(hashtext('vru.ae_landing'))")
    try:
        for path in pending_files(landing):
            summary.files.append(take_in(conn, path, landing, archive, reference, run_id))
    finally:
        conn.execute("select pg_advisory_unlock(hashtext('vru.ae_landing'))")
    return summary


def take_in(conn: psycopg.Connection, path: Path, landing: Path, archive: Archive,
            reference: istv.Reference, run_id: str | None) -> FileOutcome:
    data = path.read_bytes()  # extracts are small (a department's month: ~100 KB)
    stored = archive.put_bytes(istv.DATASET, data, path.suffix.lower() or ".csv")
    name = path.name
    # The same bytes are loaded once, unless rows of them were set aside: then dropping the file
    # again retries them (after the seed gained the site, say) and replaces the earlier load.
    already = conn.execute(
        """select load_id from audit.landed_files where dataset = %s and sha256 = %s
             and outcome in ('loaded', 'replaced') and rows_quarantined = 0
           order by landed_id limit 1""",
        (istv.DATASET, stored.sha256),
    ).fetchone()
    if already:
        target = _target(path, landing / LOADED, stored.sha256)
        o = FileOutcome(name, "duplicate", stored.sha256, str(target),
                        reason=f"the same bytes were already loaded (load {already[0]}); nothing loaded again")
        _record(conn, o, stored.size, run_id, duplicate_of=already[0])
        _move(path, target)
        log.info("%s: duplicate of load %s", name, already[0])
        return o
    target = _target(path, landing / LOADED, stored.sha256)
    try:
        if path.suffix.lower() != ".csv":
            raise istv.Rejected(f"{name}: not a .csv file; the contract is one CSV (UTF-8) file per extract")
        parsed = istv.parse(data, name, reference)
        with conn.transaction():  # the load and its landing record commit together
            loaded = istv.load_extract(conn, file_name=name, sha256=stored.sha256,
                                       archive_path=str(stored.path), parsed=parsed, run_id=run_id)
            x = loaded.extract
            o = FileOutcome(name, loaded.outcome, stored.sha256, str(target), x.site_code,
                            f"{x.period_start:%Y-%m-%d}..{x.period_end:%Y-%m-%d}", loaded.rows_loaded,
                            loaded.rows_quarantined, load_id=loaded.load_id)
            if loaded.outcome == "replaced":
                o.reason = f"replaces load {loaded.previous_load_id} (the same site and reporting period)"
            _record(conn, o, stored.size, run_id, period=(x.period_start, x.period_end))
    except istv.Rejected as exc:
        return _reject(conn, path, landing, stored, str(exc), run_id)
    _move(path, target)
    # no row counts in the task log (Airflow users read it): see LandingSummary.to_dict
    log.info("%s: %s (site %s, %s)%s", name, o.outcome, o.site_code, o.period,
             "; some rows set aside (restricted.ae_quarantine)" if o.rows_quarantined else "")
    return o


def _reject(conn: psycopg.Connection, path: Path, landing: Path, stored: Archived, reason: str,
            run_id: str | None) -> FileOutcome:
    name = path.name
    target = _target(path, landing / REJECTED, stored.sha256)
    with conn.transaction():
        load_id = conn.execute(
            """insert into audit.loads (dataset, origin, sha256, archive_path, status, error, run_id, finished_at)
               values (%s, %s, %s, %s, 'refused', %s, %s, now()) returning load_id""",
            (istv.DATASET, istv.ORIGIN, stored.sha256, str(stored.path), reason, run_id),
        ).fetchone()[0]  # type: ignore[index]
        o = FileOutcome(name, "rejected", stored.sha256, str(target), reason=reason, load_id=load_id)
        _record(conn, o, stored.size, run_id)
    _move(path, target)
    note = target.with_name(target.name + ".reason.txt")
    note.write_text(
        f"File: {name}\nReceived: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}\nsha256: {stored.sha256}\n"
        f"Rejected: nothing in this file was loaded.\nReason: {reason}\n\n"
        "Correct the extract (the file contract is in the README, \"A&E extracts: the file contract\") "
        "and drop the corrected file into the landing folder again.\n",
        encoding="utf-8",
    )
    log.warning("%s rejected: %s", name, reason)
    return o


def ingest_landed(run_id: str | None, context: Any = None, cfg: Any = None) -> dict[str, Any]:
    """The `take_in` task: take in every waiting extract; alert once per rejected file."""
    from vru import alerts, warehouse
    from vru.config import settings

    cfg = cfg or settings()
    url = warehouse.warehouse_url(cfg)
    warehouse.apply_schema(url)  # the feed's first task
    landing = cfg.ae_landing_dir
    for folder in (landing, landing / LOADED, landing / REJECTED):
        folder.mkdir(parents=True, exist_ok=True)
    reference = istv.Reference.from_seeds(cfg.dbt_project_dir)
    with psycopg.connect(url, autocommit=True) as conn:
        summary = process_landing(conn, landing, Archive(cfg.archive_dir), reference, run_id)
        for f in summary.files:
            if f.outcome in ("loaded", "replaced"):
                alerts.resolve(conn, rejected_key(f.file_name))  # the corrected file arrived
    origin = alerts.origin_of(context) if context else alerts.Origin(run_id=run_id)
    for f in summary.files:
        if f.outcome == "rejected":
            alerts.report_incident(alerts.Incident(
                key=rejected_key(f.file_name), kind=alerts.FILE_REJECTED, dataset=istv.DATASET, stage="loading",
                summary=f"A&E extract {f.file_name} was rejected: nothing in it was loaded",
                detail=f.reason), origin, cfg=cfg, context=context)
    result = summary.to_dict()
    log.info("A&E landing: %s loaded, %s replaced, %s duplicates, %s rejected", result["loaded"],
             result["replaced"], result["duplicates"], result["rejected"])
    return result


def rejected_key(file_name: str) -> str:
    return f"rejected:{istv.DATASET}:{file_name}"
