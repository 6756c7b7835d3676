"""Incidents and alerts: tell people once when something needs them, and keep the record in `audit`.

Three parts, in this order below: the record (`audit.incidents`), delivery (e-mail, webhook, chat), and
the task callbacks every DAG sets through `task_defaults`. Freshness, which opens `feed_stale`
incidents through `report_stale`, is `vru.freshness`.

An incident is one problem, from the first time it is seen until it is resolved:
* a task that failed for good (after its last retry): a failed critical validation
  (`validation_failed`), a step of a feed's ingest DAG (`feed_failed`), or any other step
  (`task_failed`). Key `task:<dag_id>.<task_id>` (a mapped task adds `[<map index>]`). The next
  success of that task resolves it.
  A feed's new edition refused for its content (`edition_refused`: a missing column, an unknown
  force, a table past a reader's limit or that cannot be parsed) fails its task with
  :class:`EditionRefused`, under the same key.
* a feed whose latest period is older than its publisher's usual delay allows (`feed_stale`).
  Key `stale:<dataset>`. The check that finds it fresh again resolves it.

The same problem seen again while its incident is open (the next night's run fails the same way)
adds to `occurrences` and alerts nobody: `audit.incidents` has at most one open row per key (a
partial unique index), and the insert that hits it becomes an update, in one statement, so two
callbacks at once still make one incident and one alert. Only the statement that created the row
sends the alert, through every configured channel: email with the SMTP provider's SmtpNotifier
(Airflow's notifier mechanism; the server is the Airflow connection VRU_ALERT_SMTP_CONN_ID, from
the environment) and a JSON POST to VRU_ALERT_WEBHOOK_URL. What was sent, or why not, is
recorded on the incident; a delivery error never fails the task it reports on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from airflow.sdk import BaseNotifier
from airflow.sdk.exceptions import AirflowFailException

from vru import registry, warehouse
from vru.config import Settings, settings
from vru.names import safe_text

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

log = logging.getLogger(__name__)

VALIDATION_FAILED = "validation_failed"
FEED_FAILED = "feed_failed"
FEED_STALE = "feed_stale"
TASK_FAILED = "task_failed"
FILE_REJECTED = "file_rejected"
EDITION_REFUSED = "edition_refused"

# What monitoring staff call each dataset (the names they see in the data quality report).
DATASET_LABELS = registry.dataset_labels()
DAG_LABELS = {registry.TRANSFORM_DAG: "Transform and validation",
              registry.SETTLE_DAG: "Waiting for the feeds to finish loading"}

_DETAIL_LIMIT = 4000  # characters of error text kept: the log has the rest

_ADVICE = {
    VALIDATION_FAILED: "Do not use figures from this batch until this is resolved. The data quality report "
                       "names each failed check and what it means.",
    FEED_FAILED: "The step failed for good in this run (Airflow retries what a retry can fix, such as a "
                 "server error, before it reports). The next nightly run tries again; if this keeps "
                 "happening, check the source and the task log in Airflow.",
    FEED_STALE: "Either the publisher has not released newer figures, or the nightly load is not picking "
                "them up. Check the publisher's site and the feed's recent runs in Airflow.",
    TASK_FAILED: "Look at the task log in Airflow; the next run tries again.",
    EDITION_REFUSED: "Nothing of the new edition was loaded; the figures already held are unchanged and still "
                     "shown. The reason says what was wrong without quoting the file. If the publisher's table "
                     "is genuine, a data engineer can add a renamed column to the feed's column map, or raise the "
                     "reader limit the reason names (VRU_MAX_*); the next nightly run tries again.",
    FILE_REJECTED: "Nothing in the file was loaded, so that department's figures for the period are missing. "
                   "Send the reason (also in the .reason.txt beside the file in the landing folder's "
                   "rejected/ folder) to the department; the alert closes when a corrected file of the same "
                   "name is loaded.",
}


class EditionRefused(AirflowFailException):
    """A feed's new edition was refused for its content: the task fails at once (a retry would
    refuse the same bytes again) and its incident says so, with the refusal's plain reason."""

    def __init__(self, dataset: str, reason: str) -> None:
        super().__init__(f"{DATASET_LABELS.get(dataset, dataset)}: new edition refused: {reason}")
        self.dataset = dataset
        self.reason = reason

    def __reduce__(self) -> tuple[type[EditionRefused], tuple[str, str]]:
        return (EditionRefused, (self.dataset, self.reason))


