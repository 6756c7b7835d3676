"""Event-driven scheduling: a trigger that fires when a file lands in a folder, without touching it.

Airflow 3 starts a DAG on an external event through an asset watcher: ``Asset(...,
watchers=[AssetWatcher(name, trigger)])``, with a trigger subclassing ``BaseEventTrigger`` that
the triggerer runs. The standard provider's file triggers (``FileDeleteTrigger``,
``DirectoryFileDeleteTrigger``) delete the file to avoid firing for it again, which is exactly
what the A&E landing area must not do: a file stays until its content is committed and archived.

:class:`LandingFileTrigger` instead remembers what it announced: a file (name, size, mtime) fires
once, after it has stopped changing for one poll (a copy still in progress does not fire). The
memory is kept in the watched asset's state store (Airflow 3.3: ``asset_state_store``, persisted
in the metadata database), so a restarted triggerer does not announce the same files again. A file
moved away (taken in) is forgotten, so a file of the same name dropped later fires again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

log = logging.getLogger(__name__)

STATE_KEY = "announced"


def scan(directory: str) -> dict[str, str]:
    """{file name: "size:mtime_ns"} of the files waiting in `directory` (not sub-folders, not .part)."""
    found: dict[str, str] = {}
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(".") or name.endswith((".part", ".tmp")) or not entry.is_file():
                    continue
                stat = entry.stat()
                found[name] = f"{stat.st_size}:{stat.st_mtime_ns}"
    except FileNotFoundError:
        pass  # the landing folder is made by the first run; nothing has landed yet
    return found


class LandingFileTrigger(BaseEventTrigger):
    """Fire once for each new file in `directory`, leaving the file where it is."""

    def __init__(self, *, directory: str, poke_interval: float = 5.0) -> None:
        super().__init__()
        self.directory = directory
        self.poke_interval = poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("vru.triggers.LandingFileTrigger",
                {"directory": self.directory, "poke_interval": self.poke_interval})

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
            current = await asyncio.to_thread(scan, self.directory)
            settled = {n: f for n, f in current.items() if previous.get(n) == f}
            new = {n: f for n, f in settled.items() if announced.get(n) != f}
            kept = {n: f for n, f in announced.items() if n in current}  # taken-in files are forgotten
            if new or kept != announced:
                announced = {**kept, **new}
                await self._save(announced)
            if new:
                log.info("landing watcher: %d new file(s) in %s", len(new), self.directory)
                yield TriggerEvent({"directory": self.directory, "files": sorted(new)})
            previous = current
            await asyncio.sleep(self.poke_interval)
