"""The whole chain through a real Airflow scheduler on the embedded PostgreSQL, as `make run` runs it.

The ingest DAGs load the bundled sample from local stand-ins for data.police.uk and the Home
Office's knife crime table; their asset events make the scheduler start the transform DAG (dbt
through Cosmos, Great Expectations gates). Then the revised knife crime edition is published and
picked up. The marts' figures are checked against counts computed here, independently: from the
same CSV files for stop and search, from the sample generator's own figures for knife crime.
"""

from __future__ import annotations

import csv
import importlib.util
import io
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest
from conftest import SAMPLE, asset_event_extras, home_with_warehouse
from markupsafe import escape
from vru import effects, effects_build, effects_report, lineage, warehouse
from vru.config import REPO_ROOT, pg_params, settings
from vru.runner import execute
from vru_sample import istv as sample_istv

pytestmark = pytest.mark.e2e  # through a real Airflow scheduler: `pytest -m "not e2e"` skips it

S60 = "Criminal Justice and Public Order Act 1994 (section 60)"
WEAPON_OBJECTS = {"Offensive weapons", "Anything to threaten or harm anyone", "Firearms"}


def expected_from_fixture() -> dict[tuple[str, date], dict[str, int]]:
    """Per force-month counts straight from the archive CSVs (no code of the product used)."""
    out: dict[tuple[str, date], dict[str, int]] = {}
    for path in sorted(SAMPLE.glob("*.csv")):
        year, month, force = int(path.name[:4]), int(path.name[5:7]), path.name[8:-len("-stop-and-search.csv")]
        c: Counter[str] = Counter()
        with open(path, encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                c["searches"] += 1
                c["s60_searches"] += row["Legislation"] == S60
                c["weapon_searches"] += (row["Object of search"] in WEAPON_OBJECTS or row["Legislation"] == S60
                                         or "section 139B" in row["Legislation"])
                c["arrests"] += row["Outcome"] == "Arrest"
        out[(force, date(year, month, 1))] = dict(c)
    return out


@pytest.fixture(scope="module")
def chain_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with home_with_warehouse(tmp_path_factory, "vru_home") as home:
        yield home


def knife_expected() -> dict[tuple[str, int, int], int]:
    """(force, fy_start, quarter) -> total knife offences of the revised edition (None if withheld)."""
    spec = importlib.util.spec_from_file_location("make_sample", REPO_ROOT / "scripts" / "make_knife_crime_sample.py")
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    totals: Counter[tuple[str, int, int]] = Counter()
    for (force, fy, q, _), value in generator.figures(2).items():
        assert value is not None  # the revised edition withholds nothing
        totals[(force, fy, q)] += value
    return dict(totals)


def ae_expected() -> dict[tuple[str, date], int]:
    """(force, month) -> assault attendances in the synthetic extracts, counted from their CSV text."""
    with open(REPO_ROOT / "dbt_project" / "seeds" / "ae_sites.csv", encoding="utf-8", newline="") as handle:
        force_of = {r["site_code"]: r["force_id"] for r in csv.DictReader(handle)}
    totals: Counter[tuple[str, date]] = Counter()
    for site, force in force_of.items():
        for month in sample_istv.months():
            rows = list(csv.reader(io.StringIO(sample_istv.extract(site, month).decode("utf-8"), newline="")))
            totals[(force, month)] += len(rows) - 1
    return dict(totals)


def check_lineage(home: Path, url: str) -> None:
    """The OpenLineage events the run's tasks wrote (file transport, VRU_HOME/lineage) form the
    graph source -> raw -> staging -> marts_build -> marts, each table named as the warehouse's."""
    events = lineage.read_events(home / "lineage")
    pg = pg_params(url)
    done = lineage.edges(events)

    def table(name: str) -> str:  # OpenLineage's naming of a PostgreSQL table, as the warehouse's URL gives it
        return f"postgres://{pg.host}:{pg.port}/{pg.dbname}.{name}"

    def jobs(src: str, dst: str) -> set[str]:
        return {job for i, job, o in done if i == src and o == dst}

    def starts(job: str) -> list[dict[str, object]]:
        return [e for e in events if e["eventType"] == "START" and e["job"]["name"] == job]

    # ingest: the load tasks read their source and write raw (and say so when they start)
    raw_stops = table("raw.stop_searches")
    police = {(i, o) for i, job, o in done if job == "vru_ingest_police.ingest"}
    assert {o for _, o in police} == {raw_stops} and all(i.endswith("/stops-force") for i, _ in police), police
    assert starts("vru_ingest_police.ingest") and all(
        [d["name"] for d in e["outputs"]] == [f"{pg.dbname}.raw.stop_searches"]
        for e in starts("vru_ingest_police.ingest"))
    assert "vru_ingest_knife_crime.check_and_load" in {j for _, j, o in done if o == table("raw.knife_offences")}
    assert "vru_ingest_ae.take_in" in {j for _, j, o in done if o == table("restricted.ae_attendances")}
    # validation reads raw before dbt, and the build (not what BI reads) after it
    assert jobs(raw_stops, table("audit.validation_results")) == {"vru_transform.validate_raw"}
    assert "vru_transform.validate_marts" in jobs(table("marts_build.stop_search_monthly"),
                                                   table("audit.validation_results"))
    # dbt, through Cosmos: raw -> staging model -> the mart in the build schema, in the one dbt task
    assert jobs(raw_stops, table("staging.stg_police__stop_searches")) == {"vru_transform.dbt"}
    assert jobs(table("staging.stg_police__stop_searches"), table("marts_build.stop_search_monthly")) == {
        "vru_transform.dbt"}
    # publishing: the checked build -> the marts BI tools read
    for mart in ("stop_search_monthly", "knife_crime_quarterly", "ae_assault_monthly"):
        assert jobs(table(f"marts_build.{mart}"), table(f"marts.{mart}")) == {"vru_transform.publish_marts"}, mart
    # every task that ran said it started and how it ended
    ended = {e["job"]["name"] for e in events if e["eventType"] in ("COMPLETE", "FAIL")}
    assert {e["job"]["name"] for e in events if e["eventType"] == "START"} <= ended | {
        e["job"]["name"] for e in events if e["eventType"] == "ABORT"}
    # no credential in any event: the warehouse logins' passwords appear nowhere
    server = warehouse.embedded(settings())
    texts = [path.read_text() for path in (home / "lineage").iterdir()]
    for secret in (server.pipeline_password(), pg.password):
        assert secret and not [t for t in texts if secret in t]


def _mart(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("select * from marts.stop_search_monthly order by force_id, month").fetchall()


def test_make_run_chain_then_rerun_changes_nothing(chain_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRU_HOME", str(chain_home))
    cfg = settings()
    url = warehouse.embedded(cfg).url()

    lines: list[str] = []
    first = execute(sample=True, cfg=cfg, out=lines.append, docs=True)  # as `make run` does
    assert first.succeeded, "\n".join(lines)
    assert first.emitted
    # the first night (both feeds) and the revised knife crime edition each started the transform
    assert len(first.transform_runs) >= 2, first.transform_runs
    assert {r.run_type.value for r in first.transform_runs} == {"asset_triggered"}, first.transform_runs
    tasks = next(iter(first.transform_tasks.values()))
    assert tasks["validate_raw"] == tasks["validate_marts"] == tasks["publish_marts"] == "success"
    assert tasks["dbt"] == "success"
    # the checked marts are announced by publish_marts only: no asset names a relation of the build
    from dataclasses import replace

    from vru.airflow_local import metadata_database

    with metadata_database(replace(settings(), home=chain_home)) as meta_url, psycopg.connect(meta_url) as meta:
        build_assets = meta.execute("select name, uri from asset where uri like %s or name like %s",
                                    ("%marts_build%", "%marts_build%")).fetchall()
    assert build_assets == []

    # the asset event the ingest emitted names the force-months and row counts it loaded
    extras = asset_event_extras(chain_home, "raw.stop_searches")
    knife_events = asset_event_extras(chain_home, "raw.knife_offences")
    expected = expected_from_fixture()
    assert len(extras) == 1
    assert sorted(extras[0]["force_months"]) == sorted(f"{f}/{m:%Y-%m}" for f, m in expected)
    assert extras[0]["rows_loaded"] == sum(v["searches"] for v in expected.values())

    mart = {}
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        for row in cur.execute("select * from marts.stop_search_monthly"):
            mart[(row["force_id"], row["month"])] = row
    published = {k: v for k, v in mart.items() if v["coverage"] == "published"}
    assert set(published) == set(expected)
    for key, counts in expected.items():
        row = published[key]
        assert {k: row[k] for k in counts} == counts, key
        assert float(row["arrest_rate"]) == pytest.approx(counts["arrests"] / counts["searches"], abs=5e-5)
    # every force area has a row for every month; one that did not publish is NULL, never 0
    assert len(mart) == 43 * 3
    missing = [v for v in mart.values() if v["coverage"] != "published"]
    assert missing and all(v["searches"] is None and v["arrests"] is None for v in missing)
    assert published[("merseyside", date(2019, 12, 1))]["is_vru_area"] is True
    assert published[("durham", date(2019, 12, 1))]["is_vru_area"] is False

    # knife crime: two editions, the revised one current, its revisions in audit and in the event
    assert [e["file_format"] for e in knife_events] == ["csv", "ods"], knife_events
    assert knife_events[0]["figures"] == 6192 and knife_events[1]["figures_revised"] > 0
    assert knife_events[1]["figures_added"] == 43 * 9
    with psycopg.connect(url) as conn:
        revised = conn.execute("select count(*) from audit.revisions where change = 'revised' "
                               "and dataset = 'home_office.knife_offences'").fetchone()
        knife = {(r[0], r[1], r[2]): r[3:] for r in conn.execute(
            "select force_id, fy_start, financial_quarter, total_offences, coverage, is_comparable, "
            "is_revised from marts.knife_crime_quarterly")}
    assert revised == (knife_events[1]["figures_revised"],)
    expected_knife = knife_expected()
    assert set(knife) == set(expected_knife) and len(knife) == 43 * 17
    for key, total in expected_knife.items():
        assert knife[key][0] == total and knife[key][1] == "complete", key
    assert knife[("greater-manchester", 2019, 3)][2] is False  # a known series break, from the seed
    assert knife[("essex", 2019, 3)][2] is True
    assert knife[("greater-manchester", 2020, 4)][3] is True  # withheld in edition 1, filled in edition 2
    assert any("knife crime table edition 2 loaded (ods, load " in line and "revised" in line for line in lines), lines
    assert any("knife crime table edition 1 loaded (csv, load " in line for line in lines), lines

    # HES: one synthetic year per file in the published layout: 2020-21 backfilled from its file before
    # Airflow started (as `vru load-hes` does), 2021-22 served and loaded by the nightly ingest
    with psycopg.connect(url) as conn:
        hes = dict(conn.execute("select financial_year, finished_consultant_episodes "
                                "from marts.sharp_object_admissions_yearly where geography_code = 'E92000001'"
                                ).fetchall())
    assert hes == {"2020/21": 3412, "2021/22": 3688}, hes
    assert any(line.startswith("Sample: Hospital admissions for assault by sharp object: backfilled "
                                "hes-sharp-object-edition-1.xlsx (loaded)") for line in lines), lines

    # A&E: the synthetic extracts landed while Airflow ran; the landing watcher started the ingest
    ae_runs = [r for r in first.ingest_runs if r.dag_id == "vru_ingest_ae"]
    assert ae_runs and ae_runs[-1].run_type == "asset_triggered", ae_runs
    landing = chain_home / "landing" / "ae"
    assert sorted(p.name for p in landing.iterdir() if p.is_file()) == []  # every file taken in
    n_files = len(sample_istv.sites()) * len(list(sample_istv.months()))
    assert len(list((landing / "loaded").iterdir())) == n_files
    expected_ae = ae_expected()
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*), count(distinct load_id) from restricted.ae_attendances"
                            ).fetchone() == (sum(expected_ae.values()), n_files)
        ae = {(r[0], r[1]): r[2:] for r in conn.execute(
            "select force_id, month, attendances, attendances_suppressed, coverage from marts.ae_assault_monthly "
            "where age_band = 'all ages'")}
        small = conn.execute(
            "select count(*) from marts.ae_assault_monthly where attendances between 1 and 4 "
            "or knife_or_sharp_attendances between 1 and 4").fetchone()
    assert small == (0,)
    assert set(ae) >= set(expected_ae)
    for key, total in expected_ae.items():
        assert ae[key] == (total, False, "complete"), key
    assert any("A&E extracts taken in" in line and f"{n_files} loaded" in line for line in lines), lines

    # dbt docs, written last as `make run` writes them: the marts and the dashboards reading them
    dbt_docs = (chain_home / "reports" / "dbt_docs" / "index.html").read_text()
    assert "ae_assault_monthly" in dbt_docs and "hospital_violence_dashboard" in dbt_docs
    # the outcomes report for people who do not open BI tools, from the outcome marts
    assert any(line.startswith("Outcomes report: ") for line in lines), lines
    outcomes_page = (chain_home / "reports" / "outcomes.html").read_text()
    assert "VRU areas" in outcomes_page

    # the programme effect estimates: built in the same run, checked and published with the marts;
    # every measure has a row per window, and every area-quarter is used or left out with a reason
    assert tasks["estimate_effects"] == tasks["dbt_effects"] == "success"
    # dbt parses the project once, then each dbt task starts from the partial parse Cosmos keeps
    # ([cosmos] cache_dir): at most the first of the runs' dbt tasks parsed the whole project
    dbt_logs = sorted((chain_home / "airflow" / "logs" / "dag_id=vru_transform").glob("*/task_id=dbt*/attempt=*.log"))
    assert len(dbt_logs) >= 4, dbt_logs
    full_parses = [p for p in dbt_logs if "Starting full parse" in p.read_text()]
    assert len(full_parses) <= 1, full_parses
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        effect = cur.execute("select * from marts.vru_programme_effect").fetchall()
        (area_quarters,) = conn.execute("select count(*) from marts.vru_outcomes_quarterly").fetchone() or (0,)
        study = conn.execute("select measure from marts.vru_programme_event_study").fetchall()
    assert {(r["measure"], r["analysis_window"]) for r in effect} == {
        (m.spec.key, w) for m in effects_build.MEASURES for w in effects.WINDOWS}
    for r in effect:
        if r["status"] != "not available":
            assert r["area_quarters_used"] + r["area_quarters_excluded"] == area_quarters, r
        if r["status"] in ("not possible", "not available"):
            assert r["estimate_pct"] is None, r
    assert {m for (m,) in study} <= {r["measure"] for r in effect if r["status"] in ("estimated", "not interpretable")}
    # the report says what each estimate allows, sentence by sentence from the mart (the sample is
    # short: a measure without a confident estimate is said in words, not printed as a number)
    for r in effect:
        if r["analysis_window"] == effects_report.WINDOW:
            said = str(escape(effects_report.sentence(r)))  # as the autoescaping template writes it
            assert f'id="effect-{r["measure"]}-sentence">{said}</p>' in outcomes_page, (r, said)
            if r["status"] != "estimated" and r["estimate_pct"] is not None:
                assert effects_report.pct(r["estimate_pct"]) not in said

    report = (chain_home / "reports" / "index.html").read_text()
    assert "All checks passed" in report and "Do not use" not in report
    assert (chain_home / "reports" / "data_docs" / "index.html").exists()
    assert any("force-months loaded: 21" in line for line in lines), lines
    check_lineage(chain_home, url)

    # second run: nothing new from the publishers; a department re-sends a file it already sent,
    # and another sends a malformed one. Nothing is loaded, no transform runs, marts untouched.
    resent = next((landing / "loaded").iterdir())
    (landing / "resent-again.csv").write_bytes(resent.read_bytes())
    broken = sample_istv.extract("RWEAA", date(2021, 4, 1)).splitlines(keepends=True)
    (landing / "broken.csv").write_bytes(b"".join([*broken[:40], broken[40][:30] + b"\r\n", *broken[41:]]))
    before = _mart(url)
    with psycopg.connect(url) as conn:
        attendances = conn.execute("select count(*) from restricted.ae_attendances").fetchone()
    lines.clear()
    second = execute(sample=True, cfg=cfg, out=lines.append)
    assert second.succeeded, "\n".join(lines)
    assert not second.emitted and second.transform_runs == []
    assert any("nothing new was published" in line for line in lines), lines
    assert _mart(url) == before
    assert [r.run_type.value for r in second.ingest_runs if r.dag_id == "vru_ingest_ae"] == ["asset_triggered"]
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from restricted.ae_attendances").fetchone() == attendances
        assert conn.execute("select status, dataset from audit.loads where run_id = any(%s)",
                            (second.ingest_run_ids,)).fetchall() == [("refused", "ae.attendances")]
        landed = dict(conn.execute("select file_name, outcome from audit.landed_files where run_id = any(%s)",
                                   (second.ingest_run_ids,)).fetchall())
        incident = conn.execute("select summary from audit.incidents where kind = 'file_rejected' "
                                "and resolved_at is null").fetchall()
    assert landed == {"resent-again.csv": "duplicate", "broken.csv": "rejected"}
    assert "line 41 has" in (landing / "rejected" / "broken.csv.reason.txt").read_text()
    assert incident == [("A&E extract broken.csv was rejected: nothing in it was loaded",)]
    assert "broken.csv" in (chain_home / "reports" / "index.html").read_text()
