"""The data quality report's traffic lights and words, as pure rules (no database, no page)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from vru import report_rules as rules
from vru.report_rules import AMBER, GREEN, GREY, RED, Light

NIGHT = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(("critical", "warnings", "expected"), [
    (0, 0, Light(GREEN, "All checks passed")),
    (0, 2, Light(AMBER, "Usable, with 2 warning(s)")),
    (1, 0, Light(RED, "Do not use: 1 critical check(s) failed")),
    (3, 5, Light(RED, "Do not use: 3 critical check(s) failed")),  # a critical failure outranks warnings
])
def test_validation_light(critical: int, warnings: int, expected: Light) -> None:
    assert rules.validation_light(critical, warnings) == expected
    assert rules.validation_state(critical, warnings) == expected.colour


def test_ingest_light_red_names_what_was_not_loaded() -> None:
    assert rules.ingest_light(2, 0, 0, False) == Light(RED, "Not all loaded: 2 could not be fetched")
    assert rules.ingest_light(0, 1, 0, False) == Light(RED, "Not all loaded: 1 refused as malformed")
    assert rules.ingest_light(1, 1, 9, True).words == ("Not all loaded: 1 could not be fetched, "
                                                       "1 refused as malformed")


def test_ingest_light_amber_for_rows_set_aside_then_staleness() -> None:
    assert rules.ingest_light(0, 0, 1234, True) == Light(AMBER, "Loaded; 1,234 row(s) set aside (see below)")
    # A&E: the number set aside is a count of attendances, so it is not shown
    assert rules.ingest_light(0, 0, 3, False, exact=False) == Light(AMBER, "Loaded; rows set aside (see below)")
    assert rules.ingest_light(0, 0, 0, True) == Light(
        AMBER, "Loaded, but the data is older than the source's usual publication delay")
    assert rules.ingest_light(0, 0, 0, False) == Light(GREEN, "Loaded as published")


def test_a_file_feed_with_a_rejected_file_is_amber_not_red() -> None:
    light = rules.feed_ingest_light(0, 2, 0, False, file_feed=True, exact=False)
    assert light.colour == AMBER and light.words.startswith("2 file(s) rejected whole, the others loaded")
    # a failure to fetch is still red, and names no refused file as malformed
    assert rules.feed_ingest_light(1, 2, 0, False, file_feed=True, exact=False) == Light(
        RED, "Not all loaded: 1 could not be fetched")
    # other feeds: a refused force-month is red
    assert rules.feed_ingest_light(0, 2, 0, False, file_feed=False, exact=True).colour == RED
    assert rules.feed_ingest_light(0, 0, 0, False, file_feed=True, exact=False) == Light(GREEN, "Loaded as published")


@pytest.mark.parametrize(("failed", "refused", "quarantined", "expected"), [
    (0, 0, 0, GREEN), (0, 0, 1, AMBER), (1, 0, 1, RED), (0, 1, 0, RED)])
def test_night_state(failed: int, refused: int, quarantined: int, expected: str) -> None:
    assert rules.night_state(failed, refused, quarantined) == expected


def test_worst_and_its_verdict() -> None:
    assert rules.worst([]) == GREY
    assert rules.worst([GREEN, GREY]) == GREEN
    assert rules.worst([GREEN, AMBER, GREEN]) == AMBER
    assert rules.worst([AMBER, RED, GREEN]) == RED
    assert "must not be used" in rules.VERDICTS[RED]
    assert set(rules.VERDICTS) == set(rules.DOT_WORDS) == {GREEN, AMBER, RED, GREY}


@pytest.mark.parametrize(("held", "published", "stale", "expected"), [
    (None, "2020-02", False, Light(RED, "Nothing loaded yet")),
    ("2020-01", "2020-02", True, Light(AMBER, "Behind the source: the newest period is not loaded yet")),
    ("2020-02", "2020-02", True, Light(AMBER, "Up to date with the source, but the source is late publishing")),
    ("2020-02", None, False, Light(GREEN, "Up to date with the source")),
    ("2023/24 Q3", "2023/24 Q2", False, Light(GREEN, "Up to date with the source")),
])
def test_freshness_light(held: str | None, published: str | None, stale: bool, expected: Light) -> None:
    assert rules.freshness_light(held, published, stale) == expected


def test_incident_status_and_delivery_words() -> None:
    assert rules.incident_status(None) == Light(RED, "Open")
    assert rules.incident_status(NIGHT) == Light(GREEN, "Resolved 2026-11-23 03:00")
    assert rules.notified_words("email", None) == "email"
    assert rules.notified_words("email", "SMTP refused") == "delivery failed: SMTP refused"


def test_publication_words() -> None:
    later = NIGHT.replace(hour=4)
    assert rules.publication_words(None, None, None) == "Nothing has been published to the tables BI tools read yet."
    assert "the first build failed its checks" in rules.publication_words(None, None, NIGHT)
    assert rules.publication_words(NIGHT, "r1", None) == (
        "BI tools show the figures published 2026-11-23 03:00 UTC (run r1), after every check on them passed.")
    assert rules.publication_words(later, None, NIGHT).startswith("BI tools show the figures published "
                                                                  "2026-11-23 04:00 UTC,")
    held_back = rules.publication_words(NIGHT, None, later)
    assert held_back.startswith("BI tools still show the figures published 2026-11-23 03:00 UTC: a later batch")
    assert "at 2026-11-23 04:00 UTC" in held_back


@pytest.mark.parametrize(("expectation", "observed", "words"), [
    ("x", None, ""),
    ("unexpected_rows_expectation", {"observed_value": 12345}, "12,345 record(s) break the rule"),
    ("x", {"unexpected_count": 3, "element_count": 1200}, "3 of 1,200 rows"),
    ("x", {"unexpected_count": 7, "element_count": 0}, "7 rows"),
    ("x", {"observed_value": 3.5}, "found 3.5"),
    ("x", {"observed_value": "a" * 200}, "found " + "a" * 120),
    ("x", {"observed_value": None}, ""),
])
def test_observed_words(expectation: str, observed: dict[str, object] | None, words: str) -> None:
    assert rules.observed_words(expectation, observed) == words


def test_severity_words() -> None:
    assert rules.severity_words("critical") == "Critical: not published"
    assert rules.severity_words("warning") == "Warning"


def test_reason_kind_drops_the_rows_own_values_and_place() -> None:
    assert rules.reason_kind("bad number: column 'Latitude' is 'north'") == "bad number: column 'Latitude' is …"
    assert rules.reason_kind("bad number: 'abc' (line 3)") == "bad number: …"
    assert rules.reason_kind("age band 'x' unknown (column AGE, line 4)") == "age band … unknown"


def test_when() -> None:
    assert rules.when(None) == ""
    assert rules.when(NIGHT) == "2026-11-23 03:00"
