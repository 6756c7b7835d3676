"""Shared HTTP mechanics for every feed: a global rate limit, retries with backoff and jitter.

A feed client knows its source's URLs and formats; this module knows how to be a polite, patient
HTTP client. It retries 429, 5xx and timeouts with exponential backoff and full jitter, honours
Retry-After, and gives up after a bounded number of attempts with an error naming the URL.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class FetchError(RuntimeError):
    """A request that failed for good (non-retryable status or attempts exhausted)."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class ResponseTooLarge(FetchError):
    """A response body longer than the caller allows: reading stopped at the limit."""

    def __init__(self, message: str, *, url: str, limit: int) -> None:
        super().__init__(message, url=url)
        self.limit = limit


class RateLimiter:
    """Spaces requests at least 1/rate seconds apart across all threads of this process."""

    def __init__(self, rate_per_second: float) -> None:
        self.interval = 1.0 / rate_per_second
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


@dataclass
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        # "Full jitter" backoff: spreads retries of many clients (AWS architecture blog).
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


class HttpClient:
    def __init__(
        self,
        *,
        rate_per_second: float,
        retry: RetryPolicy,
        timeout: float = 60.0,
        user_agent: str = "vru-monitoring/0.1 (Home Office VRU programme monitoring)",
    ) -> None:
        self.limiter = RateLimiter(rate_per_second)
        self.retry = retry
        self._client = httpx.Client(
            timeout=timeout, headers={"User-Agent": user_agent}, follow_redirects=True
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, url: str, params: Mapping[str, str] | None = None,
            headers: Mapping[str, str] | None = None, *, max_bytes: int | None = None) -> httpx.Response:
        """GET with retries. Returns the final response (2xx or 304/404 for the caller to read).

        With `max_bytes`, the body is streamed and counted (after any content decoding, whatever
        Content-Length says): past the limit the connection is closed and :class:`ResponseTooLarge`
        raised, so a huge or endless response costs at most `max_bytes` of memory.
        """
        return self._send("GET", url, label=f"GET {url}", failure=f"GET {url} params={dict(params or {})}",
                          max_bytes=max_bytes, params=params, headers=headers)

    def post_json(self, url: str, payload: object, *, label: str) -> httpx.Response:
        """POST a JSON body with the same retries. `label` names the target in logs and errors in
        place of the URL: a webhook URL often carries its token in the path."""
        return self._send("POST", url, label=label, failure=label, json=payload)

    def _request(self, method: str, url: str, max_bytes: int | None, **kwargs: Any) -> httpx.Response:
        if max_bytes is None:
            return self._client.request(method, url, **kwargs)
        response = self._client.send(self._client.build_request(method, url, **kwargs), stream=True)
        try:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes and not response.headers.get("content-encoding"):
                raise ResponseTooLarge(f"GET {url}: the server announces {int(declared):,} bytes, more than "
                                       f"the {max_bytes:,} allowed", url=url, limit=max_bytes)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise ResponseTooLarge(f"GET {url}: the response is longer than the {max_bytes:,} bytes "
                                           "allowed; reading stopped there", url=url, limit=max_bytes)
        finally:
            response.close()
        # the body as read (decoded), in a response of its own: no encoding left to apply
        headers = [(k, v) for k, v in response.headers.multi_items()
                   if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        return httpx.Response(response.status_code, headers=headers, content=bytes(body),
                              request=response.request)

    def _send(self, method: str, url: str, *, label: str, failure: str, max_bytes: int | None = None,
              **kwargs: Any) -> httpx.Response:
        last_problem = ""
        last_status: int | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            self.limiter.wait()
            retry_after: float | None = None
            try:
                response = self._request(method, url, max_bytes, **kwargs)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last_status = None
                last_problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                last_status = response.status_code
                last_problem = f"HTTP {last_status}"
                retry_after = _retry_after(response.headers)
            if attempt == self.retry.max_attempts:
                break
            pause = self.retry.delay(attempt, retry_after)
            log.warning("%s: %s (attempt %d/%d); retrying in %.1fs", label, last_problem,
                        attempt, self.retry.max_attempts, pause)
            time.sleep(pause)
        raise FetchError(
            f"{failure} failed after {self.retry.max_attempts} attempts: {last_problem}",
            url=url,
            status=last_status,
        )
