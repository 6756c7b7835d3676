"""The data quality report's decisions: which traffic light, and which words (no SQL, no HTML).

Pure functions of counts and dates the report's queries read (vru.report), so every rule is
tested on its own (tests/test_report_rules.py) and the page template only lays them out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

GREEN = "green"
AMBER = "amber"
RED = "red"
GREY = "grey"
_RANK = {GREY: 0, GREEN: 1, AMBER: 2, RED: 3}
# What a dot of the "recent runs" trend means (its tooltip).
DOT_WORDS = {GREEN: "passed", AMBER: "warnings", RED: "critical failure", GREY: "not run"}

VERDICTS = {
    RED: "Some of last night's figures must not be used: a critical check failed or a source could "
         "not be loaded. The failed batch was not published to the tables BI tools read.",
    AMBER: "Last night's figures can be used, with the warnings below in mind.",
    GREEN: "Last night's figures can be trusted: every check passed and every source loaded.",
    GREY: "No feed has run yet.",
}


@dataclass(frozen=True)
class Light:
    colour: str  # green | amber | red | grey
    words: str


def validation_light(critical: int, warnings: int) -> Light:
    if critical:
        return Light(RED, f"Do not use: {critical} critical check(s) failed")
    if warnings:
        return Light(AMBER, f"Usable, with {warnings} warning(s)")
    return Light(GREEN, "All checks passed")


def validation_state(critical: int, warnings: int) -> str:
    """One validation's dot in the trend."""
    return RED if critical else AMBER if warnings else GREEN


def ingest_light(failed: int, refused: int, quarantined: int, stale: bool, exact: bool = True) -> Light:
    """`exact`: the count of rows set aside may be shown (not for A&E: it counts attendances, issue 12)."""
    if failed or refused:
        parts = [f"{failed} could not be fetched" if failed else "",
                 f"{refused} refused as malformed" if refused else ""]
        return Light(RED, "Not all loaded: " + ", ".join(p for p in parts if p))
    if quarantined:
        if not exact:
            return Light(AMBER, "Loaded; rows set aside (see below)")
        return Light(AMBER, f"Loaded; {quarantined:,} row(s) set aside (see below)")
    if stale:
        return Light(AMBER, "Loaded, but the data is older than the source's usual publication delay")
    return Light(GREEN, "Loaded as published")


def feed_ingest_light(failed: int, refused: int, quarantined: int, stale: bool, *, file_feed: bool,
                      exact: bool) -> Light:
    """A feed's loading light from its latest night. A feed made of many independent files
    (`file_feed`): a file refused is a gap in the figures, not a failed night (the other files
    loaded), so it is amber with the file named in the report, not red."""
    light = ingest_light(failed, 0 if file_feed else refused, quarantined, stale, exact=exact)
    if file_feed and refused and light.colour != RED:
        return Light(AMBER, f"{refused} file(s) rejected whole, the others loaded (see "
                            "\"A&E extracts received\" below)")
    return light


def night_state(failed: int, refused: int, quarantined: int) -> str:
    """One night's loading dot in the trend."""
    return RED if failed or refused else AMBER if quarantined else GREEN


def worst(colours: list[str]) -> str:
    return max(colours, key=_RANK.__getitem__) if colours else GREY


def freshness_light(held: str | None, published: str | None, stale: bool) -> Light:
    """`held`, `published`: the latest period held and the latest the source lists, as sortable text."""
    if held is None:
        return Light(RED, "Nothing loaded yet")
    if published and held < published:
        return Light(AMBER, "Behind the source: the newest period is not loaded yet")
    if stale:
        return Light(AMBER, "Up to date with the source, but the source is late publishing")
    return Light(GREEN, "Up to date with the source")


def incident_status(resolved: datetime | None) -> Light:
    return Light(GREEN, f"Resolved {resolved:%Y-%m-%d %H:%M}") if resolved else Light(RED, "Open")


def notified_words(via: str, error: str | None) -> str:
    return f"delivery failed: {error}" if error else via


def when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else ""


def publication_words(published_at: datetime | None, run_id: str | None, failed_at: datetime | None) -> str:
    """Which figures BI tools are showing: the marts are published only after every check passed
    (write-audit-publish, `vru.publish`), so after a failed build they still show the last good one.
    `published_at`: the latest publication (None: never); `failed_at`: the latest critical failure."""
    if published_at is None:
        if failed_at:
            return ("Nothing has been published to the tables BI tools read yet: the first build failed its "
                    "checks (see below), so BI tools show no figures rather than unchecked ones.")
        return "Nothing has been published to the tables BI tools read yet."
    shown = f"{when(published_at)} UTC" + (f" (run {run_id})" if run_id else "")
    if failed_at and failed_at > published_at:
        return (f"BI tools still show the figures published {shown}: a later batch failed a critical check "
                f"at {when(failed_at)} UTC (see below), so it was not published, and those earlier figures "
                "were left exactly as they were.")
    return f"BI tools show the figures published {shown}, after every check on them passed."


def severity_words(severity: str) -> str:
    return "Critical: not published" if severity == "critical" else "Warning"


def observed_words(expectation: str, observed: dict[str, Any] | None) -> str:
    """What the check found, in words: how many records broke the rule (never which ones)."""
    if not observed:
        return ""
    if expectation == "unexpected_rows_expectation" and isinstance(observed.get("observed_value"), int):
        return f"{observed['observed_value']:,} record(s) break the rule"
    if "unexpected_count" in observed and observed.get("element_count"):
        return f"{observed['unexpected_count']:,} of {observed['element_count']:,} rows"
    if "unexpected_count" in observed:
        return f"{observed['unexpected_count']:,} rows"
    value = observed.get("observed_value")
    if isinstance(value, (int, float)):
        return f"found {value:,}"
    return "" if value is None else f"found {str(value)[:120]}"


_QUOTED = re.compile(r"(column |field )?'([^']*)'")
_WHERE = re.compile(r" \((column|line)[^)]*\)$")


def reason_kind(reason: str) -> str:
    """The reason without the row's own values and line: rows with one problem group together."""
    reason = _WHERE.sub("", reason)
    return _QUOTED.sub(lambda m: m.group(0) if m.group(1) else "…", reason)