@dataclass(frozen=True)
class Incident:
    key: str
    kind: str
    summary: str  # one plain-English line for monitoring staff
    detail: str | None = None  # the error text, never row-level data
    dataset: str | None = None
    stage: str | None = None


@dataclass(frozen=True)
class Origin:
    """Where an incident was seen (for the alert; the incident itself is keyed without it)."""

    dag_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class Outcome:
    incident_id: int | None  # None: the warehouse could not be reached, nothing recorded
    is_new: bool
    notified_via: str | None = None
    notify_error: str | None = None


# ------------------------------------------------------------------------------------------------
# The record: audit.incidents
# ------------------------------------------------------------------------------------------------

_OPEN_OR_TOUCH = """
insert into audit.incidents as i (incident_key, kind, summary, detail, dataset, stage)
values (%(key)s, %(kind)s, %(summary)s, %(detail)s, %(dataset)s, %(stage)s)
on conflict (incident_key) where resolved_at is null
do update set occurrences = i.occurrences + 1, last_seen_at = now(), summary = excluded.summary,
              detail = excluded.detail
returning incident_id, occurrences = 1 as is_new, opened_at
"""


def _open_or_touch(conn: psycopg.Connection, incident: Incident) -> tuple[int, bool, datetime]:
    row = conn.execute(_OPEN_OR_TOUCH, {
        "key": incident.key, "kind": incident.kind, "summary": incident.summary,
        "detail": incident.detail, "dataset": incident.dataset, "stage": incident.stage,
    }).fetchone()
    assert row is not None  # insert ... returning always returns the row
    return int(row[0]), bool(row[1]), row[2]


def open_or_touch(conn: psycopg.Connection, key: str, kind: str, summary: str, detail: str | None = None,
                  dataset: str | None = None, stage: str | None = None) -> tuple[int, bool]:
    """Open the incident `key`, or count one more occurrence of the open one: (incident_id, is_new).

    One statement against the partial unique index (one open incident per key): of any number
    of concurrent calls for the same key, exactly one gets is_new (the others wait for its
    insert to commit, then update the row it made).
    """
    incident_id, is_new, _ = _open_or_touch(conn, Incident(key, kind, summary, detail, dataset, stage))
    return incident_id, is_new


def resolve(conn: psycopg.Connection, key: str) -> int | None:
    """Close the open incident `key`; its id, or None when none was open."""
    row = conn.execute(
        "update audit.incidents set resolved_at = now() where incident_key = %s and resolved_at is null "
        "returning incident_id",
        (key,),
    ).fetchone()
    if row:
        log.info("incident %s (%s) resolved", row[0], key)
    return int(row[0]) if row else None


def _record_delivery(conn: psycopg.Connection, incident_id: int, outcome: Outcome, delivered: bool) -> None:
    conn.execute(
        "update audit.incidents set notified_at = case when %s then now() end, notified_via = %s, "
        "notify_error = %s where incident_id = %s",
        (delivered, outcome.notified_via, outcome.notify_error, incident_id),
    )


def _connect(cfg: Settings) -> psycopg.Connection:
    # start=False: a callback reports on the warehouse it finds; it never starts an embedded one
    return psycopg.connect(warehouse.warehouse_url(cfg, start=False), autocommit=True, connect_timeout=10)


# ------------------------------------------------------------------------------------------------
# Delivery: email (SmtpNotifier), webhook (JSON) and chat (Apprise URLs)
# ------------------------------------------------------------------------------------------------


