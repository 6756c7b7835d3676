"""The programme effect estimates in the nightly build: read the panel, estimate, write for dbt.

Runs after dbt has built the outcome marts in the build schema (`marts_build`), before the
effect marts are built: reads `marts_build.vru_outcomes_quarterly` (its published columns only,
the mart's contract), estimates every measure (`vru.effects`), and replaces the raw estimates in
the pipeline-only tables `staging.programme_effect_estimates` and
`staging.programme_event_study_estimates` in one transaction. BI roles cannot read `staging`;
the dbt models `vru_programme_effect` and `vru_programme_event_study` (enforced contracts) are
built from them in the build schema, validated, and published with the other marts, or not at all.

A measure whose panel is exactly what it was when it was last estimated, by the same estimator
code and settings, keeps its estimates (its rows' `input_fingerprint` says so) instead of being
estimated again (importing pyfixest alone took about 4 s): a revision inside quarters already
held, say, leaves the other feeds' measures as they were. A night that opens a quarter adds a
row to every panel, so every measure is estimated again.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import logging
import warnings
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

from vru import effects, warehouse
from vru.config import settings
from vru.publish import BUILD_SCHEMA

log = logging.getLogger(__name__)

EFFECT_TABLE = "staging.programme_effect_estimates"
EVENT_TABLE = "staging.programme_event_study_estimates"
PANEL_MART = "vru_outcomes_quarterly"


@dataclass(frozen=True)
class PanelMeasure:
    spec: effects.MeasureSpec
    count: str  # the outcome mart's column
    population: str
    excluded: str  # SQL over the mart's columns: why the area-quarter's figure cannot be used, or NULL
    edition: str  # which audit record dates the data: 'ae' | 'knife_crime' | 'stop_search'


_KNIFE_EXCLUDED = """case when knife_offences_coverage = 'no data' then 'missing'
    when knife_offences_coverage = 'partial' then 'partial coverage'
    when not knife_offences_is_comparable then 'series break' end"""
_STOP_SEARCH_EXCLUDED = """case when stop_search_coverage = 'no data' then 'missing'
    when stop_search_coverage = 'partial' then 'partial coverage' end"""

MEASURES: tuple[PanelMeasure, ...] = (
    PanelMeasure(effects.MeasureSpec("ae_knife", "A&E attendances for assault with a knife or sharp object",
                                     "outcome"),
                 "ae_knife_attendances", "population",
                 """case when ae_coverage in ('no A&E data for this area', 'no extract') then 'missing'
                     when ae_coverage = 'suppressed' then 'suppressed'
                     when ae_coverage = 'partial' then 'partial coverage' end""", "ae"),
    PanelMeasure(effects.MeasureSpec("ae_knife_under_25", "A&E attendances for assault with a knife or sharp "
                                     "object, patients under 25", "outcome"),
                 "ae_knife_under_25", "population_0_24",
                 """case when ae_under_25_rate_coverage = 'complete' then null
                     when ae_knife_under_25_suppressed or ae_coverage = 'suppressed' then 'suppressed'
                     when ae_coverage = 'partial' or (ae_coverage = 'complete' and ae_knife_under_25 is not null
                          and ae_under_25_rate_coverage = 'no complete count') then 'partial coverage'
                     when ae_under_25_rate_coverage = 'no under-25 population' then 'no population'
                     else 'missing' end""", "ae"),
    PanelMeasure(effects.MeasureSpec("knife_offences", "Police recorded knife or sharp instrument offences",
                                     "outcome"),
                 "knife_offences", "population", _KNIFE_EXCLUDED, "knife_crime"),
    PanelMeasure(effects.MeasureSpec("knife_homicides", "Homicides with a knife or sharp instrument", "outcome"),
                 "knife_homicides", "population",
                 f"coalesce({_KNIFE_EXCLUDED}, case when knife_homicides is null then 'missing' end)",
                 "knife_crime"),
    PanelMeasure(effects.MeasureSpec("searches", "Stop and search (context, not an outcome)", "context"),
                 "searches", "population", _STOP_SEARCH_EXCLUDED, "stop_search"),
    PanelMeasure(effects.MeasureSpec("weapon_searches", "Weapon searches (context, not an outcome)", "context"),
                 "weapon_searches", "population", _STOP_SEARCH_EXCLUDED, "stop_search"),
)

# What dates each measure's data: the latest edition or extract the warehouse holds.
_EDITIONS = {
    "ae": ("A&E extracts: the latest taken in",
           "select max(processed_at)::date from audit.landed_files "
           "where dataset = 'ae.attendances' and outcome in ('loaded', 'replaced')"),
    "knife_crime": ("Home Office knife crime table: the latest edition fetched",
                    "select max(fetched_at)::date from audit.editions where dataset = 'home_office.knife_offences'"),
    "stop_search": ("data.police.uk: the latest force-month loaded",
                    "select max(finished_at)::date from audit.loads "
                    "where dataset = 'police.stop_searches' and status in ('loaded', 'replaced')"),
}


def read_panel(conn: psycopg.Connection, measure: PanelMeasure, schema: str = BUILD_SCHEMA) -> pd.DataFrame:
    """The measure's area-quarter panel from the outcome mart (estimator columns, see vru.effects)."""
    query = sql.SQL("""
        select force_id as area, fy_start * 4 + financial_quarter - 1 as period,
               coalesce(min(case when is_vru_area then fy_start * 4 + financial_quarter - 1 end)
                        over (partition by force_id), 0) as first_treated,
               {count} as count, {population} as population, {excluded} as excluded
        from {mart} order by force_id, period""").format(
        count=sql.Identifier(measure.count), population=sql.Identifier(measure.population),
        excluded=sql.SQL(measure.excluded), mart=sql.Identifier(schema, PANEL_MART))
    rows = conn.execute(query).fetchall()
    return pd.DataFrame(rows, columns=["area", "period", "first_treated", "count", "population", "excluded"])


