"""The alert e-mail's body (vru.alerts sends it): templates/alert_email.html.j2, every value escaped.

Kept apart from vru.alerts, which decides when to alert and delivers: this module only words one
incident for people. It reads the incident and where it was seen by their fields, not their types.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Protocol

from vru.templating import render


class _Incident(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def detail(self) -> str | None: ...
    @property
    def dataset(self) -> str | None: ...
    @property
    def stage(self) -> str | None: ...


class _Origin(Protocol):
    @property
    def dag_id(self) -> str | None: ...
    @property
    def task_id(self) -> str | None: ...
    @property
    def run_id(self) -> str | None: ...


def facts(incident: _Incident, incident_id: int | None, opened_at: datetime, origin: _Origin,
          report: Path) -> list[tuple[str, object]]:
    """The table of the e-mail, in order; the template leaves out a fact without a value."""
    return [
        ("Dataset", incident.dataset),
        ("Stage", incident.stage),
        ("Where", " / ".join(str(x) for x in (origin.dag_id, origin.task_id) if x)),
        ("Run", origin.run_id),
        ("First seen", f"{opened_at:%Y-%m-%d %H:%M} UTC"),
        ("Incident", f"{incident_id} ({incident.key})" if incident_id else f"not recorded ({incident.key})"),
        ("Data quality report", report),
    ]


def html_body(incident: _Incident, incident_id: int | None, opened_at: datetime, origin: _Origin, report: Path,
              advice: str) -> str:
    """The HTML body: the summary, what to do (`advice`), the facts, the error text for engineers."""
    return render("alert_email.html.j2", summary=incident.summary, advice=advice,
                  facts=facts(incident, incident_id, opened_at, origin, report), detail=incident.detail)