class AlertDeliveryError(RuntimeError):
    pass


def _subject(incident: Incident) -> str:
    # the summary's first clause: "<feed or DAG>: <what happened>"
    return "VRU alert: " + safe_text(incident.summary.split(";")[0].rstrip("."))  # no line breaks, no escapes


def _email_body(incident: Incident, incident_id: int | None, opened_at: datetime, origin: Origin,
                cfg: Settings) -> str:
    from vru.alert_email import html_body

    return html_body(incident, incident_id, opened_at, origin, cfg.reports_dir / "index.html",
                     _ADVICE.get(incident.kind, _ADVICE[TASK_FAILED]))


def _send_email(incident: Incident, incident_id: int | None, opened_at: datetime, origin: Origin,
                cfg: Settings, context: Mapping[str, Any]) -> None:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier
    from markupsafe import Markup

    # The notifier renders its fields with Jinja against the context. Our text (which quotes
    # error messages) goes in as context values, never as template source, so a "{{" in an
    # error cannot be evaluated; Markup keeps it as written under an autoescaping environment.
    notifier = SmtpNotifier(
        to=cfg.alert_email_to or "",
        smtp_conn_id=cfg.alert_smtp_conn_id,  # from_email: the connection's extra "from_email"
        subject="{{ vru_alert.subject }}",
        html_content="{{ vru_alert.body }}",
    )
    alert = {
        "subject": Markup(_subject(incident)),  # noqa: S704 - built by us from escaped parts
        "body": Markup(_email_body(incident, incident_id, opened_at, origin, cfg)),  # noqa: S704
    }
    notifier({**context, "vru_alert": alert})  # a copy: the notifier adds its fields to the context


def chat_message(incident: Incident, incident_id: int | None, opened_at: datetime, origin: Origin,
                 cfg: Settings) -> tuple[str, str]:
    """(title, body) for a chat channel: plain text, no error detail and no row-level data (a chat
    channel's readers are wider than the warehouse's); the detail stays in the incident record."""
    where = " / ".join(str(x) for x in (origin.dag_id, origin.task_id) if x)
    lines = [incident.summary, "", _ADVICE.get(incident.kind, _ADVICE[TASK_FAILED]), ""]
    lines += [f"{name}: {value}" for name, value in (
        ("Dataset", incident.dataset), ("Stage", incident.stage), ("Where", where), ("Run", origin.run_id),
        ("First seen", f"{opened_at:%Y-%m-%d %H:%M} UTC"),
        ("Incident", f"{incident_id} ({incident.key})" if incident_id else f"not recorded ({incident.key})"),
        ("Data quality report", cfg.reports_dir / "index.html")) if value]
    return _subject(incident), "\n".join(lines)


def _send_chat(incident: Incident, incident_id: int | None, opened_at: datetime, origin: Origin,
               cfg: Settings) -> None:
    """Every Apprise URL of the connection VRU_ALERT_APPRISE_CONN_ID (Slack, Teams, generic JSON...).

    The provider's AppriseHook reads the connection; the sending is Apprise's own `notify`, whose
    result we check: the provider's `AppriseNotifier.notify` drops it, so a channel that refused the
    message would be recorded as alerted. Apprise sends each message once (no retry).
    """
    import apprise
    from airflow.providers.apprise.hooks.apprise import AppriseHook

    # Apprise logs each URL, token included, at DEBUG and INFO, and so does urllib3 (requests) for
    # each request line: warnings only, as Airflow keeps httpx
    for name in ("apprise", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)

    hook = AppriseHook(apprise_conn_id=cfg.alert_apprise_conn_id or AppriseHook.default_conn_name)
    targets = apprise.Apprise()
    hook.set_config_from_conn(conn=hook.get_connection(hook.apprise_conn_id), apprise_obj=targets)
    if not len(targets):
        raise AlertDeliveryError(f"the connection {hook.apprise_conn_id} lists no Apprise URL it can use")
    title, body = chat_message(incident, incident_id, opened_at, origin, cfg)
    if not targets.notify(body=body, title=title, notify_type=apprise.NotifyType.FAILURE,
                          body_format=apprise.NotifyFormat.TEXT):
        raise AlertDeliveryError(f"Apprise could not deliver to every URL of {hook.apprise_conn_id}")


