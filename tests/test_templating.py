"""The package's HTML templates: shipped as package data, escaping by default, no `|safe` on data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from vru import alert_email
from vru.templating import environment, render

HOSTILE = "<script>alert(1)</script> & 'q' \"dq\" {{ 7*7 }}"


def test_templates_are_package_data_and_none_marks_anything_safe() -> None:
    folder = resources.files("vru") / "templates"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".j2"))
    assert {"report.html.j2", "outcomes_report.html.j2", "alert_email.html.j2"} <= set(names)
    for name in names:
        source = (folder / name).read_text(encoding="utf-8")
        assert not re.search(r"\|\s*safe\b|autoescape\s+false", source), name
    assert environment().autoescape is True


def test_values_are_escaped_as_html_escape_does_and_never_evaluated() -> None:
    env = environment()
    page = env.from_string("<p title=\"{{ v }}\">{{ v }}{{ none_value }}</p>").render(v=HOSTILE, none_value=None)
    assert page == ('<p title="&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#x27;q&#x27; &quot;dq&quot; {{ 7*7 }}">'
                    "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#x27;q&#x27; &quot;dq&quot; {{ 7*7 }}</p>")
    # markup a macro wrote is not escaped twice
    macros = env.get_template("_macros.html.j2").module
    light = macros.light(type("L", (), {"colour": "red", "words": HOSTILE})())
    assert str(light).startswith('<span class="light red" data-light="red"></span>&lt;script&gt;')
    assert "49" not in render("alert_email.html.j2", summary=HOSTILE, advice="a", facts=[], detail=None)


@dataclass(frozen=True)
class _Incident:
    key: str
    summary: str
    detail: str | None
    dataset: str | None
    stage: str | None


@dataclass(frozen=True)
class _Origin:
    dag_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None


def test_alert_email_escapes_error_text_and_leaves_out_empty_facts() -> None:
    at = datetime(2026, 11, 23, 3, 4, tzinfo=UTC)
    body = alert_email.html_body(_Incident("task:a.b", HOSTILE, HOSTILE, None, ""), None, at,
                                 _Origin("vru_transform", None, "r1"), Path("/r/index.html"), "Look at the log.")
    assert "<script>" not in body and body.count("&lt;script&gt;") == 2
    assert "<p><strong>&lt;script&gt;" in body and "<pre>&lt;script&gt;" in body
    assert "<tr><td>Where</td><td>vru_transform</td></tr><tr><td>Run</td><td>r1</td></tr>" in body
    assert "Dataset" not in body and "Stage" not in body  # no value: no row
    assert "<tr><td>Incident</td><td>not recorded (task:a.b)</td></tr>" in body
    assert "\n" not in body and body.startswith("<html><body><p><strong>") and body.endswith("</body></html>")
    quiet = alert_email.html_body(_Incident("k", "s", None, "d", "raw"), 3, at, _Origin(), Path("/r"), "x")
    assert "Technical detail" not in quiet and "<td>3 (k)</td>" in quiet
