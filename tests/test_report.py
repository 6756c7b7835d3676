"""The data quality report: plain words from the audit tables, and nothing from a source unescaped."""

from __future__ import annotations

import psycopg
import pytest
from browser import render, serve
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
    assert "Do not use: 1 critical check(s) failed" in page and "Usable, with 1 warning(s)" in page
    assert "Every search names the law it was made under" in page
    assert "<td>essex</td><td>2020-01</td>" in page  # listed by the source, not loaded


def _seed_history(conn: psycopg.Connection) -> None:
    """Three nights: all green, a warning, then a critical failure at the raw stage; a failed load."""
    for night, (raw_ok, mart_warning) in enumerate([(True, False), (True, True), (False, False)], start=1):
        stamp = f"2026-11-{20 + night} 03:00+00"
        conn.execute(
            "insert into audit.loads (dataset, force_id, month, origin, status, rows_read, rows_loaded,"
            " rows_quarantined, run_id, finished_at) values ('police.stop_searches', 'essex', '2020-01-01',"
            " 'api', 'loaded', 10, 9, 1, %s, %s)", (f"night{night}", stamp))
        conn.execute(
            "insert into audit.validation_results (validation_id, run_id, stage, dataset, suite, expectation,"
            " column_name, severity, success, meaning, observed, validated_at) values (%s, %s, 'raw',"
            " 'police.stop_searches', 's', 'expect_column_values_to_be_in_set', 'legislation', 'critical', %s,"
            " 'Every search names a law it can be made under', %s, %s)",
            (f"raw{night}", f"night{night}", raw_ok,
             None if raw_ok else '{"unexpected_count": 3, "element_count": 1200}', stamp))
        if raw_ok:
            conn.execute(
                "insert into audit.validation_results (validation_id, run_id, stage, dataset, suite,"
                " expectation, severity, success, meaning, validated_at) values (%s, %s, 'marts',"
                " 'police.stop_search_monthly', 's', 'expect_x', 'warning', %s,"
                " 'Arrest rates are within the usual range', %s)",
                (f"mart{night}", f"night{night}", not mart_warning, stamp))
    conn.execute(
        "insert into audit.loads (dataset, force_id, month, origin, status, error, run_id, finished_at)"
        " values ('police.stop_searches', 'durham', '2020-01-01', 'api', 'failed',"
        " 'HTTP 503 after 5 attempts', 'night3', '2026-11-23 03:01+00')")
    for line, value in ((4, "north"), (9, "south")):
        conn.execute(
            "insert into raw.quarantine (load_id, dataset, force_id, month, origin, sha256, line_no, reason,"
            " record) values (1, 'police.stop_searches', 'essex', '2020-01-01', 'api', 'x', %s, %s, 'a,b')",
            (line, f"bad number: column 'Latitude' is '{value}'"))


def test_report_front_page_lights_words_and_trend(conn: psycopg.Connection, clean_warehouse: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRU_WAREHOUSE_URL", clean_warehouse)
    _seed_history(conn)
    page = write_report(cfg=settings()).read_text()
    assert 'class="summary red"' in page and "must not be used" in page
    # the failed rule, in words, with what was found; the failed force-month load named
    assert "Every search names a law it can be made under" in page and "3 of 1,200 rows" in page
    assert "Not all loaded: 1 could not be fetched" in page and "HTTP 503 after 5 attempts" in page
    # the two quarantined rows are one kind of problem, without their own values
    assert "<td>bad number: column &#x27;Latitude&#x27; is …</td><td>2</td>" in page
    # the marts stage was last checked on night 2: amber
    assert "Usable, with 1 warning(s)" in page


def test_report_renders_in_a_real_browser_without_errors(conn: psycopg.Connection, clean_warehouse: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRU_WAREHOUSE_URL", clean_warehouse)
    _seed_history(conn)
    target = write_report(cfg=settings())
    with serve(target.parent) as base:
        shown = render(f"{base}/index.html", {
            "lights": "[...document.querySelectorAll('#lights [data-light]')].map(e => e.dataset.light)",
            "trend": "[...document.querySelectorAll('#lights tbody tr')].map("
                     "r => [...r.querySelectorAll('.dot')].map(d => d.className.split(' ')[1]))",
            "verdict": "document.querySelector('#verdict').innerText",
            "visible": "document.querySelector('#failures').getBoundingClientRect().height > 0",
        })
    assert shown.console_errors == [] and shown.page_errors == [], (shown.console_errors, shown.page_errors)
    assert shown.title == "Data quality report: serious violence monitoring"
    assert shown.values["lights"] == ["red", "red", "amber"]  # ingest, raw, marts of stop and search
    assert shown.values["trend"] == [["amber", "amber", "red"], ["green", "green", "red"], ["green", "amber"]]
    assert "must not be used" in shown.values["verdict"] and shown.values["visible"] is True


def test_the_freshness_table_has_a_row_for_every_feed_that_loaded(conn: psycopg.Connection, clean_warehouse: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Each feed's row comes from its declared freshness rule (the HES row was once missing)."""
    import re

    from vru import registry
    from vru.archive import Archive
    from vru_sample.server import SAMPLE_EDITIONS

    monkeypatch.setenv("VRU_WAREHOUSE_URL", clean_warehouse)
    cfg = settings()
    for sample in SAMPLE_EDITIONS:  # the knife crime and HES tables, loaded as `vru load-<feed>` does
        feed = registry.feed(sample.feed)
        assert feed.load_file is not None
        loaded = feed.load_file(conn, Archive(cfg.archive_dir), sample.editions()[0], "report-test", cfg)
        assert loaded.status == "loaded"
    conn.execute("insert into audit.feed_state values ('police.stop_searches', 'last_updated', '2020-03-31')")
    page = write_report(cfg=cfg).read_text()
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>",
                      page.split("<h2>Freshness</h2>", 1)[1].split("</table>", 1)[0])
    by_feed = {feed: (held, published) for feed, held, published, _ in rows}
    hes, knife = registry.feed("hes").source_label, registry.feed("knife_crime").source_label
    loaded = {registry.feed(sample.feed).source_label for sample in SAMPLE_EDITIONS}
    assert set(by_feed) == {registry.feed("police").source_label} | loaded and {knife, hes} <= loaded
    assert re.fullmatch(r"\d{4}/\d{2}", by_feed[hes][0]) and by_feed[hes][0] == by_feed[hes][1]
    assert re.fullmatch(r"[A-Z][a-z]+-[A-Z][a-z]+ \d{4}", by_feed[knife][0])
    assert by_feed[registry.feed("police").source_label] == ("none", "unknown")
