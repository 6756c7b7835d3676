"""What waits in the landing folder, and reading it without trusting it.

Used by the take-in (:mod:`vru.landing`) and by the landing watcher (:mod:`vru.triggers`), so both
see the same entries and agree on when one has settled.

* **Never through a link.** Entries are listed with ``lstat`` (a symbolic link is seen as a link,
  not as what it points to) and a file is opened with ``O_NOFOLLOW | O_NONBLOCK``, then checked
  with ``fstat`` on the open descriptor: a link, a FIFO, a socket, a device or a folder swapped in
  between the listing and the open is refused, and a FIFO cannot block the reader.
* **Settled.** A file is taken only when nothing about it has changed for the settle period
  (``VRU_AE_SETTLE_SECONDS``): its status-change time (``st_ctime``, which every write, truncate,
  rename or ``utime`` moves, and which a writer cannot set back) is at least that old, and its size,
  modification time and status-change time are the same when it is opened, and again after it has
  been read. A file still being copied is left where it is for a later run.
* **Bounded.** A file larger than ``VRU_AE_MAX_FILE_BYTES`` is not read at all; at most that many
  bytes (and one more, to notice growth) are ever read.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

LOADED = "loaded"
REJECTED = "rejected"
_WORK_FOLDERS = (LOADED, REJECTED)


@dataclass(frozen=True)
class Entry:
    """One thing waiting in the landing folder, as ``lstat`` saw it (never through a link)."""

    path: Path
    mode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def is_regular(self) -> bool:
        return stat.S_ISREG(self.mode)

    @property
    def fingerprint(self) -> str:
        """What the watcher remembers of an announced file."""
        return f"{self.size}:{self.mtime_ns}"

    def settled(self, settle_seconds: float, now_ns: int | None = None) -> bool:
        """Unchanged for `settle_seconds` (by its status-change time, which covers writes and renames)."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        return now_ns - self.ctime_ns >= settle_seconds * 1e9


def kind_of(mode: int) -> str:
    """A plain word for what a non-regular entry is (for a reason a person reads)."""
    for test, word in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return word
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def _waiting(name: str) -> bool:
    """Names still being written (hidden, .part, .tmp) are never picked up."""
    return not (name.startswith(".") or name.endswith((".part", ".tmp")))


def entries(landing: Path) -> list[Entry]:
    """Everything dropped into `landing` to be taken in, oldest first, as ``lstat`` sees it.

    Not only regular files: a link, a FIFO or a folder dropped there is listed too, so the take-in
    can set it aside with a reason (the take-in's own ``loaded/`` and ``rejected/`` are not listed).
    """
    found: list[Entry] = []
    try:
        with os.scandir(landing) as listing:
            for item in listing:
                if not _waiting(item.name):
                    continue
                try:
                    st = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # taken away between the listing and the stat
                if stat.S_ISDIR(st.st_mode) and item.name in _WORK_FOLDERS:
                    continue
                found.append(Entry(Path(item.path), st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    except (FileNotFoundError, NotADirectoryError):
        return []  # the landing folder is made by the first run; nothing has landed yet
    return sorted(found, key=lambda e: (e.mtime_ns, e.name))


class Unfit(Exception):
    """The entry cannot be taken in as it is: it is set aside with this reason (no content in it)."""


class NotSettled(Exception):
    """The file changed while it was being looked at: leave it for a later run."""


def _same(entry: Entry, st: os.stat_result) -> bool:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns) == (entry.size, entry.mtime_ns, entry.ctime_ns)


def read_regular(entry: Entry, max_bytes: int) -> bytes:
    """The bytes of `entry`, read without following a link and only if it is still what was listed.

    Raises :class:`Unfit` (not a regular file, too large) or :class:`NotSettled` (it changed).
    """
    if not entry.is_regular:
        raise Unfit(f"{kind_of(entry.mode)}, not a regular file; links are never followed")
    if entry.size > max_bytes:
        raise Unfit(too_large(entry.size, max_bytes))
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(entry.path, flags)
    except FileNotFoundError:
        raise NotSettled("it was moved away while being looked at") from None
    except OSError as exc:  # ELOOP: a link swapped in after the listing; EACCES; ...
        if exc.errno == getattr(os, "ELOOP", None):
            raise Unfit("a symbolic link, not a regular file; links are never followed") from None
        raise
    with os.fdopen(fd, "rb", buffering=0) as handle:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise Unfit(f"{kind_of(before.st_mode)}, not a regular file")
        if not _same(entry, before):
            raise NotSettled("it changed after it was listed")
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0 and (block := handle.read(min(left, 1 << 20))):
            chunks.append(block)
            left -= len(block)
        data = b"".join(chunks)
        after = os.fstat(fd)
    if len(data) > max_bytes:
        raise NotSettled("it grew while it was being read")
    if not _same(entry, after) or len(data) != entry.size:
        raise NotSettled("it changed while it was being read")
    return data


def too_large(size: int, max_bytes: int) -> str:
    return (f"the file is {size:,} bytes, more than the limit of {max_bytes:,} bytes "
            "(VRU_AE_MAX_FILE_BYTES); one department's extract for one period is far smaller: "
            "check what was sent, or split it by period")