def _webhook_payload(incident: Incident, incident_id: int | None, opened_at: datetime, origin: Origin,
                     cfg: Settings) -> dict[str, Any]:
    # what a chat channel or pager may show: no error text, no row-level data
    return {
        "source": "vru-monitoring",
        "incident_id": incident_id,
        "incident_key": incident.key,
        "kind": incident.kind,
        "summary": incident.summary,
        "dataset": incident.dataset,
        "stage": incident.stage,
        "dag_id": origin.dag_id,
        "task_id": origin.task_id,
        "run_id": origin.run_id,
        "opened_at": opened_at.isoformat(),
        "report": str(cfg.reports_dir / "index.html"),
    }


def _post_webhook(payload: dict[str, Any], cfg: Settings) -> None:
    from vru.http import HttpClient, RetryPolicy

    # short: an alert that cannot get through in ~15 s is recorded as failed, not awaited
    with HttpClient(rate_per_second=5, retry=RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=2.0),
                    timeout=5.0) as http:
        response = http.post_json(cfg.alert_webhook_url or "", payload, label="POST alert webhook")
    if response.status_code >= 400:
        raise AlertDeliveryError(f"the alert webhook answered HTTP {response.status_code}")


def _safe_error(exc: BaseException, cfg: Settings) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if cfg.alert_webhook_url:  # its path may be a token: never into the record or the log
        text = text.replace(cfg.alert_webhook_url, "<VRU_ALERT_WEBHOOK_URL>")
    return text[:1000]


def deliver(incident: Incident, incident_id: int | None, opened_at: datetime, origin: Origin,
            cfg: Settings, context: Mapping[str, Any] | None = None) -> tuple[Outcome, bool]:
    """Send the alert through every configured channel; never raises. (outcome, delivered anywhere)."""
    configured = {"email": bool(cfg.alert_email_to), "webhook": bool(cfg.alert_webhook_url),
                  "chat": bool(cfg.alert_apprise_conn_id)}
    if not any(configured.values()):
        log.info("incident %s (%s): no alert channel configured (VRU_ALERT_EMAIL_TO, VRU_ALERT_WEBHOOK_URL, "
                 "VRU_ALERT_APPRISE_CONN_ID)", incident_id, incident.key)
        return Outcome(incident_id, True, "none configured", None), False
    sent: list[str] = []
    errors: list[str] = []
    if configured["email"]:
        try:
            _send_email(incident, incident_id, opened_at, origin, cfg, context or {})
            sent.append("email")
        except Exception as exc:
            errors.append(f"email: {_safe_error(exc, cfg)}")
    if configured["webhook"]:
        try:
            _post_webhook(_webhook_payload(incident, incident_id, opened_at, origin, cfg), cfg)
            sent.append("webhook")
        except Exception as exc:
            errors.append(f"webhook: {_safe_error(exc, cfg)}")
    if configured["chat"]:
        try:
            _send_chat(incident, incident_id, opened_at, origin, cfg)
            sent.append("chat")
        except Exception as exc:
            errors.append(f"chat: {_safe_error(exc, cfg)}")
    skipped = [name for name, on in configured.items() if not on]
    via = ",".join(sent) or None
    if via and skipped:
        via += f" ({', '.join(skipped)} not configured)"
    error = "; ".join(errors) or None
    if sent:
        log.info("incident %s (%s): alert sent by %s", incident_id, incident.key, via)
    if error:
        log.error("incident %s (%s): alert not delivered: %s", incident_id, incident.key, error)
    return Outcome(incident_id, True, via, error), bool(sent)


