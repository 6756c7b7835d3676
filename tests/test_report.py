"""The data quality report: plain words from the audit tables, and nothing from a source unescaped."""

from __future__ import annotations

import psycopg
import pytest
from vru.config import settings
from vru.report import write_report


def test_report_names_failures_in_words_and_escapes_source_text(
        conn: psycopg.Connection, clean_warehouse: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRU_WAREHOUSE_URL", clean_warehouse)
    conn.execute("""
        insert into audit.loads (dataset, force_id, month, origin, status, error, finished_at)
        values ('police.stop_searches', 'essex', '2020-01-01', 'api', 'failed',
                'GET stops-force: HTTP 503: <script>alert(1)</script>', now())""")
    conn.execute("""
        insert into raw.police_availability (force_id, month) values ('essex', '2020-01-01')""")
    conn.execute("""
        insert into audit.validation_results (validation_id, run_id, stage, dataset, suite, expectation,
            column_name, severity, success, meaning)
        values ('v1', 'r1', 'raw', 'police.stop_searches', 's', 'expect_x', 'legislation', 'critical', false,
                'Every search names the law it was made under'),
               ('v2', 'r1', 'marts', 'police.stop_search_monthly', 's', 'expect_y', null, 'warning', false,
                'Rates look usual')""")
    conn.execute("insert into audit.feed_state values ('police.stop_searches', 'last_updated', '2020-03-31')")
    page = write_report(cfg=settings()).read_text()
    assert "<td>2020-03-31</td>" in page  # the source's own last-updated date, for freshness
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "Do not use: critical checks failed" in page and "Usable, with warnings" in page
    assert "Every search names the law it was made under" in page
    assert "<td>essex</td><td>2020-01</td>" in page  # listed by the source, not loaded
