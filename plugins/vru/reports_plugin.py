"""The reports and the dbt docs, served by the Airflow API server behind Airflow's own login.

An Airflow 3 plugin (registered as the `airflow.plugins` entry point `vru`, so every image that
installs the package has it): a FastAPI app mounted at `/vru-reports` that serves `VRU_HOME/reports/`
(the data quality report `index.html`, `outcomes.html`, `data_docs/`, `dbt_docs/`), and a link in
the Airflow UI's Browse menu.

Airflow mounts a plugin's FastAPI app as it is: the auth manager protects Airflow's own routes,
not a plugin's. So every route here depends on Airflow's `get_user`, which accepts the JWT the
login gives: the `_token` cookie the browser holds after logging in to the Airflow UI (the FAB
auth manager sets it HttpOnly), or an `Authorization: Bearer` token from `POST /auth/token`. No
token, an expired or a forged one: 401/403, and not a byte of a report. A browser without a
session (no token, or an expired one) is sent to Airflow's login page and back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vru.config import settings

URL_PREFIX = "/vru-reports"
_bearer = HTTPBearer(auto_error=False)


async def signed_in(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Airflow's own check of the caller's JWT (cookie or bearer); raises 401/403 without one.

    Imported here, not at module level: every Airflow process loads plugins, and only the API
    server serves this app (the import costs about 1.5 s).
    """
    from airflow.api_fastapi.core_api.security import get_user

    await get_user(request, None, bearer)


def reports_file(relative: str, root: Path | None = None) -> Path:
    """The file under the reports folder that `relative` names (a folder: its index.html).

    Refuses anything that resolves outside the folder (`..`, absolute paths, symlinks out of it).
    """
    base = (root or settings().reports_dir).resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not found")
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            "Not written yet: the reports appear after the transform's first run "
                            "(the dbt docs after `vru docs`).")
    return target


def create_app() -> FastAPI:
    app = FastAPI(title="VRU reports", dependencies=[Depends(signed_in)], docs_url=None, redoc_url=None,
                  openapi_url=None)

    @app.exception_handler(HTTPException)
    async def login_first(request: Request, exc: HTTPException) -> Response:
        """A browser without a session goes to Airflow's login page, and back here after it."""
        if exc.status_code == status.HTTP_401_UNAUTHORIZED and "text/html" in request.headers.get("accept", ""):
            from airflow.api_fastapi.app import get_auth_manager

            login = get_auth_manager().get_url_login(next_url=str(request.url))
            return RedirectResponse(login, status_code=status.HTTP_303_SEE_OTHER)
        return await http_exception_handler(request, exc)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        # relative links in the reports (data_docs/, dbt_docs/, outcomes.html) need the slash
        return RedirectResponse(f"{URL_PREFIX}/index.html")

    @app.get("/{relative:path}", include_in_schema=False)
    def report(relative: str) -> FileResponse:
        # the reports are rewritten each night: no caching by browsers or proxies
        return FileResponse(reports_file(relative), headers={"Cache-Control": "no-store"})

    return app


class VruReportsPlugin(AirflowPlugin):
    name = "vru_reports"
    # AirflowPlugin declares these as plain class attributes (mypy refuses ClassVar over them)
    fastapi_apps: list[Any] = [  # noqa: RUF012
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "VRU reports"}]
    external_views: list[Any] = [  # noqa: RUF012
        {"name": "Data quality report", "href": f"{URL_PREFIX}/index.html", "destination": "nav",
         "category": "browse"},
        {"name": "Outcomes report", "href": f"{URL_PREFIX}/outcomes.html", "destination": "nav",
         "category": "browse"},
        {"name": "dbt docs (the marts' columns)", "href": f"{URL_PREFIX}/dbt_docs/index.html",
         "destination": "nav", "category": "browse"},
    ]
