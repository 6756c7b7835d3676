"""`vru run`'s summary: its words from figures already read (no database, no Airflow)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from conftest import dag_run
from vru.airflow_local import ChainResult
from vru.config import Settings, settings
from vru.registry import feed
from vru.runner import (
    ChainFigures,
    EditionLoad,
    KnifeMart,
    LandedOutcome,
    LoadStatus,
    StopSearchMart,
    ValidationCount,
    format_summary,
)

AE_DAG = feed("ae").dag_id
KNIFE_CRIME_DAG = feed("knife_crime").dag_id


def _cfg(tmp_path: Path) -> Settings:
    return replace(settings(), home=tmp_path)


def _figures(**changes: object) -> ChainFigures:
    empty = ChainFigures(editions={"home_office.knife_offences": [], "nhs.sharp_object_admissions": []}, landed=[],
                         police={}, validations={}, published={}, knife=None, hes=None, ae=None, stop_search=None)
    return replace(empty, **changes)  # type: ignore[arg-type]


def test_a_quiet_night_says_nothing_new_was_published(tmp_path: Path) -> None:
    run = dag_run(KNIFE_CRIME_DAG, "r1", "success", "scheduled")
    lines = format_summary(ChainResult([run], {f"{KNIFE_CRIME_DAG}/r1": {}}), _figures(), _cfg(tmp_path))
    assert lines[:4] == [
        f"Ingest run {KNIFE_CRIME_DAG} r1: success",
        "  knife crime table: no new edition (unchanged since the last one loaded)",
        "  stop and search force-months loaded: 0 (new 0, revised 0); rows read 0, loaded 0, quarantined 0",
        "  nothing new was published: no asset event; the marts were not rebuilt and are unchanged",
    ]
    assert lines[-3].startswith("Data quality report: ") and lines[-1].startswith("Airflow logs: ")


def test_a_busy_night_in_words(tmp_path: Path) -> None:
    runs = [dag_run(AE_DAG, "a1", "success", "asset_triggered")]
    transform = [dag_run("vru_transform", "t1", "failed", "asset_triggered")]
    chain = ChainResult(runs, {f"{AE_DAG}/a1": {"publish_raw": "success"}}, transform,
                        {"t1": {"publish_marts": "failed", "validate_marts": "success", "report": "upstream_failed"}})
    figures = _figures(
        editions={"home_office.knife_offences": [EditionLoad("loaded", 631, None, "ods", 1234, 1000, 34, 2, 1, 5, 2),
                                                 EditionLoad("refused", 632, "no Force column", None, None, None,
                                                             None, None, 0, 0, 3)],
                  "nhs.sharp_object_admissions": []},
        landed=[LandedOutcome("loaded", 3, 1), LandedOutcome("rejected", 1, 0), LandedOutcome("duplicate", 2, 1)],
        police={"loaded": LoadStatus("loaded", 2, 2000, 1990, 10), "replaced": LoadStatus("replaced", 1, 500, 500, 0),
                "failed": LoadStatus("failed", 1, 0, 0, 0)},
        validations={"t1": [ValidationCount("raw", "police.stop_searches", 11, 0, 0),
                            ValidationCount("marts", "police.stop_search_monthly", 5, 2, 1)]},
        published={"t1": None},
        knife=KnifeMart(10, 2, "2019/20", "2023/24", 12345, 3),
        stop_search=StopSearchMart(4, 3, 1500))
    lines = format_summary(chain, figures, _cfg(tmp_path))
    assert lines[0] == f"Ingest run {AE_DAG} a1: success (started by files landing)"
    assert "  knife crime table edition 2 loaded (ods, load 631): 1,234 figures; 1,000 new, 34 revised, 2 dropped; " \
           "1 quarantined, 5 rows recognised as notes or totals" in lines
    assert "  knife crime table edition refused: no Force column" in lines
    assert any(line.endswith(": 3 loaded, 0 replacing an earlier extract, 2 duplicate(s) ignored, 1 rejected; "
                             "1 with rows set aside (attendance counts: marts.ae_assault_monthly, suppressed)")
               for line in lines)  # rows set aside are counted for loaded and replaced files only
    assert "  stop and search force-months loaded: 3 (new 2, revised 1); rows read 2,500, loaded 2,490, " \
           "quarantined 10" in lines
    assert "  force-months failed: 1 (named in the report; retried by the next run)" in lines
    assert not any("nothing new was published" in line for line in lines)
    at = lines.index("Transform run t1: failed")
    assert lines[at + 1:at + 5] == [
        "  validation raw police.stop_searches: 11 expectations, passed",
        "  validation marts police.stop_search_monthly: 5 expectations, 2 failed (1 critical)",
        "  tasks not successful: publish_marts, report",
        "  nothing published: the marts BI tools read still show the previous figures",
    ]
    assert "Mart marts.knife_crime_quarterly: 10 force-quarters, 2 forces, 2019/20 to 2023/24, 12,345 knife " \
           "offences; 3 force-quarters revised since first published" in lines
    assert "Mart marts.stop_search_monthly: 4 force-months (3 published), 1,500 searches" in lines


def test_a_publication_lists_the_marts_that_changed(tmp_path: Path) -> None:
    transform = [dag_run("vru_transform", "t1", "success", "asset_triggered")]
    marts = {"b": {"inserted": 2, "deleted": 1}, "a": {"inserted": 0, "deleted": 3}, "c": {"inserted": 0, "deleted": 0}}
    lines = format_summary(ChainResult([], {}, transform, {"t1": {"validate_marts": "skipped"}}),
                           _figures(validations={"t1": []}, published={"t1": marts}), _cfg(tmp_path))
    assert "  published to the marts BI tools read (rows inserted/deleted): a +0/-3, b +2/-1" in lines
    assert any(line.startswith("  marts not published: checks failed while a feed loaded") for line in lines)
    nothing = format_summary(ChainResult([], {}, transform, {}),
                             _figures(validations={"t1": []}, published={"t1": {"c": marts["c"]}}), _cfg(tmp_path))
    assert "  published to the marts BI tools read (rows inserted/deleted): no row changed" in nothing
    empty = format_summary(ChainResult([], {}, transform, {"t1": {"publish_marts": "success"}}),
                           _figures(validations={"t1": []}, published={"t1": {}}), _cfg(tmp_path))
    assert "  published to the marts BI tools read (rows inserted/deleted): no row changed" in empty
