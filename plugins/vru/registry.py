"""The feeds, in one list: every module that needs "each feed" iterates this.

A feed declares itself once, as `FEED` in its own module `vru.feeds.<name>` (see `vru.feed`).
Adding a feed: write `vru/feeds/<name>.py` with its parser and `FEED`, add it to `FEEDS` below,
add `dags/vru_ingest_<name>.py` (three lines, from the factory in `vru.ingest_dags`), its dbt
folder and its suites in `expectations/`. Nothing else lists feeds (docs/adding-a-feed.md).
"""

from __future__ import annotations

from vru.feed import Check, Derived, Feed, Mart
from vru.feeds import ae, hes, knife_crime, ons_pfa, police

FEEDS: tuple[Feed, ...] = (police.FEED, knife_crime.FEED, hes.FEED, ae.FEED, ons_pfa.FEED)

# The programme's outcome marts, built from the first four feeds (the comparison suite reads both).
OUTCOMES = Derived(
    prefix="outcomes",
    label="Programme outcomes (all feeds combined)",
    marts=(
        Mart("vru_outcomes_quarterly", "outcomes.vru_outcomes_quarterly", "Programme outcomes (quarterly)"),
        Mart("vru_programme_comparison", "outcomes.vru_programme_comparison",
             "Programme comparison (VRU areas against the others)"),
        Mart("vru_programme_effect", "outcomes.vru_programme_effect", "Programme effect estimates"),
        Mart("vru_programme_event_study", "outcomes.vru_programme_event_study",
             "Programme effect by quarter from funding (event study)"),
    ),
)

TRANSFORM_DAG = "vru_transform"
# Between the ingests and the transform: announces "raw settled" once no feed is loading, so a
# night's events start one transform run however many feeds loaded (dags/vru_raw_settled.py).
SETTLE_DAG = "vru_raw_settled"


def feed(name: str) -> Feed:
    """The feed called `name` (police, knife_crime, hes, ae, ons_pfa)."""
    for f in FEEDS:
        if f.name == name:
            return f
    raise KeyError(f"no feed called {name!r}; the feeds are {', '.join(f.name for f in FEEDS)}")


def by_dag_id(dag_id: str | None) -> Feed | None:
    return next((f for f in FEEDS if f.dag_id == dag_id), None)


def by_prefix(prefix: str) -> Feed | None:
    return next((f for f in FEEDS if f.prefix == prefix), None)


def ingest_dag_ids() -> tuple[str, ...]:
    """Every DAG that loads raw data (each emits the raw asset event the transform is scheduled on)."""
    return tuple(f.dag_id for f in FEEDS)


def scheduled_ingest_dag_ids() -> tuple[str, ...]:
    """The ingest DAGs a local run triggers; a files feed starts on its own when files land."""
    return tuple(f.dag_id for f in FEEDS if f.kind != "files")


def edition_feeds() -> tuple[Feed, ...]:
    return tuple(f for f in FEEDS if f.kind == "edition")


def raw_checks() -> list[Check]:
    """The transform's first gate: each feed's raw suite."""
    return [f.raw_check for f in FEEDS]


def mart_checks(build_schema: str) -> list[Check]:
    """The gate before publishing: staging suites, then every mart, as built in `build_schema`."""
    checks = [c for f in FEEDS for c in f.mart_gate_checks] + [m.check for m in OUTCOMES.marts]
    staging = [c for c in checks if c.stage == "staging"]
    marts = [Check(c.stage, c.dataset, f"{build_schema}.{c.table}") for c in checks if c.stage == "marts"]
    return staging + marts


def marts() -> tuple[Mart, ...]:
    """Every mart BI tools read, in build order (each feed's, then the outcomes built on them)."""
    return tuple(m for f in FEEDS for m in f.marts) + OUTCOMES.marts


def dataset_labels() -> dict[str, str]:
    """What monitoring staff call each dataset (feeds and their marts)."""
    labels: dict[str, str] = {}
    for f in FEEDS:
        labels[f.dataset] = f.label
        labels.update({m.dataset: m.label for m in f.marts})
    labels.update({m.dataset: m.label for m in OUTCOMES.marts})
    return labels


def source_labels() -> dict[str, str]:
    """Dataset prefix -> the feed's name with its source, as the data quality report shows it."""
    return {**{f.prefix: f.source_label for f in FEEDS}, OUTCOMES.prefix: OUTCOMES.label}


def derived_prefixes() -> frozenset[str]:
    """Dataset prefixes that combine the feeds: always validated (built either way)."""
    return frozenset({OUTCOMES.prefix})
