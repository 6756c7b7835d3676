"""Content-addressed store: every response or file is kept byte for byte before it is parsed.

Path: <VRU_HOME>/archive/<dataset>/<sha256[:2]>/<sha256><suffix>. The same bytes are stored once;
any load can be replayed from the sha256 recorded in audit.loads.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Archived:
    sha256: str
    path: Path
    size: int


class Archive:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, dataset: str, sha256: str, suffix: str) -> Path:
        return self.root / dataset / sha256[:2] / f"{sha256}{suffix}"

    def put_bytes(self, dataset: str, data: bytes, suffix: str) -> Archived:
        sha = hashlib.sha256(data).hexdigest()
        target = self.path_for(dataset, sha, suffix)
        if not target.exists():
            self._write_atomically(target, [data])
        return Archived(sha, target, len(data))

    def put_file(self, dataset: str, source: Path, suffix: str) -> Archived:
        """Keep a file: hash it, and copy it in only when those bytes are not kept yet.

        The copy is made by the kernel (`shutil.copyfile`: no pass through Python), then hashed
        itself before it is named, so a name is always the hash of the bytes kept, even if the
        source changed in between. Hashing then copying took half the time of the earlier
        read-hash-write loop for a 217 MB file (benchmarks/README.md), and a file already kept
        (a rerun) is only read.
        """
        sha, size = _file_sha256(source)
        target = self.path_for(dataset, sha, suffix)
        if target.exists():
            return Archived(sha, target, size)
        tmp_dir = self.root / dataset / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir)
        os.close(fd)
        try:
            shutil.copyfile(source, tmp_name)
            sha, size = _file_sha256(Path(tmp_name))
            target = self.path_for(dataset, sha, suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                os.unlink(tmp_name)
            else:
                os.replace(tmp_name, target)
            return Archived(sha, target, size)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise

    def _write_atomically(self, target: Path, blocks: list[bytes]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent)
        with os.fdopen(fd, "wb") as out:
            for block in blocks:
                out.write(block)
        os.replace(tmp_name, target)


def _file_sha256(path: Path) -> tuple[str, int]:
    """(sha256 hex, size in bytes) of a file, read in blocks."""
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256")
        return digest.hexdigest(), handle.tell()
