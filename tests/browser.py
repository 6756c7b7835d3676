"""A real headless browser for report tests: Debian's Chromium driven by Playwright.

Chromium comes from Debian's packages (`make test` installs it: Playwright's own browser download
does not work offline). Pages are served over real HTTP on 127.0.0.1 from the folder they were
written to, as a reader's browser would fetch them.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("VRU_CHROMIUM", "/usr/bin/chromium")
# As root, in a sandboxed machine with no network: no sandbox, no background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class Rendered:
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    title: str = ""
    values: dict[str, Any] = field(default_factory=dict)


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(folder))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def render(url: str, evaluate: dict[str, str] | None = None) -> Rendered:
    """Load `url` in headless Chromium; collect console errors and run each JS expression."""
    from playwright.sync_api import sync_playwright

    out = Rendered()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: out.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: out.page_errors.append(str(e)))
            page.on("requestfailed", lambda r: out.failed_requests.append(r.url))
            response = page.goto(url, wait_until="load")
            assert response is not None and response.ok, f"{url}: HTTP {response.status if response else '?'}"
            out.title = page.title()
            for name, expression in (evaluate or {}).items():
                out.values[name] = page.evaluate(expression)
        finally:
            browser.close()
    return out
