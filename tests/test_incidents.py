"""Incidents and alerts against a real PostgreSQL, a real SMTP server and a real HTTP receiver.

The receivers run on 127.0.0.1 in this process: aiosmtpd for email (what Airflow's SmtpNotifier
sends, through the Airflow connection in AIRFLOW_CONN_SMTP_DEFAULT) and http.server for the
webhook. The notifier is called the way Airflow calls it: BaseNotifier.__call__ with a task
context, or through the task runner's own callback function for a task of a real DAG.
"""

from __future__ import annotations

import email
import email.policy
import html
import json
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
import structlog
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from airflow.sdk import DAG, task
from vru import incidents
from vru.freshness import check_freshness
from vru.gates import ValidationFailed
from vru.incidents import VruIncidentNotifier, open_or_touch, resolve, resolve_task_incident

# the test SMTP server takes AUTH without TLS (loopback only); aiosmtpd warns about that
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

SMTP_LOGIN = "vru-alerts"
SMTP_PASSWORD = "s3cret-smtp-pw"  # noqa: S105 - a test server's; must never reach a log or a record
WEBHOOK_TOKEN = "T0KEN-must-not-leak"  # noqa: S105
TO = "monitoring@example.org"
FROM = "vru-alerts@example.org"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ------------------------------------------------------------------------------------------------
# Receivers
# ------------------------------------------------------------------------------------------------


