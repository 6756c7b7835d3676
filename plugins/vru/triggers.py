"""Event-driven scheduling: a trigger that fires when a file lands in a folder, without touching it.

Airflow 3 starts a DAG on an external event through an asset watcher: ``Asset(...,
watchers=[AssetWatcher(name, trigger)])``, with a trigger subclassing ``BaseEventTrigger`` that
the triggerer runs. The standard provider's file triggers (``FileDeleteTrigger``,
``DirectoryFileDeleteTrigger``) delete the file to avoid firing for it again, which is exactly
what the A&E landing area must not do: a file stays until its content is committed and archived.

:class:`LandingFileTrigger` instead remembers what it announced: a file (name, size, mtime) fires
once, after it has stopped changing for one poll and for the settle period (``settle_seconds``,
the same test the take-in applies: a copy still in progress does not fire). It looks with
``lstat`` and never opens a file; the names it remembers and announces are shown names
(:func:`vru.names.safe_name`: a name that is not UTF-8 could not be stored as JSON). The
memory is kept in the watched asset's state store (Airflow 3.3: ``asset_state_store``, persisted
in the metadata database), so a restarted triggerer does not announce the same files again. A file
moved away (taken in) is forgotten, so a file of the same name dropped later fires again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from vru.landing_entries import entries
from vru.names import safe_name

log = logging.getLogger(__name__)

STATE_KEY = "announced"


def scan(directory: str, settle_seconds: float = 0.0) -> tuple[dict[str, str], set[str]]:
    """What waits in `directory`, as the take-in sees it (:func:`vru.landing_entries.entries`: by
    ``lstat``, links and FIFOs included, never followed): ({shown name: "size:mtime_ns"}, the
    shown names unchanged for `settle_seconds`)."""
    now = time.time_ns()
    found: dict[str, str] = {}
    settled: set[str] = set()
    for entry in entries(Path(directory)):
        name = safe_name(entry.name)  # what is remembered and announced is JSON- and log-safe
        found[name] = entry.fingerprint
        if entry.settled(settle_seconds, now):
            settled.add(name)
    return found, settled


class LandingFileTrigger(BaseEventTrigger):
    """Fire once for each new file in `directory`, leaving the file where it is."""

    def __init__(self, *, directory: str, poke_interval: float = 5.0, settle_seconds: float = 0.0) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # BaseTrigger.__init__ is untyped
        self.directory = directory
        self.poke_interval = poke_interval
        self.settle_seconds = settle_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("vru.triggers.LandingFileTrigger",
                {"directory": self.directory, "poke_interval": self.poke_interval,
                 "settle_seconds": self.settle_seconds})

    async def _load(self) -> dict[str, str]:
        if self.asset_state_store is None:
            return {}
        try:
            value = await self.asset_state_store.aget(STATE_KEY, {})
        except Exception:
            log.warning("landing watcher: could not read its state; files still waiting may fire again",
                        exc_info=True)
            return {}
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}

    async def _save(self, announced: dict[str, str]) -> None:
        if self.asset_state_store is None:
            return
        try:
            await self.asset_state_store.aset(STATE_KEY, dict[str, Any](announced))
        except Exception:
            log.warning("landing watcher: could not save its state", exc_info=True)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        announced = await self._load()
        previous: dict[str, str] = {}
        while True:
            current, aged = await asyncio.to_thread(scan, self.directory, self.settle_seconds)
            settled = {n: f for n, f in current.items() if previous.get(n) == f and n in aged}
            new = {n: f for n, f in settled.items() if announced.get(n) != f}
            kept = {n: f for n, f in announced.items() if n in current}  # taken-in files are forgotten
            if new or kept != announced:
                announced = {**kept, **new}
                await self._save(announced)
            if new:
                log.info("landing watcher: %d new file(s) in %s", len(new), self.directory)
                yield TriggerEvent({"directory": self.directory, "files": sorted(new)})  # type: ignore[no-untyped-call]
            previous = current
            await asyncio.sleep(self.poke_interval)