def quarter_start(period: int | None) -> date | None:
    """The first day of a panel period (fy_start * 4 + financial quarter - 1)."""
    if period is None:
        return None
    fy_start, q = divmod(period, 4)
    return date(fy_start + (1 if q == 3 else 0), (4 + 3 * q - 1) % 12 + 1, 1)


@functools.cache
def _estimator_digest() -> bytes:
    """The estimator the estimates come from: vru.effects' source and the pyfixest version."""
    return hashlib.sha256(Path(effects.__file__).read_bytes()
                          + importlib.metadata.version("pyfixest").encode()).digest()


def input_fingerprint(panel: pd.DataFrame, spec: effects.MeasureSpec, permutations: int) -> str:
    """What a measure's estimates follow from: its panel, its spec, the permutation count, and the
    estimator. Equal fingerprints, equal estimates."""
    digest = hashlib.sha256(_estimator_digest())
    for part in (repr(asdict(spec)).encode(), str(permutations).encode(),
                 panel.to_csv(index=False, lineterminator="\n").encode()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def _kept_estimates(conn: psycopg.Connection) -> dict[str, tuple[str, list[dict[str, Any]], list[dict[str, Any]]]]:
    """measure -> (fingerprint, effect rows, event-study rows) as the pipeline tables hold them now."""
    kept: dict[str, tuple[str, list[dict[str, Any]], list[dict[str, Any]]]] = {}
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        for row in cur.execute(sql.SQL("select * from {} order by measure, analysis_window, method").format(
                sql.Identifier(*EFFECT_TABLE.split(".")))):
            row.pop("run_id")
            fingerprint = row.pop("input_fingerprint")
            if fingerprint:
                kept.setdefault(row["measure"], (fingerprint, [], []))[1].append(row)
        for row in cur.execute(sql.SQL("select * from {} order by measure, method, relative_quarter").format(
                sql.Identifier(*EVENT_TABLE.split(".")))):
            row.pop("run_id")
            if row.pop("input_fingerprint") == kept.get(row["measure"], ("",))[0]:
                kept[row["measure"]][2].append(row)
    return kept


def estimate_all(conn: psycopg.Connection, schema: str = BUILD_SCHEMA,
                 permutations: int = effects.PERMUTATIONS) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every measure's effect rows and event-study rows, as the pipeline tables hold them.

    A measure whose input fingerprint equals that of its kept rows keeps them (with this run's
    edition date): nothing it is estimated from changed.
    """
    effect_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    editions = {key: (label, conn.execute(query).fetchone()) for key, (label, query) in _EDITIONS.items()}
    kept = _kept_estimates(conn)
    now = datetime.now(UTC)
    for m in MEASURES:
        panel = read_panel(conn, m, schema)
        fingerprint = input_fingerprint(panel, m.spec, permutations)
        label, edition = editions[m.edition]
        if m.spec.key in kept and kept[m.spec.key][0] == fingerprint:
            log.info("programme effect %s: its panel is unchanged since %s, estimates kept", m.spec.key,
                     kept[m.spec.key][1][0]["estimated_at"])
            for row in kept[m.spec.key][1]:
                effect_rows.append({**row, "edition_date": edition[0] if edition else None,
                                    "edition_source": label, "input_fingerprint": fingerprint})
            event_rows.extend({**row, "input_fingerprint": fingerprint} for row in kept[m.spec.key][2])
            continue
        with warnings.catch_warnings():  # pyfixest notes its own choices (e.g. chi2 for the Wald test)
            warnings.simplefilter("ignore", UserWarning)
            result = effects.estimate(panel, m.spec, permutations=permutations)
        for r in result.effects:
            row = {k: v for k, v in asdict(r).items() if k not in ("exclusions", "first_quarter", "last_quarter")}
            row.update({f"excluded_{reason.replace(' ', '_').replace('-', '_')}": n
                        for reason, n in r.exclusions.items()})
            row["first_quarter_start"] = quarter_start(r.first_quarter)
            row["last_quarter_start"] = quarter_start(r.last_quarter)
            row["edition_date"] = edition[0] if edition else None
            row["edition_source"] = label
            row["estimated_at"] = now
            row["input_fingerprint"] = fingerprint
            effect_rows.append(row)
        event_rows.extend({**asdict(r), "estimated_at": now, "input_fingerprint": fingerprint}
                          for r in result.event_study)
    return effect_rows, event_rows


def _insert(conn: psycopg.Connection, table: str, rows: list[dict[str, Any]], run_id: str | None) -> None:
    schema, name = table.split(".")
    conn.execute(sql.SQL("delete from {}").format(sql.Identifier(schema, name)))
    if not rows:
        return
    columns = list(rows[0].keys())
    statement = sql.SQL("insert into {} ({}, run_id) values ({}, %s)").format(
        sql.Identifier(schema, name), sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)))
    with conn.cursor() as cur:  # kept rows and new ones name the same columns, maybe in another order
        cur.executemany(statement, [[r[c] for c in columns] + [run_id] for r in rows])


def build_effects(run_id: str | None = None, url: str | None = None, schema: str = BUILD_SCHEMA,
                  permutations: int = effects.PERMUTATIONS) -> dict[str, str]:
    """Estimate from the build and replace the pipeline tables in one transaction; each measure's
    status by window, for the task's log and return value."""
    with psycopg.connect(url or warehouse.warehouse_url(settings())) as conn:
        effect_rows, event_rows = estimate_all(conn, schema, permutations)
        with conn.transaction():
            _insert(conn, EFFECT_TABLE, effect_rows, run_id)
            _insert(conn, EVENT_TABLE, event_rows, run_id)
    summary = {f"{r['measure']} ({r['analysis_window']})": r["status"] for r in effect_rows}
    for what, status in summary.items():
        log.info("programme effect %s: %s", what, status)
    return summary
