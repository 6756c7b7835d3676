"""The API path against a real HTTP server on 127.0.0.1 with scripted faults."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import psycopg
import pytest
from conftest import SAMPLE
from vru.archive import Archive
from vru.feeds import police
from vru.http import HttpClient, RateLimiter, RetryPolicy
from vru.ingest import summarise
from vru.loader import Partition
from vru_sample.server import Fault, SampleApi, SampleServer

FORCES = ("city-of-london", "derbyshire", "durham", "leicestershire")
MONTHS = ("2020-01", "2020-02")


@pytest.fixture
def sample(tmp_path: Path) -> SampleApi:
    data = tmp_path / "sample"
    data.mkdir()
    for force in FORCES:
        for month in MONTHS:
            name = f"{month}-{force}-stop-and-search.csv"
            shutil.copy(SAMPLE / name, data / name)
    return SampleApi(data)


def _api(url: str, attempts: int = 3) -> police.PoliceApi:
    return police.PoliceApi(url, HttpClient(rate_per_second=10, retry=RetryPolicy(attempts, 0.05, 2.0)))


def _night(conn: psycopg.Connection, server: SampleServer, archive: Archive, run_id: str,
           attempts: int = 3) -> list[dict[str, object]]:
    """What one ingest DAG run does: plan, load each force-month, finish."""
    api = _api(server.url, attempts)
    plan = police.plan(conn, api, archive)
    results = [police.ingest_api_partition(conn, api, archive, p, run_id, plan.last_updated).to_dict()
               for p in plan.partitions]
    if not [r for r in results if r["status"] in ("failed", "refused")]:
        police.remember_last_updated(conn, plan.last_updated)
    return results


def _rows(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) - 1


def test_night_loads_every_listed_force_month_from_stops_force_only(
        conn: psycopg.Connection, sample: SampleApi, tmp_path: Path) -> None:
    with SampleServer(sample) as server:
        results = _night(conn, server, Archive(tmp_path / "a"), "night-1")
    assert sorted((r["force_id"], r["month"], r["status"]) for r in results) == sorted(
        (f, m, "loaded") for f in FORCES for m in MONTHS)
    expected = sum(_rows(p) for p in sample.files().values())
    assert conn.execute("select count(*) from raw.stop_searches join audit.loads using (load_id) "
                        "where origin = 'api'").fetchone() == (expected,)
    endpoints = {e for e, _ in sample.requests}
    assert "stops-no-location" not in endpoints, "stops-force already includes stops without a location"
    assert all(params.get("date") for e, params in sample.requests if e == "stops-force")
    listed = conn.execute("select count(*) from raw.police_availability").fetchone()
    assert listed == (len(FORCES) * len(MONTHS),)


def test_rerun_with_nothing_new_fetches_no_stops(conn: psycopg.Connection, sample: SampleApi,
                                                 tmp_path: Path) -> None:
    archive = Archive(tmp_path / "a")
    with SampleServer(sample) as server:
        _night(conn, server, archive, "night-1")
        sample.requests.clear()
        second = _night(conn, server, archive, "night-2")
    assert second == []
    assert [e for e, _ in sample.requests] == ["crimes-street-dates", "crime-last-updated"]


def test_429_with_retry_after_is_honoured_then_loads(conn: psycopg.Connection, sample: SampleApi,
                                                     tmp_path: Path) -> None:
    sample.add_fault("stops-force", "durham", "2020-01",
                     Fault(429, b'{"error": "slow down"}', {"Retry-After": "1"}))
    api = _api("unused")
    with SampleServer(sample) as server:
        api = _api(server.url)
        started = time.monotonic()
        result = police.ingest_api_partition(conn, api, Archive(tmp_path / "a"),
                                             Partition("durham", police.parse_month("2020-01")))
        elapsed = time.monotonic() - started
    assert result.status == "loaded"
    assert [p for e, p in sample.requests if e == "stops-force"] == [{"force": "durham", "date": "2020-01"}] * 2
    assert elapsed >= 1.0, "Retry-After: 1 was not honoured"


def test_one_force_failing_every_attempt_fails_alone_and_is_retried_next_night(
        conn: psycopg.Connection, sample: SampleApi, tmp_path: Path) -> None:
    archive = Archive(tmp_path / "a")
    sample.add_fault("stops-force", "derbyshire", "2020-02", Fault(503, b"overloaded", times=10))
    with SampleServer(sample) as server:
        first = _night(conn, server, archive, "night-1")
        failed = [r for r in first if r["status"] == "failed"]
        assert [(r["force_id"], r["month"]) for r in failed] == [("derbyshire", "2020-02")]
        assert "HTTP 503" in str(failed[0]["error"]) and "derbyshire" in str(failed[0]["error"])
        assert sum(1 for r in first if r["status"] == "loaded") == len(FORCES) * len(MONTHS) - 1
        attempts = [p for e, p in sample.requests if p == {"force": "derbyshire", "date": "2020-02"}]
        assert len(attempts) == 3  # bounded
        sample.faults.clear()
        second = _night(conn, server, archive, "night-2")
    assert [(r["force_id"], r["month"], r["status"]) for r in second] == [("derbyshire", "2020-02", "loaded")]


def test_truncated_response_is_refused_and_the_rest_load(conn: psycopg.Connection, sample: SampleApi,
                                                         tmp_path: Path) -> None:
    good = sample.stops("leicestershire", "2020-01") or b""
    sample.overrides[("leicestershire", "2020-01")] = good[: len(good) // 2]
    with SampleServer(sample) as server:
        results = _night(conn, server, Archive(tmp_path / "a"), "night-1")
    refused = [r for r in results if r["status"] == "refused"]
    assert [(r["force_id"], r["month"]) for r in refused] == [("leicestershire", "2020-01")]
    assert "not valid JSON" in str(refused[0]["error"])
    assert conn.execute("select count(*) from raw.stop_searches where force_id = 'leicestershire' "
                        "and month = '2020-01-01'").fetchone() == (0,)
    assert sum(1 for r in results if r["status"] == "loaded") == len(FORCES) * len(MONTHS) - 1


def test_changed_fields_are_refused_naming_them(conn: psycopg.Connection, sample: SampleApi,
                                                tmp_path: Path) -> None:
    stops = json.loads(sample.stops("durham", "2020-02") or b"")
    stops[5]["force"] = "durham"
    del stops[5]["legislation"]
    sample.overrides[("durham", "2020-02")] = json.dumps(stops).encode()
    with SampleServer(sample) as server:
        result = police.ingest_api_partition(conn, _api(server.url), Archive(tmp_path / "a"),
                                             Partition("durham", police.parse_month("2020-02")))
    assert result.status == "refused"
    error = str(result.error)
    assert "record 5" in error and "['legislation']" in error and "['force']" in error


def test_revision_reloads_only_the_changed_force_month(conn: psycopg.Connection, sample: SampleApi,
                                                       tmp_path: Path) -> None:
    archive = Archive(tmp_path / "a")
    with SampleServer(sample) as server:
        _night(conn, server, archive, "night-1")
        stops = json.loads(sample.stops("city-of-london", "2020-01") or b"")
        sample.overrides[("city-of-london", "2020-01")] = json.dumps(stops[:-3]).encode()
        sample.last_updated = "2020-04-30"
        second = _night(conn, server, archive, "night-2")
    by_status: dict[str, list[str]] = {}
    for r in second:
        by_status.setdefault(str(r["status"]), []).append(f"{r['force_id']}/{r['month']}")
    assert by_status["replaced"] == ["city-of-london/2020-01"]
    assert len(by_status["unchanged"]) == len(FORCES) * len(MONTHS) - 1
    revised = conn.execute("select previous_rows - rows_loaded from audit.loads where status = 'replaced'").fetchall()
    assert revised == [(3,)]
    summary = summarise(second)
    assert summary.event_extra()["replaced"] == ["city-of-london/2020-01"]


def test_rate_limiter_spaces_requests_at_most_ten_per_second(sample: SampleApi) -> None:
    with SampleServer(sample) as server:
        client = HttpClient(rate_per_second=10, retry=RetryPolicy(1))
        started = time.monotonic()
        for _ in range(21):
            client.get(f"{server.url}/forces")
        elapsed = time.monotonic() - started
    assert elapsed >= 2.0  # 21 requests, 20 gaps of 0.1 s
    limiter = RateLimiter(10)
    before = time.monotonic()
    for _ in range(5):
        limiter.wait()
    # 5 waits take at least 4 intervals. (Not each gap between stamps taken after the waits: a
    # stamp the OS delays under load makes the next gap look short although the limiter held.)
    assert time.monotonic() - before >= 0.4
