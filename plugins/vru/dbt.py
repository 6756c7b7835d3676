"""The dbt manifest, compiled ahead of time so that DAG parsing never runs dbt (Cosmos loads it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from vru.config import Settings, dbt_env, settings

_SOURCES = ("models", "seeds", "macros", "tests", "snapshots", "analyses")


def manifest_path(cfg: Settings | None = None) -> Path:
    return (cfg or settings()).dbt_project_dir / "target" / "manifest.json"


def _newest_source(project: Path) -> float:
    newest = (project / "dbt_project.yml").stat().st_mtime
    for folder in _SOURCES:
        for path in (project / folder).rglob("*") if (project / folder).exists() else ():
            if path.is_file():
                newest = max(newest, path.stat().st_mtime)
    return newest


def ensure_manifest(cfg: Settings | None = None, force: bool = False) -> Path:
    """`dbt parse` when the manifest is missing or older than the project (no connection needed)."""
    cfg = cfg or settings()
    project = cfg.dbt_project_dir
    target = manifest_path(cfg)
    if not force and target.exists() and target.stat().st_mtime >= _newest_source(project):
        return target
    env = dict(os.environ)
    env.update(dbt_env(cfg.warehouse_url or "postgresql://postgres@127.0.0.1:5432/warehouse"))
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "False"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "parse", "--project-dir", str(project),
         "--profiles-dir", str(project), "--no-partial-parse"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    if done.returncode != 0 or not target.exists():
        raise RuntimeError(f"dbt parse failed in {project}:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return target


def generate_docs(url: str, cfg: Settings | None = None) -> Path:
    """dbt docs for BI users and analysts: one self-contained page, VRU_HOME/reports/dbt_docs/index.html.

    `dbt docs generate --static` against the warehouse (the catalog reads the published tables'
    columns and types), with its own target path so the manifest the DAGs load is not touched.
    """
    cfg = cfg or settings()
    project = cfg.dbt_project_dir
    out = cfg.reports_dir / "dbt_docs"
    env = dict(os.environ)
    env.update(dbt_env(url))
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "False"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "docs", "generate", "--static", "--project-dir", str(project),
         "--profiles-dir", str(project), "--target-path", str(out), "--no-partial-parse",
         # document the published marts (what BI tools read), not the build schema they are checked in
         "--vars", "{marts_schema: marts}"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    page = out / "static_index.html"
    if done.returncode != 0 or not page.exists():
        raise RuntimeError(f"dbt docs generate failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    index = out / "index.html"
    page.replace(index)  # the one file to open (catalog and manifest are inlined)
    return index
