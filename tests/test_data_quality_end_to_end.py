"""Data quality gates through a real Airflow scheduler: a bad batch is stopped, a warning is not.

Night 1: one force-month arrives with a search dated outside its month (a critical raw check):
the raw gate stops the transform, no mart is built or announced, the report shows red with the
check's meaning in words, and one alert reaches a webhook receiver started by this test.
Night 2: the force re-publishes it, corrected but with an unknown gender value (a warning): the
mart builds, is published and announced, the report shows amber, and the incident is resolved
without a second alert.
Night 3: the force re-publishes it again (one search fewer) and a mart check fails on the build
(the test tightens one check of the mart suite, in a copy of the suites, to make it fail): dbt
built the new figures in the build schema, but nothing is published, the marts BI tools read are
byte-identical to night 2's, and the report says yesterday's figures are still the ones shown.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from browser import render, serve
from conftest import REPO, SAMPLE, asset_event_extras, home_with_warehouse
from vru import warehouse
from vru.airflow_local import local_airflow, run_chain
from vru.config import settings
from vru.dbt import ensure_manifest
from vru.feeds.police import FEED as POLICE
from vru.progress import RunProgress
from vru_sample.server import SampleApi, SampleServer, csv_row_to_api

pytestmark = pytest.mark.e2e  # through a real Airflow scheduler: `pytest -m "not e2e"` skips it

FILES = ("2020-01-durham-stop-and-search.csv", "2020-01-essex-stop-and-search.csv")


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/alerts"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _durham(change: dict[str, str], drop_last: bool = False) -> bytes:
    """Durham 2020-01 as the API would serve it, with one search altered (and the last one dropped)."""
    with open(SAMPLE / FILES[0], encoding="utf-8", newline="") as handle:
        stops = [csv_row_to_api(r) for r in csv.DictReader(handle)]
    stops[5].update(change)
    return json.dumps(stops[:-1] if drop_last else stops).encode()


def _published(url: str) -> list[tuple[object, ...]]:
    """The published stop and search mart with each row's physical version: equal only when not one
    row was rewritten."""
    with psycopg.connect(url) as conn:
        return conn.execute("select ctid::text, xmin::text, t::text from marts.stop_search_monthly t "
                            "order by ctid").fetchall()


def _tighten_arrest_rate_check(suites: Path) -> None:
    """Make the mart suite's arrest rate check fail on real data (at most 0.01% of searches)."""
    path = suites / "marts.police.stop_search_monthly.json"
    suite = json.loads(path.read_text())
    for expectation in suite["expectations"]:
        if expectation["meta"]["check"] == "Arrest rate between 0% and 100%":
            expectation["kwargs"]["max_value"] = 0.0001
    path.write_text(json.dumps(suite))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with home_with_warehouse(tmp_path_factory, "vru_home_dq") as home:
        yield home


def _mart_events(home: Path) -> int:
    return len(asset_event_extras(home, "marts.stop_search_monthly"))


