"""The feed registry: each feed declared once, and nothing else disagreeing with it.

Fast, no database: these read the declarations, the expectations folder, the dbt manifest and the
package's own source (the import rules between its modules).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from vru import registry
from vru.config import REPO_ROOT, settings
from vru.feed import SUCCESSFUL_LOADS
from vru.publish import BUILD_SCHEMA, manifest_marts

EXPECTATIONS = REPO_ROOT / "expectations"
PACKAGE = REPO_ROOT / "plugins" / "vru"
# The local-run harness: it drives Airflow and serves the sample. Production code never imports it.
HARNESS = {"vru.airflow_local", "vru.runner"}


def test_every_declared_check_has_its_suite_and_every_suite_is_declared() -> None:
    checks = registry.raw_checks() + registry.mart_checks(BUILD_SCHEMA)
    declared = {f"{c.stage}.{c.dataset}.json" for c in checks}
    on_disk = {p.name for p in EXPECTATIONS.glob("*.json")}
    assert declared - on_disk == set(), "a feed declares a check whose suite is missing"
    assert on_disk - declared == set(), "a suite no feed declares: it would never run"


def test_the_registry_marts_are_the_marts_dbt_builds() -> None:
    manifest = Path(settings().dbt_project_dir) / "target" / "manifest.json"
    built = set(manifest_marts(manifest))
    assert {m.name for m in registry.marts()} == built


def test_names_are_unique_and_each_feed_has_its_dag_file() -> None:
    names = [f.name for f in registry.FEEDS]
    assert len(set(names)) == len(names)
    assert len({f.dataset for f in registry.FEEDS}) == len(names)
    for feed in registry.FEEDS:
        dag_file = REPO_ROOT / "dags" / f"{feed.dag_id}.py"
        assert dag_file.exists(), f"{feed.name}: no {dag_file.name}"
        assert registry.feed(feed.name) is feed
        assert registry.by_dag_id(feed.dag_id) is feed
    with pytest.raises(KeyError, match="no feed called 'nope'; the feeds are police"):
        registry.feed("nope")


def test_edition_feeds_declare_their_source_and_loaders() -> None:
    for feed in registry.edition_feeds():
        assert feed.ingest is not None and feed.load_file is not None, feed.name
        assert feed.url_env is not None and feed.source_url(settings()).startswith("http")


def test_every_dataset_a_check_names_has_a_label() -> None:
    labels = registry.dataset_labels()
    for check in registry.raw_checks() + registry.mart_checks(BUILD_SCHEMA):
        assert check.dataset in labels, check


def test_dbt_and_python_agree_on_a_successful_load() -> None:
    macro = (REPO_ROOT / "dbt_project" / "macros" / "successful_load_statuses.sql").read_text()
    assert all(f"'{status}'" in macro for status in SUCCESSFUL_LOADS)
    # what changed since the last publication (audit.changed_partitions, which a feed's
    # changed_partitions reads) counts the same statuses as a successful load, and only them
    schema = (REPO_ROOT / "plugins" / "vru" / "sql" / "warehouse.sql").read_text()
    view = re.search(r"create or replace view audit\.changed_partitions as(.*?);", schema, re.S)
    assert view, "view audit.changed_partitions not found"
    statuses = re.search(r"status in \(([^)]*)\)", view.group(1))
    assert statuses
    assert sorted(s.strip(" '") for s in statuses.group(1).split(",")) == sorted(SUCCESSFUL_LOADS)
    for feed in registry.FEEDS:
        if feed.changed_partitions:
            query = feed.changed_partitions.query
            assert "from audit.changed_partitions" in query and f"dataset = '{feed.dataset}'" in query, feed.name


def test_the_dbt_tests_and_the_gates_scope_police_validation_alike() -> None:
    from vru.feeds.police import FEED

    assert FEED.changed_partitions is not None
    macro = (REPO_ROOT / "dbt_project" / "macros" / "get_where_subquery.sql").read_text()
    body = re.search(r"macro changed_police_partitions\(\) -%}(.*?){%- endmacro", macro, re.S)
    assert body, "macro changed_police_partitions not found"
    assert " ".join(body.group(1).split()) == " ".join(FEED.changed_partitions.query.split())
    assert FEED.changed_partitions.key == ("force_id", "month")
    assert "t.force_id = changed.force_id and t.month = changed.month" in macro
    from vru.validation import LOOKUP_AT_MOST

    assert macro.count(f"(select count(*) from changed) > {LOOKUP_AT_MOST}") == 1
    assert macro.count(f"(select count(*) from changed) <= {LOOKUP_AT_MOST}") == 1


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_production_modules_import_neither_the_harness_nor_the_sample() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = "vru." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        if module in HARNESS or module == "vru.cli":  # the CLI is the entry point of both
            continue
        bad = sorted(i for i in _imports(path) if i in HARNESS or i.split(".")[0] == "vru_sample")
        if bad:
            offenders[module] = bad
    assert offenders == {}


def test_the_readme_lists_every_module_of_both_packages() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    plugins = REPO_ROOT / "plugins"
    for package in ("vru", "vru_sample"):
        for path in sorted((plugins / package).rglob("*.py")):
            relative = path.relative_to(plugins / package).as_posix()
            if path.name == "__init__.py":
                continue
            assert f"`{relative}`" in readme, f"README's What is where does not list {package}/{relative}"


def test_freshness_is_declared_once_with_each_feed_not_in_dbt() -> None:
    """One definition: the feed's (checked by its DAG's check_freshness). A dbt `freshness:` block
    that nothing runs would be a second, disagreeing one."""
    import yaml

    for path in (REPO_ROOT / "dbt_project" / "models").rglob("*.yml"):
        assert "freshness:" not in path.read_text(encoding="utf-8"), path
        for source in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("sources", []):
            assert "freshness" not in source and "freshness" not in (source.get("config") or {}), path
    for feed in registry.FEEDS:
        assert feed.freshness.max_age_days > 0 and feed.freshness.latest_period_end_sql, feed.name


def test_the_runbook_states_each_feeds_freshness_rule_as_declared() -> None:
    runbook = (REPO_ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    for feed in registry.FEEDS:
        rule = feed.freshness
        row = next((line for line in runbook.splitlines() if line.startswith(f"| `{feed.name}` |")), None)
        assert row is not None, f"docs/operations.md has no freshness row for {feed.name}"
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2:5] == [f"{rule.publication_lag_days} days", f"{rule.cycle_days} days",
                              f"{rule.max_age_days} days"], row


def test_each_feeds_period_is_named_as_its_publisher_names_it() -> None:
    from datetime import date

    from vru.freshness import period_name

    names = {name: period_name(registry.feed(name), end) for name, end in (
        ("police", date(2020, 2, 29)), ("knife_crime", date(2020, 3, 31)), ("hes", date(2023, 3, 31)),
        ("ae", date(2020, 1, 31)), ("ons_pfa", date(2018, 12, 31)))}
    assert names == {"police": "February 2020", "knife_crime": "January-March 2020", "hes": "2022/23",
                     "ae": "January 2020", "ons_pfa": "year ending December 2018"}