def open_and_alert(conn: psycopg.Connection | None, incident: Incident, origin: Origin, cfg: Settings,
                    context: Mapping[str, Any] | None) -> Outcome:
    """Record the incident; alert only if this call opened it. Never raises."""
    recorded: tuple[int, bool, datetime] | None = None
    if conn is not None:
        try:
            recorded = _open_or_touch(conn, incident)
        except Exception as exc:
            log.error("incident %s could not be recorded (%s): alerting without a record", incident.key, exc)
    if recorded and not recorded[1]:
        log.info("incident %s (%s) still open: seen again, no new alert", recorded[0], incident.key)
        return Outcome(recorded[0], False)
    # Not recorded (warehouse unreachable): alert anyway. Silence is the worse failure; without
    # the record a repeat of this failure alerts again.
    incident_id, opened_at = (recorded[0], recorded[2]) if recorded else (None, datetime.now(UTC))
    outcome, delivered = deliver(incident, incident_id, opened_at, origin, cfg, context)
    if conn is not None and incident_id is not None:
        try:
            _record_delivery(conn, incident_id, outcome, delivered)
        except Exception as exc:
            log.error("incident %s: delivery could not be recorded (%s)", incident_id, exc)
    return outcome


def report_incident(incident: Incident, origin: Origin, *, cfg: Settings | None = None,
                    context: Mapping[str, Any] | None = None) -> Outcome:
    """Open (and alert) or touch an incident in the warehouse. Never raises."""
    cfg = cfg or settings()
    try:
        conn: psycopg.Connection | None = _connect(cfg)
    except Exception as exc:
        log.error("warehouse unreachable for incident %s: %s", incident.key, exc)
        conn = None
    try:
        return open_and_alert(conn, incident, origin, cfg, context)
    finally:
        if conn is not None:
            conn.close()


# ------------------------------------------------------------------------------------------------
# Task callbacks
# ------------------------------------------------------------------------------------------------


def _ti(context: Mapping[str, Any]) -> Any:
    return context.get("ti") or context.get("task_instance")


def task_key(context: Mapping[str, Any]) -> str:
    """`task:<dag_id>.<task_id>`, plus `[<map index>]` for one instance of a mapped task (its
    rendered index when it has one, e.g. the month of an ingest batch: stable from night to night)."""
    ti = _ti(context)
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", None) or "unknown"
    task_id = getattr(ti, "task_id", None) or getattr(context.get("task"), "task_id", None) or "unknown"
    key = f"task:{dag_id}.{task_id}"
    map_index = getattr(ti, "map_index", -1)
    if isinstance(map_index, int) and map_index >= 0:
        key += f"[{getattr(ti, 'rendered_map_index', None) or map_index}]"
    return key


def origin_of(context: Mapping[str, Any]) -> Origin:
    ti = _ti(context)
    dag_run = context.get("dag_run")
    return Origin(
        dag_id=getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", None),
        task_id=getattr(ti, "task_id", None),
        run_id=context.get("run_id") or getattr(dag_run, "run_id", None) or getattr(ti, "run_id", None),
    )


def _error_text(error: object) -> str:
    if error is None:
        return "Airflow passed no exception (the task may have been killed or timed out); see the task log."
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    return text if len(text) <= _DETAIL_LIMIT else text[:_DETAIL_LIMIT] + " [...]"