def test_bad_batch_is_stopped_a_warning_is_not_and_a_failed_mart_gate_publishes_nothing(home: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRU_HOME", str(home))
    cfg = settings()
    url = warehouse.embedded(cfg).url()
    warehouse.apply_schema(url)
    ensure_manifest(cfg)
    data = tmp_path / "sample"
    data.mkdir()
    for name in FILES:
        shutil.copy(SAMPLE / name, data / name)
    suites = tmp_path / "expectations"
    shutil.copytree(REPO / "expectations", suites)
    api = SampleApi(data, last_updated="2020-02-29")
    api.overrides[("durham", "2020-01")] = _durham({"datetime": "2019-06-14T10:00:00+00:00"})
    receiver = Receiver()
    report = home / "reports" / "index.html"
    try:
        with SampleServer(api) as source, local_airflow(cfg, url, {
                "VRU_POLICE_API_URL": source.url, "VRU_ALERT_WEBHOOK_URL": receiver.url,
                "VRU_EXPECTATIONS_DIR": str(suites)}) as airflow:
            # night 1: the bad batch; its progress drawn as on a terminal
            screen = io.StringIO()
            with RunProgress(stream=screen, live=True) as progress:
                night1 = run_chain(airflow, (POLICE.dag_id,), progress=progress)
            print(screen.getvalue())  # a real sample, for the record (pytest -rP)
            assert "\r" in screen.getvalue() and "DAG runs: 2/2 finished" in screen.getvalue()
            assert f"{POLICE.dag_id} {night1.ingest_run_ids[0]}: success in " in screen.getvalue()
            assert f"vru_transform {night1.transform_run_ids[0]}: failed in " in screen.getvalue()
            assert night1.emitted and len(night1.transform_runs) == 1
            tasks = night1.transform_tasks[night1.transform_run_ids[0]]
            assert night1.transform_runs[0].state == "failed"
            assert tasks["validate_raw"] == "failed"
            assert tasks["dbt"] == "upstream_failed"
            assert tasks["publish_marts"] == "upstream_failed" and tasks["report"] == "success"
            assert _mart_events(home) == 0
            with psycopg.connect(url) as conn:
                assert conn.execute("select to_regclass('marts.stop_search_monthly')").fetchone() == (None,)
            page = report.read_text()
            assert 'class="summary red"' in page
            assert "Every search took place within the month the force published it for" in page
            assert "1 record(s) break the rule" in page  # how many, never which ones
            # one alert for the failed gate (the sample's 2020 data also makes the feed stale)
            alerts = [p for p in receiver.posts if p["kind"] == "validation_failed"]
            assert [a["incident_key"] for a in alerts] == ["task:vru_transform.validate_raw"], receiver.posts
            assert alerts[0]["stage"] == "raw" and "Stop and search" in alerts[0]["summary"]
            assert {p["kind"] for p in receiver.posts} <= {"validation_failed", "feed_stale"}

            # night 2: re-published, corrected, with one value the checks only warn about
            api.overrides[("durham", "2020-01")] = _durham({"gender": "Not stated"})
            api.last_updated = "2020-03-31"
            lines: list[str] = []  # night 2's progress as a log shows it
            with RunProgress(write=lines.append) as progress:
                night2 = run_chain(airflow, (POLICE.dag_id,), progress=progress)
            print("\n".join(lines))  # a real sample, for the record (pytest -rP)
            police, transform = (f"{POLICE.dag_id} {night2.ingest_run_ids[0]}",
                                 f"vru_transform {night2.transform_run_ids[0]}")
            assert any(line.startswith(f"{police}: success in ") for line in lines), lines
            assert "waiting for the vru_transform run the asset event starts" in lines
            assert any(line.startswith(f"{transform}: success in ") and line.endswith("(DAG runs finished: 2 of 2)")
                       for line in lines), lines
            # the estimate comes from night 1's police ingest, the last successful run
            waiting = [line for line in lines if line.startswith(f"{police}: ") and " in " not in line]
            assert all("the last run took" in line or "longer than the last run" in line for line in waiting), lines
            assert not any("\r" in line or "\x1b" in line for line in lines)
            assert night2.emitted and [r.state.value for r in night2.transform_runs] == ["success"]
            tasks = night2.transform_tasks[night2.transform_run_ids[0]]
            assert tasks["publish_marts"] == "success"
            assert _mart_events(home) == 1
            with psycopg.connect(url) as conn:
                assert conn.execute(
                    "select searches from marts.stop_search_monthly where force_id = 'durham' "
                    "and month = '2020-01-01'").fetchone()[0] > 0  # type: ignore[index]
            page = report.read_text()
            assert 'class="summary amber"' in page and "Usable, with 1 warning(s)" in page
            assert "Every gender is one of the values data.police.uk is known to publish" in page
            # the gate passed: its incident is resolved, and nobody was told twice
            assert len([p for p in receiver.posts if p["kind"] == "validation_failed"]) == 1
            assert len([p for p in receiver.posts if p["kind"] == "feed_stale"]) <= 1
            with psycopg.connect(url) as conn:
                incident = conn.execute(
                    "select occurrences, resolved_at is not null from audit.incidents "
                    "where incident_key = 'task:vru_transform.validate_raw'").fetchall()
            assert incident == [(1, True)]
            # knife crime never loaded here: its empty tables are not checked, so they stop nothing
            with psycopg.connect(url) as conn:
                assert conn.execute("select count(*) from audit.validation_results "
                                    "where dataset like 'home_office.%'").fetchone() == (0,)
            night2_marts = _published(url)
            night2_page = page

            # night 3: re-published with one search fewer; the build fails a mart check
            _tighten_arrest_rate_check(suites)
            api.overrides[("durham", "2020-01")] = _durham({"gender": "Not stated"}, drop_last=True)
            api.last_updated = "2020-04-30"
            night3 = run_chain(airflow, (POLICE.dag_id,))
            assert night3.emitted and [r.state.value for r in night3.transform_runs] == ["failed"]
            tasks = night3.transform_tasks[night3.transform_run_ids[0]]
            assert tasks["validate_raw"] == "success" and tasks["dbt"] == "success"
            assert tasks["validate_marts"] == "failed" and tasks["publish_marts"] == "upstream_failed"
            assert tasks["report"] == "success"
            assert _mart_events(home) == 1  # not announced
            assert _published(url) == night2_marts  # yesterday's marts, byte for byte
            with psycopg.connect(url) as conn:
                build, published = conn.execute(
                    "select b.searches, p.searches from marts_build.stop_search_monthly b "
                    "join marts.stop_search_monthly p using (force_id, month) "
                    "where force_id = 'durham' and month = '2020-01-01'").fetchone()  # type: ignore[misc]
                assert build == published - 1  # the build has tonight's figure; BI tools do not
                assert conn.execute("select count(*) from audit.publications").fetchone() == (1,)
            page = report.read_text()
            assert page != night2_page and 'class="summary red"' in page
            assert "BI tools still show the figures published" in page
            assert "were left exactly as they were" in page
            assert [p["incident_key"] for p in receiver.posts if p["kind"] == "validation_failed"][-1] == \
                "task:vru_transform.validate_marts"
    finally:
        receiver.close()

    with serve(report.parent) as base:
        shown = render(f"{base}/index.html", {
            "lights": "[...document.querySelectorAll('#lights [data-light]')].map(e => e.dataset.light)"})
    assert shown.console_errors == [] and shown.page_errors == []
    assert "red" in shown.values["lights"]
