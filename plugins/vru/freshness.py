"""Freshness: is each feed's latest period as recent as its publisher's schedule says it should be?

Each feed declares its rule once (`Feed.freshness` in `vru.feeds.<name>`): the publisher's delay
from the end of a period to its publication, the time between two releases, and the SQL that
finds the last day of the latest period held. A feed past delay + cycle is stale: the release
after the one held is overdue. A stale feed opens the incident `stale:<dataset>` (and alerts
once, through `vru.incidents`); the check that finds it fresh again resolves it. Staleness is
reported, never raised: the `check_freshness` task of every ingest DAG succeeds either way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from vru import registry, warehouse
from vru.config import Settings, settings
from vru.feed import SUCCESSFUL_LOADS, Feed

log = logging.getLogger(__name__)


def period_name(feed: Feed, end: date) -> str:
    """The latest period held, as people say it ("March 2026", "2019/20", "January-March 2026")."""
    if feed.freshness.period == "month":
        return f"{end:%B %Y}"
    if feed.freshness.period == "financial year":  # ends 31 March: 2020-03-31 -> '2019/20'
        return f"{end.year - 1}/{end.year % 100:02d}"
    if feed.freshness.period == "rolling year":  # the 12 months ending with `end`
        return f"year ending {end:%B %Y}"
    start = date(end.year, end.month - 2, 1)  # quarters end in March, June, September, December
    return f"{start:%B}-{end:%B %Y}"


def latest_period_end(conn: psycopg.Connection, feed: Feed) -> date | None:
    """The last day of the latest period held (with a figure)."""
    return _period_end(conn, feed.freshness.latest_period_end_sql)


def published_period_end(conn: psycopg.Connection, feed: Feed) -> date | None:
    """The last day of the latest period the source lists, where the feed records it."""
    sql = feed.freshness.published_period_end_sql
    return _period_end(conn, sql) if sql else None


def _period_end(conn: psycopg.Connection, sql: str) -> date | None:
    row = conn.execute(sql, {"successful": list(SUCCESSFUL_LOADS)}).fetchone()
    end: date | None = row[0] if row else None
    return end


def check_freshness(conn: psycopg.Connection, now: datetime | None = None, datasets: Iterable[str] | None = None,
                    *, cfg: Settings | None = None, context: Mapping[str, Any] | None = None,
                    ) -> list[dict[str, Any]]:
    """Per feed: open (and alert once) or resolve `stale:<dataset>`. Staleness is reported, not raised."""
    # here, not at the top: the report reads periods from this module without Airflow's SDK
    from vru.incidents import FEED_STALE, Incident, open_and_alert, origin_of, resolve

    cfg = cfg or settings()
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    wanted = set(datasets) if datasets is not None else None
    origin = origin_of(context or {})
    results = []
    for feed in registry.FEEDS:
        if wanted is not None and feed.dataset not in wanted:
            continue
        rule = feed.freshness
        end = latest_period_end(conn, feed)
        age = (today - end).days if end else None
        stale = age is None or age > rule.max_age_days
        key = f"stale:{feed.dataset}"
        result: dict[str, Any] = {"dataset": feed.dataset, "latest_period_end": end.isoformat() if end else None,
                                  "age_days": age, "max_age_days": rule.max_age_days, "stale": stale}
        if stale:
            if end is None:
                summary = (f"{feed.label}: no {rule.period} has been loaded yet; figures are missing, "
                           f"not just late.")
            else:
                summary = (f"{feed.label}: the latest {rule.period} held ({period_name(feed, end)}) ended {age} "
                           f"days ago; {rule.publisher} normally has a newer {rule.period} out within "
                           f"{rule.max_age_days} days, so figures are overdue.")
            detail = (f"latest {rule.period} held ends {end or 'never'}; checked {today}; stale after "
                      f"{rule.max_age_days} days ({rule.publication_lag_days} days publication delay + "
                      f"{rule.cycle_days} days between releases)")
            incident = Incident(key, FEED_STALE, summary, detail, feed.dataset, "ingest")
            outcome = open_and_alert(conn, incident, origin, cfg, context)
            result.update(incident_id=outcome.incident_id, new_incident=outcome.is_new,
                          notified_via=outcome.notified_via, notify_error=outcome.notify_error)
            log.warning("%s", summary)
        else:
            result["resolved_incident_id"] = resolve(conn, key)
        results.append(result)
    return results


def run_freshness_check(datasets: Iterable[str], context: Mapping[str, Any] | None = None,
                        cfg: Settings | None = None) -> list[dict[str, Any]]:
    """The `check_freshness` task of an ingest DAG."""
    cfg = cfg or settings()
    with psycopg.connect(warehouse.warehouse_url(cfg), autocommit=True) as conn:
        return check_freshness(conn, datasets=datasets, cfg=cfg, context=context)