@dataclass
class Inbox:
    """aiosmtpd handler: keeps every message it accepts, from a client that logged in."""

    received: list[Any] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> AuthResult:
        ok = isinstance(auth, LoginPassword) and auth.login == SMTP_LOGIN.encode() and (
            auth.password == SMTP_PASSWORD.encode())
        if ok:
            self.logins.append(SMTP_LOGIN)
        return AuthResult(success=ok)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.received.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        return [email.message_from_bytes(e.content, policy=email.policy.default)  # type: ignore[misc]
                for e in self.received]


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    # loopback only, so AUTH without TLS: the connection's login and password must be used
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=inbox.authenticate,
                            auth_required=True, auth_require_tls=False)
    controller.start()
    yield inbox, port
    controller.stop()


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.posts.append((self.path, self.headers.get("Content-Type"), json.loads(body)))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[list[tuple[str, str, dict[str, Any]]], int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.posts = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.posts, server.server_address[1]  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def _smtp_uri(port: int) -> str:
    # plain SMTP on loopback: no SSL, no STARTTLS; the sender comes from the connection's extra
    return (f"smtp://{SMTP_LOGIN}:{SMTP_PASSWORD}@127.0.0.1:{port}?disable_ssl=true&disable_tls=true"
            f"&from_email={FROM.replace('@', '%40')}&timeout=5&retry_limit=0")


@pytest.fixture
def channels(monkeypatch: pytest.MonkeyPatch, clean_warehouse: str, smtp_server: tuple[Inbox, int],
             webhook: tuple[list[Any], int]) -> SimpleNamespace:
    """Both channels configured, through the environment only (as in docker-compose)."""
    inbox, smtp_port = smtp_server
    posts, http_port = webhook
    monkeypatch.setenv("VRU_WAREHOUSE_URL", clean_warehouse)
    monkeypatch.setenv("VRU_ALERT_EMAIL_TO", TO)
    monkeypatch.delenv("VRU_ALERT_SMTP_CONN_ID", raising=False)  # default smtp_default
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", _smtp_uri(smtp_port))
    monkeypatch.setenv("VRU_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{http_port}/hooks/{WEBHOOK_TOKEN}")
    return SimpleNamespace(inbox=inbox, posts=posts, url=clean_warehouse)


# ------------------------------------------------------------------------------------------------
# Airflow's side: a real DAG whose tasks carry the DAG files' callbacks, and their context
# ------------------------------------------------------------------------------------------------


def _dag(dag_id: str, task_id: str) -> DAG:
    with DAG(dag_id, schedule=None, default_args={
        "on_failure_callback": VruIncidentNotifier(), "on_success_callback": resolve_task_incident,
    }) as dag:
        @task(task_id=task_id)
        def work() -> None:
            pass

        work()
    return dag


def _context(dag_id: str, task_id: str, run_id: str, exception: BaseException | None = None,
             *, try_number: int = 1, max_tries: int = 0, map_index: int = -1,
             rendered_map_index: str | None = None) -> dict[str, Any]:
    """What the task runner passes a callback (RuntimeTaskInstance.get_template_context() plus
    "exception"), cut to what a notifier reads: the DAG, the DAG run, the task and its instance."""
    dag = _dag(dag_id, task_id)
    ti = SimpleNamespace(  # RuntimeTaskInstance's attributes of the same names
        id=uuid.uuid4(), dag_id=dag_id, task_id=task_id, run_id=run_id, try_number=try_number,
        max_tries=max_tries, map_index=map_index, rendered_map_index=rendered_map_index,
        state="failed" if exception else "success", hostname="worker-1",
    )
    context: dict[str, Any] = {
        "dag": dag, "task": dag.get_task(task_id), "run_id": run_id, "ti": ti, "task_instance": ti,
        "dag_run": SimpleNamespace(dag_id=dag_id, run_id=run_id, run_type="scheduled"),
    }
    if exception is not None:
        context["exception"] = exception
    return context


def _raw_validation_failure() -> ValidationFailed:
    return ValidationFailed([("raw", "police.stop_searches",
                              "no duplicate records [force_id, month, line_no]: 12 of 4100 rows fail in "
                              "raw.stop_searches")])


def _incidents(conn: psycopg.Connection) -> list[dict[str, Any]]:
    cur = conn.execute("select * from audit.incidents order by incident_id")
    names = [c.name for c in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


# ------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------


def test_the_same_failure_three_nights_running_is_one_incident_and_one_alert(
        channels: SimpleNamespace, conn: psycopg.Connection, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    notifier = VruIncidentNotifier()
    for night in ("2026-03-01", "2026-03-02", "2026-03-03"):
        run_id = f"asset_triggered__{night}T02:30:00+00:00"
        notifier(_context("vru_transform", "validate_raw", run_id, _raw_validation_failure()))

    [incident] = _incidents(conn)
    assert incident["incident_key"] == "task:vru_transform.validate_raw"
    assert incident["kind"] == "validation_failed"
    assert (incident["dataset"], incident["stage"]) == ("police.stop_searches", "raw")
    assert incident["summary"] == ("Stop and search: critical data quality checks failed at the raw stage; "
                                   "nothing from this batch was published.")
    assert incident["occurrences"] == 3 and incident["resolved_at"] is None
    assert incident["last_seen_at"] > incident["opened_at"]
    assert incident["notified_via"] == "email,webhook (chat not configured)" and incident["notify_error"] is None
    assert incident["notified_at"] is not None

    [message] = channels.inbox.messages()
    assert message["Subject"] == ("VRU alert: Stop and search: critical data quality checks failed at the "
                                  "raw stage")
    assert message["To"] == TO and message["From"] == FROM
    assert [e.rcpt_tos for e in channels.inbox.received] == [[TO]] and channels.inbox.logins == [SMTP_LOGIN]
    body = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert incident["summary"] in body
    assert "Do not use figures from this batch" in body
    assert "12 of 4100 rows fail" in body  # the error, for the engineers
    assert "asset_triggered__2026-03-01" in body  # the run that opened it
    assert "{{" not in body and SMTP_PASSWORD not in body

    [(path, content_type, payload)] = channels.posts
    assert path == f"/hooks/{WEBHOOK_TOKEN}" and content_type == "application/json"
    assert set(payload) == {"source", "incident_id", "incident_key", "kind", "summary", "dataset", "stage",
                            "dag_id", "task_id", "run_id", "opened_at", "report"}
    assert payload["incident_id"] == incident["incident_id"]
    assert payload["incident_key"] == "task:vru_transform.validate_raw"
    assert (payload["kind"], payload["dataset"], payload["stage"]) == ("validation_failed",
                                                                       "police.stop_searches", "raw")
    assert (payload["dag_id"], payload["task_id"]) == ("vru_transform", "validate_raw")
    assert payload["run_id"] == "asset_triggered__2026-03-01T02:30:00+00:00"
    assert datetime.fromisoformat(payload["opened_at"]) == incident["opened_at"]
    assert payload["report"].endswith("reports/index.html")
    assert "rows fail" not in json.dumps(payload)  # no error text (let alone rows) in the webhook
    assert "alert sent by email,webhook" in caplog.text
    # Airflow keeps httpx (which logs request URLs) at WARN; nothing else here may log the URL
    assert WEBHOOK_TOKEN not in caplog.text and SMTP_PASSWORD not in caplog.text


def test_a_success_resolves_it_and_the_next_failure_is_a_new_incident(
        channels: SimpleNamespace, conn: psycopg.Connection) -> None:
    """Through the task runner's own callback function, on a task of a DAG built like ours."""
    from airflow.sdk.execution_time.task_runner import _run_task_state_change_callbacks

    def run(kind: str, run_id: str, exception: BaseException | None = None) -> None:
        context = _context("vru_ingest_knife_crime", "check_and_load", run_id, exception,
                           try_number=3, max_tries=2)
        _run_task_state_change_callbacks(context["task"], kind, context, structlog.get_logger())  # type: ignore[arg-type]

    down = RuntimeError("knife crime table could not be fetched: GET https://www.gov.uk/... HTTP 503")
    run("on_failure_callback", "scheduled__2026-03-01", down)
    run("on_failure_callback", "scheduled__2026-03-02", down)
    run("on_success_callback", "scheduled__2026-03-03")
    first = _incidents(conn)
    assert len(first) == 1 and first[0]["resolved_at"] is not None and first[0]["occurrences"] == 2
    assert first[0]["kind"] == "feed_failed" and first[0]["dataset"] == "home_office.knife_offences"
    assert first[0]["summary"] == ("Knife crime: nightly ingest step 'check_and_load' failed after 3 attempts; "
                                   "the next nightly run will try again.")
    run("on_success_callback", "scheduled__2026-03-04")  # nothing open: nothing to do

    run("on_failure_callback", "scheduled__2026-03-05", down)
    second = _incidents(conn)
    assert len(second) == 2 and second[1]["incident_id"] != second[0]["incident_id"]
    assert second[1]["resolved_at"] is None and second[1]["occurrences"] == 1
    assert len(channels.inbox.received) == 2 and len(channels.posts) == 2
    subjects = [m["Subject"] for m in channels.inbox.messages()]
    assert subjects == ["VRU alert: Knife crime: nightly ingest step 'check_and_load' failed after 3 attempts"] * 2
    assert [p["incident_id"] for _, _, p in channels.posts] == [second[0]["incident_id"], second[1]["incident_id"]]


def test_a_delivery_failure_is_recorded_and_never_raised(
        channels: SimpleNamespace, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    closed = _free_port()  # nothing listens there
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", _smtp_uri(closed))
    monkeypatch.setenv("VRU_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{closed}/hooks/{WEBHOOK_TOKEN}")
    context = _context("vru_ingest_police", "check_failures", "scheduled__2026-03-01",
                       RuntimeError("force-months not loaded:\nessex 2026-01: failed: HTTP 503"))

    VruIncidentNotifier()(context)  # must not raise: Airflow would log it and carry on, but still

    [incident] = _incidents(conn)
    assert incident["notified_at"] is None and incident["notified_via"] is None
    assert incident["notify_error"].startswith("email: ")
    assert "; webhook: " in incident["notify_error"] and "3 attempts" in incident["notify_error"]
    assert incident["summary"] == ("Stop and search: some force-months could not be loaded after all "
                                   "retries; the next nightly run retries them.")
    for text in (incident["notify_error"], caplog.text):
        assert WEBHOOK_TOKEN not in text and SMTP_PASSWORD not in text
    assert "alert not delivered" in caplog.text


def test_error_text_is_shown_as_written_never_run_as_a_template(
        channels: SimpleNamespace, conn: psycopg.Connection) -> None:
    sneaky = "{{ 'inj' ~ 'ected' }} {% raw %}"
    VruIncidentNotifier()(_context("vru_transform", "report", "manual__1", ValueError(sneaky)))
    [message] = channels.inbox.messages()
    body = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert html.escape(f"ValueError: {sneaky}") in body and "injected" not in body
    assert message["Subject"] == "VRU alert: Transform and validation: step 'report' failed"


def test_no_channel_configured_is_recorded_as_such(
        monkeypatch: pytest.MonkeyPatch, clean_warehouse: str, conn: psycopg.Connection) -> None:
    monkeypatch.setenv("VRU_WAREHOUSE_URL", clean_warehouse)
    for name in ("VRU_ALERT_EMAIL_TO", "VRU_ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    VruIncidentNotifier()(_context("vru_transform", "validate_marts", "manual__1", ValidationFailed([
        ("marts", "police.stop_search_monthly", "one row per force per month: 2 of 516 rows fail"),
        ("staging", "home_office.knife_offences", "offence is known: 1 of 90 rows fail"),
    ])))
    [incident] = _incidents(conn)
    assert incident["notified_via"] == "none configured" and incident["notified_at"] is None
    assert incident["notify_error"] is None
    assert incident["dataset"] == "police.stop_search_monthly, home_office.knife_offences"
    assert incident["stage"] == "marts, staging"
    assert incident["summary"].startswith("Stop and search (monthly figures) and Knife crime: critical data "
                                          "quality checks failed at the marts and staging stage;")


@pytest.mark.parametrize(("dag_id", "task_id", "error", "extra", "key", "kind"), [
    ("vru_ingest_police", "ingest", RuntimeError("boom"), {"map_index": 3, "rendered_map_index": "2020-01"},
     "task:vru_ingest_police.ingest[2020-01]", "feed_failed"),
    ("vru_ingest_police", "ingest", RuntimeError("boom"), {"map_index": 3},
     "task:vru_ingest_police.ingest[3]", "feed_failed"),
    ("vru_transform", "dbt.stop_search_monthly.run", RuntimeError("dbt"), {},
     "task:vru_transform.dbt.stop_search_monthly.run", "task_failed"),
    ("vru_transform", "validate_raw", None, {}, "task:vru_transform.validate_raw", "task_failed"),
])
def test_the_key_and_kind_come_from_the_context(dag_id: str, task_id: str, error: BaseException | None,
                                                extra: dict[str, Any], key: str, kind: str) -> None:
    incident, origin = incidents.incident_from_context(_context(dag_id, task_id, "r", error, **extra))
    assert (incident.key, incident.kind) == (key, kind)
    assert (origin.dag_id, origin.task_id, origin.run_id) == (dag_id, task_id, "r")
    assert incident.detail  # never empty: "no exception" is said in words


def test_open_or_touch_is_one_incident_under_concurrent_callbacks(clean_warehouse: str,
                                                                 conn: psycopg.Connection) -> None:
    barrier = threading.Barrier(8)
    results: list[tuple[int, bool]] = []

    def report() -> None:
        with psycopg.connect(clean_warehouse, autocommit=True) as own:
            barrier.wait()
            results.append(open_or_touch(own, "task:d.t", "task_failed", "D: step 't' failed."))

    threads = [threading.Thread(target=report) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(is_new for _, is_new in results) == 1
    assert len({incident_id for incident_id, _ in results}) == 1
    [incident] = _incidents(conn)
    assert incident["occurrences"] == 8
    assert resolve(conn, "task:d.t") == incident["incident_id"] and resolve(conn, "task:d.t") is None


def _load_month(conn: psycopg.Connection, month: date) -> None:
    conn.execute("insert into audit.loads (dataset, force_id, month, origin, status) "
                 "values ('police.stop_searches', 'essex', %s, 'api', 'loaded')", (month,))


def test_a_stale_feed_alerts_once_and_a_fresh_one_resolves(channels: SimpleNamespace,
                                                           conn: psycopg.Connection) -> None:
    _load_month(conn, date(2021, 12, 1))  # the sample's era
    conn.execute("insert into audit.loads (dataset, force_id, month, origin, status, error) values "
                 "('police.stop_searches', 'essex', '2026-02-01', 'api', 'failed', 'HTTP 503')")  # not held
    police = ["police.stop_searches"]
    march = datetime(2026, 3, 15, 3, 0, tzinfo=UTC)
    [first] = check_freshness(conn, now=march, datasets=police)
    [again] = check_freshness(conn, now=march, datasets=police)
    assert first["stale"] and first["latest_period_end"] == "2021-12-31" and first["max_age_days"] == 92
    assert first["new_incident"] and not again["new_incident"]
    assert first["incident_id"] == again["incident_id"]
    [incident] = _incidents(conn)
    assert (incident["incident_key"], incident["kind"], incident["occurrences"]) == (
        "stale:police.stop_searches", "feed_stale", 2)
    assert incident["summary"] == (f"Stop and search: the latest month held (December 2021) ended "
                                   f"{first['age_days']} days ago; data.police.uk normally has a newer month "
                                   "out within 92 days, so figures are overdue.")
    [message] = channels.inbox.messages()
    assert message["Subject"] == (f"VRU alert: Stop and search: the latest month held (December 2021) ended "
                                  f"{first['age_days']} days ago")
    assert html.escape("Check the publisher's site") in message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    [(_, _, payload)] = channels.posts
    assert (payload["kind"], payload["incident_key"]) == ("feed_stale", "stale:police.stop_searches")

    _load_month(conn, date(2025, 10, 1))  # newer, still stale: the open incident says so, no new alert
    [still] = check_freshness(conn, now=march, datasets=police)
    assert still["stale"] and not still["new_incident"] and still["incident_id"] == incident["incident_id"]
    [incident] = _incidents(conn)
    assert incident["occurrences"] == 3 and "(October 2025) ended 135 days ago" in incident["summary"]
    assert len(channels.inbox.received) == 1

    _load_month(conn, date(2026, 1, 1))  # ended 2026-01-31: 43 days before the check
    [fresh] = check_freshness(conn, now=march, datasets=police)
    assert not fresh["stale"] and fresh["resolved_incident_id"] == incident["incident_id"]
    assert _incidents(conn)[0]["resolved_at"] is not None
    assert len(channels.inbox.received) == 1 and len(channels.posts) == 1  # resolving sends nothing


def test_knife_crime_is_stale_a_publication_cycle_after_its_quarter(
        monkeypatch: pytest.MonkeyPatch, clean_warehouse: str, conn: psycopg.Connection) -> None:
    monkeypatch.setenv("VRU_WAREHOUSE_URL", clean_warehouse)
    for name in ("VRU_ALERT_EMAIL_TO", "VRU_ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    knife = ["home_office.knife_offences"]
    [empty] = check_freshness(conn, now=datetime(2022, 7, 1, tzinfo=UTC), datasets=knife)
    assert empty["stale"] and empty["latest_period_end"] is None
    assert _incidents(conn)[0]["summary"].startswith("Knife crime: no quarter has been loaded yet")

    insert = ("insert into raw.knife_offences (load_id, sha256, line_no, financial_year, fy_start, "
              "financial_quarter, force_name, force_id, offence, offences) "
              "values (1, 'x', %s, '2021/22', 2021, %s, 'Essex', 'essex', 'Robbery', %s)")
    conn.execute(insert, (2, 3, 7))  # Q3 2021/22: October-December 2021
    conn.execute(insert, (3, 4, None))  # Q4 withheld: not a figure
    [held] = check_freshness(conn, now=datetime(2022, 7, 1, tzinfo=UTC), datasets=knife)
    assert held["latest_period_end"] == "2021-12-31" and not held["stale"]  # 182 days: next one not due
    assert _incidents(conn)[0]["resolved_at"] is not None
    [late] = check_freshness(conn, now=datetime(2022, 9, 1, tzinfo=UTC), datasets=knife)
    assert late["stale"] and late["age_days"] == 244 and late["max_age_days"] == 215
    assert _incidents(conn)[1]["summary"].startswith(
        "Knife crime: the latest quarter held (October-December 2021) ended 244 days ago;")
    conn.execute(insert, (4, 4, 5))  # Q4 2021/22 ends 31 March 2022
    assert check_freshness(conn, now=datetime(2022, 9, 1, tzinfo=UTC), datasets=knife)[0][
        "latest_period_end"] == "2022-03-31"


CHAT_TOKEN = "T0KEN-chat-7f3a"  # noqa: S105 - a made-up token the logs must not show


@pytest.fixture
def chat(monkeypatch: pytest.MonkeyPatch, clean_warehouse: str,
         webhook: tuple[list[Any], int]) -> SimpleNamespace:
    """Chat alerts only: an Apprise `json://` URL (any Apprise URL works the same: slack://,
    msteams://...) to a receiver on 127.0.0.1, in an Airflow connection from the environment."""
    posts, port = webhook
    monkeypatch.setenv("VRU_WAREHOUSE_URL", clean_warehouse)
    for variable in ("VRU_ALERT_EMAIL_TO", "VRU_ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("VRU_ALERT_APPRISE_CONN_ID", "vru_chat")
    config = [{"path": f"json://127.0.0.1:{port}/chat/{CHAT_TOKEN}", "tag": "alerts"}]
    monkeypatch.setenv("AIRFLOW_CONN_VRU_CHAT", json.dumps({"conn_type": "apprise", "extra": {"config": config}}))
    return SimpleNamespace(posts=posts)


def test_a_chat_channel_gets_one_plain_message_per_incident(chat: SimpleNamespace, conn: psycopg.Connection,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    notifier = VruIncidentNotifier()
    for night in ("2026-03-01", "2026-03-02"):
        notifier(_context("vru_transform", "validate_raw", f"scheduled__{night}", _raw_validation_failure()))
    [incident] = _incidents(conn)
    assert incident["notified_via"] == "chat (email, webhook not configured)" and incident["notify_error"] is None
    [(path, content_type, payload)] = chat.posts  # two nights, one incident, one message
    assert path == f"/chat/{CHAT_TOKEN}" and content_type.startswith("application/json")
    assert payload["title"] == "VRU alert: Stop and search: critical data quality checks failed at the raw stage"
    assert payload["type"] == "failure"
    assert incident["summary"] in payload["message"]
    assert f"Incident: {incident['incident_id']} (task:vru_transform.validate_raw)" in payload["message"]
    assert "rows fail" not in payload["message"]  # the error detail stays in the incident record
    assert CHAT_TOKEN not in caplog.text


def test_a_chat_channel_that_refuses_is_recorded_and_never_raised(
        chat: SimpleNamespace, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    closed = _free_port()  # nothing listens there: the message cannot be delivered
    config = [{"path": f"json://127.0.0.1:{closed}/chat/{CHAT_TOKEN}"}]
    monkeypatch.setenv("AIRFLOW_CONN_VRU_CHAT", json.dumps({"conn_type": "apprise", "extra": {"config": config}}))
    VruIncidentNotifier()(_context("vru_transform", "validate_raw", "scheduled__x", _raw_validation_failure()))
    [incident] = _incidents(conn)
    assert incident["notified_via"] is None and incident["notified_at"] is None
    assert incident["notify_error"].startswith("chat: AlertDeliveryError: Apprise could not deliver")
    assert CHAT_TOKEN not in incident["notify_error"] and chat.posts == []
    assert CHAT_TOKEN not in caplog.text and "could not deliver" in caplog.text
