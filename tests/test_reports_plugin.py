"""The reports and dbt docs behind Airflow's login: a real Airflow API server, the production auth.

One `airflow api-server` started here on 127.0.0.1, with the FAB auth manager and an admin created
by `airflow users create`, as docker-compose.yml's stack runs it, on its own embedded PostgreSQL
metadata database. The plugin is found the way every image finds it: the package's
`airflow.plugins` entry point. Requests are real HTTP: without a login, with a forged or expired
token, with a wrong password, then logged in as a browser is (the FAB login form, the `_token`
cookie) and as an API client is (`POST /auth/token`, a bearer token).
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from vru.airflow_local import _airflow_bin, _free_port, airflow_env, metadata_database, migrate
from vru.config import settings
from vru.reports_plugin import URL_PREFIX, reports_file

FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
USER = "monitoring"


@dataclass
class Server:
    url: str
    password: str
    jwt_secret: str
    marker: str  # a unique string written into the report, so a 200 is this report, not a page


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cfg = settings()
    marker = f"report-{secrets.token_hex(8)}"
    reports = cfg.reports_dir
    (reports / "dbt_docs").mkdir(parents=True, exist_ok=True)
    (reports / "index.html").write_text(f"<html><body>Data quality report {marker}</body></html>")
    (reports / "dbt_docs" / "index.html").write_text(f"<html><body>dbt docs {marker}</body></html>")
    (cfg.home / "secrets").mkdir(parents=True, exist_ok=True)
    (cfg.home / "outside.txt").write_text(f"not a report {marker}")
    password = secrets.token_hex(12)
    with metadata_database(cfg) as metadata_url:
        port = _free_port()
        # the API server never reaches the warehouse here: a URL that cannot connect
        env = airflow_env(cfg, "postgresql://unused@127.0.0.1:1/unused", port, metadata_url,
                          {"AIRFLOW__CORE__AUTH_MANAGER": FAB})
        migrate(env)  # with the FAB auth manager configured, its user tables too
        created = subprocess.run(
            [_airflow_bin(), "users", "create", "--username", USER, "--firstname", "Monitoring",
             "--lastname", "Staff", "--role", "Viewer", "--email", "monitoring@example.org",
             "--password", password],
            env=env, capture_output=True, text=True, timeout=300)
        assert created.returncode == 0, created.stderr[-2000:]
        log = open(tmp_path_factory.mktemp("api") / "api-server.log", "wb")
        proc = subprocess.Popen(
            [_airflow_bin(), "api-server", "--port", str(port), "--host", "127.0.0.1", "--workers", "1"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while True:
                assert proc.poll() is None, f"the API server exited: {Path(log.name).read_text()[-3000:]}"
                try:
                    if httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the API server did not come up in 300 s"
                time.sleep(1)
            yield Server(url, password, env["AIRFLOW__API_AUTH__JWT_SECRET"], marker)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()


def _token(server: Server, password: str) -> httpx.Response:
    return httpx.post(f"{server.url}/auth/token", json={"username": USER, "password": password}, timeout=30)


def _forged(secret: str, expires: datetime) -> str:
    now = datetime.now(UTC)
    return jwt.encode({"sub": "1", "iat": now, "nbf": now - timedelta(minutes=5), "exp": expires,
                       "aud": "apache-airflow", "jti": secrets.token_hex(8)}, secret, algorithm="HS512")


@pytest.mark.parametrize("page", ["index.html", "dbt_docs/index.html", "dbt_docs/", "outcomes.html", "nothing.html"])
def test_no_login_gets_nothing(api_server: Server, page: str) -> None:
    """Refused before the file is looked at: the same answer for a report that exists and one that
    does not, so an outsider cannot even learn which reports there are."""
    response = httpx.get(f"{api_server.url}{URL_PREFIX}/{page}", timeout=30)
    assert response.status_code == 401, (page, response.status_code, response.text[:300])
    assert api_server.marker not in response.text


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the local run's 32-byte secret
def test_forged_expired_or_wrong_credentials_get_nothing(api_server: Server) -> None:
    page = f"{api_server.url}{URL_PREFIX}/index.html"
    hour = timedelta(hours=1)
    later, earlier, other = datetime.now(UTC) + hour, datetime.now(UTC) - hour, "not-the-secret" * 5
    refused = {
        "token signed with another secret": {"Authorization": f"Bearer {_forged(other, later)}"},
        "expired token of the real secret": {"Authorization": f"Bearer {_forged(api_server.jwt_secret, earlier)}"},
        "cookie of another secret": {"Cookie": f"_token={_forged(other, later)}"},
        "garbage bearer": {"Authorization": "Bearer not-a-jwt"},
    }
    for what, headers in refused.items():
        response = httpx.get(page, headers=headers, timeout=30)
        assert response.status_code in (401, 403), (what, response.status_code)
        assert api_server.marker not in response.text, what
    assert _token(api_server, "wrong-" + api_server.password).status_code == 401


def test_api_client_with_a_token_gets_the_reports(api_server: Server) -> None:
    response = _token(api_server, api_server.password)
    assert response.status_code in (200, 201), response.text[:300]
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    for page, title in (("index.html", "Data quality report"), ("dbt_docs/index.html", "dbt docs"),
                        ("dbt_docs/", "dbt docs")):
        got = httpx.get(f"{api_server.url}{URL_PREFIX}/{page}", headers=headers, timeout=30)
        assert got.status_code == 200, (page, got.status_code)
        assert f"{title} {api_server.marker}" in got.text
        assert got.headers["cache-control"] == "no-store"
    # a report no run has written (the session's VRU_HOME holds reports of other tests)
    missing = httpx.get(f"{api_server.url}{URL_PREFIX}/{api_server.marker}.html", headers=headers, timeout=30)
    assert missing.status_code == 404 and "Not written yet" in missing.text
    # nothing outside the reports folder, however the path is spelled
    for escape in ("..%2Foutside.txt", "%2E%2E/outside.txt", "dbt_docs/..%2F..%2Foutside.txt",
                   "%2Fetc%2Fpasswd"):
        got = httpx.get(f"{api_server.url}{URL_PREFIX}/{escape}", headers=headers, timeout=30)
        assert got.status_code == 404, (escape, got.status_code)
        assert "not a report" not in got.text and "root:" not in got.text


def test_browser_login_cookie_gets_the_reports_and_the_menu(api_server: Server) -> None:
    """What a person does: open the report link, log in on Airflow's login page, get the report."""
    with httpx.Client(base_url=api_server.url, timeout=30, follow_redirects=False) as browser:
        report = f"{api_server.url}{URL_PREFIX}/index.html"
        sent = browser.get(report, headers={"Accept": "text/html"})
        assert sent.status_code == 303, sent.status_code
        login = sent.headers["location"]
        assert urlsplit(login).path == "/auth/login/" and parse_qs(urlsplit(login).query)["next"] == [report]
        assert api_server.marker not in sent.text
        form = browser.get(login)
        assert form.status_code == 200, form.status_code
        csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form.text)
        assert csrf, "no CSRF token on the FAB login page"
        wrong = browser.post(login, data={"username": USER, "password": "wrong",
                                                   "csrf_token": csrf[1]})
        assert "_token" not in browser.cookies, f"a wrong password gave a session ({wrong.status_code})"
        form = browser.get(login)
        csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form.text)
        assert csrf
        done = browser.post(login, data={"username": USER, "password": api_server.password, "csrf_token": csrf[1]})
        assert done.status_code in (302, 303), done.status_code
        assert browser.cookies.get("_token"), "the FAB login set no _token cookie"
        assert done.headers["location"] == report, "after the login, back to the report asked for"
        root = browser.get(f"{URL_PREFIX}/")
        assert root.status_code in (302, 307) and root.headers["location"] == f"{URL_PREFIX}/index.html"
        page = browser.get(f"{URL_PREFIX}/index.html")
        assert page.status_code == 200, page.status_code
        assert f"Data quality report {api_server.marker}" in page.text
        # the links of the UI's Browse menu, as the entry point every image installs declares them
        # (the UI lists them to roles that may read Plugins: Op and Admin; a Viewer opens the URL)
        plugin = next(e for e in entry_points(group="airflow.plugins") if e.name == "vru_reports").load()
        hrefs = {v["href"] for v in plugin.external_views}
        assert f"{URL_PREFIX}/index.html" in hrefs and f"{URL_PREFIX}/dbt_docs/index.html" in hrefs
        for href in hrefs:
            # every menu link is served by the plugin: a report (200) or "not written yet" (404)
            got = browser.get(href)
            assert got.status_code in (200, 404), (href, got.status_code)
            assert got.status_code == 200 or "Not written yet" in got.text


def test_reports_file_stays_in_the_folder(tmp_path: Path) -> None:
    """The path rule itself, including a symlink out of the folder (which HTTP cannot spell)."""
    from fastapi import HTTPException

    (tmp_path / "reports" / "dbt_docs").mkdir(parents=True)
    (tmp_path / "reports" / "dbt_docs" / "index.html").write_text("docs")
    (tmp_path / "secret.txt").write_text("secret")
    (tmp_path / "reports" / "link.txt").symlink_to(tmp_path / "secret.txt")
    root = tmp_path / "reports"
    assert reports_file("dbt_docs", root) == (root / "dbt_docs" / "index.html").resolve()
    for bad in ("../secret.txt", "link.txt", "/etc/passwd", "missing.html"):
        with pytest.raises(HTTPException) as refused:
            reports_file(bad, root)
        assert refused.value.status_code == 404, bad
