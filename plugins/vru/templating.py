"""The Jinja2 environment of the HTML this package writes (reports, alert e-mail).

Templates are package data under `vru/templates/`. Every `{{ value }}` is escaped unless it is
markup a template itself made (a macro's output): autoescaping is on for every template, and no
template marks data `|safe`. The escaping is `html.escape`'s (quotes as `&quot;` and `&#x27;`),
the same bytes the pages had when they were f-strings; `None` prints as nothing.
"""

from __future__ import annotations

import html
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup


def _escape(value: Any) -> Any:
    # finalize runs before autoescape on every {{ }}: escaped here, the result is Markup and
    # autoescape leaves it alone; markup a macro made (has __html__) passes unchanged
    if hasattr(value, "__html__"):
        return value
    return Markup(html.escape("" if value is None else str(value)))  # noqa: S704 - escaped just now


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("vru", "templates"),
        autoescape=True,
        finalize=_escape,
        undefined=StrictUndefined,
        keep_trailing_newline=False,
    )


def render(template: str, **values: Any) -> str:
    return environment().get_template(template).render(**values)