def _labels(datasets: Iterable[str]) -> str:
    return " and ".join(DATASET_LABELS.get(d, d) for d in datasets)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def incident_from_context(context: Mapping[str, Any]) -> tuple[Incident, Origin]:
    """What failed, in words, from an on_failure_callback context."""
    from vru.gates import ValidationFailed

    origin = origin_of(context)
    key = task_key(context)
    error = context.get("exception")
    detail = _error_text(error)
    task_id = origin.task_id or "unknown"
    tries = getattr(_ti(context), "try_number", None)
    attempts = f" after {tries} attempts" if isinstance(tries, int) and tries > 1 else ""

    if isinstance(error, ValidationFailed) and error.failures:
        stages = _unique(stage for stage, _, _ in error.failures)
        datasets = _unique(dataset for _, dataset, _ in error.failures)
        consequence = ("nothing from this batch was published" if stages == ["raw"] else
                       "the rebuilt marts were not published: do not use their new figures")
        summary = (f"{_labels(datasets)}: critical data quality checks failed at the "
                   f"{' and '.join(stages)} stage; {consequence}.")
        return Incident(key, VALIDATION_FAILED, summary, detail, ", ".join(datasets), ", ".join(stages)), origin

    if isinstance(error, EditionRefused):
        summary = (f"{_labels([error.dataset])}: the new edition was refused, so nothing of it was loaded; "
                   "the figures already held are unchanged.")
        return Incident(key, EDITION_REFUSED, summary, detail, error.dataset, "ingest"), origin

    ingest = registry.by_dag_id(origin.dag_id)
    if ingest:
        feed = ingest.dataset
        if task_id == "check_failures":
            what = "some force-months could not be loaded after all retries; the next nightly run retries them"
        else:
            what = f"nightly ingest step '{task_id}' failed{attempts}; the next nightly run will try again"
        return Incident(key, FEED_FAILED, f"{_labels([feed])}: {what}.", detail, feed, "ingest"), origin

    label = DAG_LABELS.get(origin.dag_id or "", origin.dag_id or "Airflow")
    consequence = ("the data quality report was not rewritten" if task_id == "report" else
                   "figures from this batch were not published")
    summary = f"{label}: step '{task_id}' failed{attempts}; {consequence}."
    return Incident(key, TASK_FAILED, summary, detail, None, "transform" if origin.dag_id == registry.TRANSFORM_DAG
                    else None), origin


class VruIncidentNotifier(BaseNotifier):
    """on_failure_callback for every task: record the incident; alert only when it is new.

    Airflow runs on_failure_callback once per task instance, after its last try: the task SDK's
    `finalize()` (airflow/sdk/execution_time/task_runner.py, apache-airflow-task-sdk 1.3.2, with
    Airflow 3.3.2) runs `on_retry_callback` when the try ends UP_FOR_RETRY and
    `on_failure_callback` only when it ends FAILED; for a task killed from outside, the
    dag-processor's `_execute_task_callbacks` (airflow/dag_processing/processor.py) makes the same
    choice, with no "exception" in the context. So a task with retries=2 that fails three times
    reports one failure, and the incident key makes the same failure on the following nights one
    incident and one alert. The open incident's summary and detail follow the latest occurrence.
    """

    template_fields = ()

    def notify(self, context: Context) -> None:
        try:
            incident, origin = incident_from_context(context)
        except Exception:
            log.exception("could not describe the failure for an alert")
            return
        report_incident(incident, origin, context=context)


def resolve_task_incident(context: Context) -> None:
    """on_success_callback for every task: close the task's open incident, if it has one."""
    try:
        key = task_key(context)
        with _connect(settings()) as conn:
            resolve(conn, key)
    except Exception as exc:  # a success must stay a success
        log.warning("could not resolve incidents of this task: %s", exc)


def task_defaults(retries: int, retry_delay: timedelta | None = None) -> dict[str, Any]:
    """default_args of every DAG: the owner, retries, and the incident callbacks on every task.

    Airflow runs on_failure_callback only after a task's last try (on_retry_callback before it):
    one incident and one alert per failing task, see VruIncidentNotifier.
    """
    defaults: dict[str, Any] = {
        "owner": "data-engineering",
        "retries": retries,
        "on_failure_callback": VruIncidentNotifier(),
        "on_success_callback": resolve_task_incident,
    }
    if retry_delay is not None:
        defaults["retry_delay"] = retry_delay
    return defaults
