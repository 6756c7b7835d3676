"""A stand-in for data.police.uk on 127.0.0.1, serving archive CSVs in the API's own JSON shapes.

Used by `make run` (offline demo on the bundled real files) and by the tests, which also script
faults into it (429 with Retry-After, 5xx, truncated JSON, changed fields). Endpoints:
`crimes-street-dates`, `crime-last-updated`, `forces`, `stops-force`, `stops-no-location`.

It also publishes edition files under `/home-office/<name>` (the Home Office knife crime table)
and `/nhs/<name>` (the NHS HES sharp object admissions table), with an ETag and Last-Modified,
answering 304 to a conditional request for the same edition; `SampleApi.publish` swaps in a
revised edition (`folder="nhs"` for the HES one).

The archive CSV has no street and no outcome id: the stand-in returns `street: {id: null,
name: null}` and an empty outcome id rather than inventing them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from vru.feeds.police import CSV_COLUMNS, archive_file_partition


def bundled_sample_dir() -> Path:
    return Path(str(resources.files("vru_sample").joinpath("data/police")))


def bundled_knife_crime_editions() -> list[Path]:
    """The two bundled (synthetic) editions of the knife crime table, oldest first."""
    folder = Path(str(resources.files("vru_sample").joinpath("data/knife_crime")))
    return sorted(folder.glob("knife-crime-edition-*"))


def bundled_ons_pfa_editions() -> list[Path]:
    """The four real 2018 editions of the ONS police force area data tables, oldest first (their
    published names do not sort by date)."""
    folder = Path(str(resources.files("vru_sample").joinpath("data/ons_pfa")))
    return [folder / name for name in (
        "policeforceareatablesyearendingmarch2018v2.xlsx",
        "policeforceareadatatablesyearendingjune2018corrected.xlsx",
        "policeforceareatablesyearendingsep18corrected.xlsx",
        "policeforceareatablesyearendingdecember2018.xlsx",
    )]


def bundled_hes_editions() -> list[Path]:
    """The two bundled (synthetic) editions of the HES sharp object admissions table, oldest first."""
    folder = Path(str(resources.files("vru_sample").joinpath("data/hes")))
    return sorted(folder.glob("hes-sharp-object-edition-*"))


@dataclass(frozen=True)
class SampleEditions:
    """What the stand-in serves for an edition feed (`vru.registry` name `feed`): the bundled
    editions, published one after the other at /<folder>/<served_name>."""

    feed: str
    served_name: str
    folder: str
    publisher: str  # who publishes a revision, in the demo's words
    what: str
    editions: Callable[[], list[Path]]
    replay: bool  # serve every edition in turn (a revision is picked up), or only the latest

    def url(self, base: str) -> str:
        return f"{base}/{self.folder}/{self.served_name}"


# The edition feeds' sample. Knife crime replays its timeline (edition 1, then the revised
# edition 2 published while Airflow runs). HES (one financial year per yearly table) serves its
# latest edition, the earlier years backfilled from files before Airflow starts: a replay would
# start a fourth transform run (events seconds apart are not coalesced), about 4 minutes for
# nothing new to see; tests/test_hes.py checks its revision over HTTP instead.
SAMPLE_EDITIONS = (
    SampleEditions("knife_crime", "knife-crime", "home-office", "the Home Office", "knife crime table",
                   bundled_knife_crime_editions, replay=True),
    SampleEditions("hes", "hes-sharp-object", "nhs", "NHS Digital",
                   "HES table of admissions for assault by sharp object", bundled_hes_editions, replay=False),
    # REAL: the four 2018 editions as the ONS published them; the first three backfilled from files
    SampleEditions("ons_pfa", "pfa-data-tables", "ons", "the ONS", "police force area data tables",
                   bundled_ons_pfa_editions, replay=False),
)
# Folders under which the server publishes edition files, one per publisher.
EDITION_FOLDERS = tuple(s.folder for s in SAMPLE_EDITIONS)


@dataclass(frozen=True)
class Edition:
    data: bytes
    last_modified: str
    content_type: str

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.data).hexdigest()[:20] + '"'


def _bool(value: str) -> bool | None:
    return {"True": True, "False": False, "true": True, "false": False}.get(value)


def csv_row_to_api(row: dict[str, str]) -> dict[str, Any]:
    """One archive CSV row in the shape of one element of a stops-force response."""
    lat, lon = row["Latitude"], row["Longitude"]
    return {
        "age_range": row["Age range"] or None,
        "outcome": row["Outcome"] or None,
        "involved_person": "Person" in row["Type"],
        "self_defined_ethnicity": row["Self-defined ethnicity"] or None,
        "gender": row["Gender"] or None,
        "legislation": row["Legislation"] or None,
        "outcome_linked_to_object_of_search": _bool(row["Outcome linked to object of search"]),
        "datetime": row["Date"],
        "removal_of_more_than_outer_clothing": _bool(row["Removal of more than just outer clothing"]),
        "outcome_object": {"id": "", "name": row["Outcome"]},
        "location": None if not lat else {
            "latitude": lat, "longitude": lon, "street": {"id": None, "name": None},
        },
        "operation": _bool(row["Part of a policing operation"]),
        "officer_defined_ethnicity": row["Officer-defined ethnicity"] or None,
        "type": row["Type"] or None,
        "operation_name": row["Policing operation"] or None,
        "object_of_search": row["Object of search"] or None,
    }


@dataclass
class Fault:
    """A scripted response: served instead of the real one, `times` times."""

    status: int = 500
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


class SampleApi:
    """The data behind the server: files by (force, month), faults, and a last-updated date."""

    def __init__(self, data_dir: Path, last_updated: str = "2020-03-31") -> None:
        self.data_dir = data_dir
        self.last_updated = last_updated
        self.faults: dict[tuple[str, str, str], list[Fault]] = defaultdict(list)
        self.overrides: dict[tuple[str, str], bytes] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        # editions by folder, then name; `editions` is the home-office folder (the first one)
        self.folders: dict[str, dict[str, Edition]] = {folder: {} for folder in EDITION_FOLDERS}
        self.editions: dict[str, Edition] = self.folders["home-office"]
        self.lock = threading.Lock()

    def publish(self, name: str, path: Path, last_modified: str, folder: str = "home-office") -> None:
        """Serve `path` as the current edition at /<folder>/<name> (HTTP-date last_modified)."""
        content_type = {
            ".ods": "application/vnd.oasis.opendocument.spreadsheet",
            ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }.get(path.suffix, "text/csv")
        with self.lock:
            self.folders[folder][name] = Edition(path.read_bytes(), last_modified, content_type)

    def files(self) -> dict[tuple[str, str], Path]:
        found = {}
        for path in sorted(self.data_dir.glob("*-stop-and-search.csv")):
            part = archive_file_partition(path)
            found[(part.force_id, f"{part.month:%Y-%m}")] = path
        return found

    def add_fault(self, endpoint: str, force: str, month: str, fault: Fault) -> None:
        with self.lock:
            self.faults[(endpoint, force, month)].append(fault)

    def take_fault(self, endpoint: str, force: str, month: str) -> Fault | None:
        with self.lock:
            for key in ((endpoint, force, month), (endpoint, force, "*"), (endpoint, "*", "*")):
                queue = self.faults.get(key)
                if queue:
                    fault = queue[0]
                    fault.times -= 1
                    if fault.times <= 0:
                        queue.pop(0)
                    return fault
        return None

    def stops(self, force: str, month: str, no_location_only: bool = False) -> bytes | Iterable[bytes] | None:
        if (force, month) in self.overrides and not no_location_only:
            return self.overrides[(force, month)]
        path = self.files().get((force, month))
        if path is None:
            return None
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:  # a deliberately broken fixture: pass its rows through as they are
                return json.dumps(list(reader)).encode()
            stops = [csv_row_to_api(r) for r in reader]
        if no_location_only:
            stops = [s for s in stops if s["location"] is None]
        return json.dumps(stops).encode()

    def availability(self) -> bytes:
        months: dict[str, list[str]] = defaultdict(list)
        for force, month in self.files():
            months[month].append(force)
        return json.dumps(
            [{"date": m, "stop-and-search": sorted(months[m])} for m in sorted(months, reverse=True)]
        ).encode()


def _handler(api: SampleApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read api.requests
            return

        def _send(self, status: int, body: bytes | Iterable[bytes], headers: dict[str, str] | None = None) -> None:
            """Send `body`; chunks (a generator) are streamed, the end of the body marked by closing
            the connection (HTTP/1.0, this server's protocol), as a large response is."""
            headers = dict(headers or {})
            self.send_response(status)
            self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
            if isinstance(body, bytes):
                self.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            for chunk in [body] if isinstance(body, bytes) else body:
                self.wfile.write(chunk)

        def _edition(self, folder: str, name: str) -> None:
            fault = api.take_fault(folder, name, "*")
            edition = api.folders[folder].get(name)
            if fault is not None:
                self._send(fault.status, fault.body, fault.headers)
            elif edition is None:
                self._send(404, b'{"error": "no such file"}')
            elif self.headers.get("If-None-Match") == edition.etag:
                self._send(304, b"", {"ETag": edition.etag})
            else:
                self._send(200, edition.data, {"ETag": edition.etag, "Last-Modified": edition.last_modified,
                                               "Content-Type": edition.content_type})

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            endpoint = url.path.rstrip("/").rsplit("/", 1)[-1]
            params = {k: v[0] for k, v in parse_qs(url.query).items()}
            with api.lock:
                api.requests.append((endpoint, params))
            folder = url.path.strip("/").split("/", 1)[0]
            if folder in api.folders and url.path.startswith(f"/{folder}/"):
                self._edition(folder, url.path.removeprefix(f"/{folder}/").rstrip("/"))
                return
            force, month = params.get("force", ""), params.get("date", "")
            fault = api.take_fault(endpoint, force, month)
            if fault is not None:
                self._send(fault.status, fault.body, fault.headers)
                return
            if endpoint == "crimes-street-dates":
                self._send(200, api.availability())
            elif endpoint == "crime-last-updated":
                self._send(200, json.dumps({"date": api.last_updated}).encode())
            elif endpoint == "forces":
                forces = sorted({f for f, _ in api.files()})
                self._send(200, json.dumps([{"id": f, "name": f} for f in forces]).encode())
            elif endpoint in ("stops-force", "stops-no-location"):
                files = api.files()
                if not force or force not in {f for f, _ in files}:
                    self._send(404, b'{"error": "unknown force"}')
                elif month not in {m for _, m in files}:
                    self._send(500, b'{"error": "date outside the available window"}')
                else:
                    body = api.stops(force, month, endpoint == "stops-no-location")
                    self._send(200, body if body is not None else b"[]")
            else:
                self._send(404, b'{"error": "not found"}')

    return Handler


class SampleServer:
    """Runs SampleApi on 127.0.0.1 in a background thread."""

    def __init__(self, api: SampleApi, port: int = 0) -> None:
        self.api = api
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(api))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/api"

    @property
    def knife_crime_url(self) -> str:
        return f"{self.base}/home-office/knife-crime"

    @property
    def hes_url(self) -> str:
        return f"{self.base}/nhs/hes-sharp-object"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> SampleServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
