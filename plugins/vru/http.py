"""Shared HTTP mechanics for every feed: a global rate limit, retries with backoff and jitter.

A feed client knows its source's URLs and formats; this module knows how to be a polite, patient
HTTP client. Retries are tenacity's (bounded attempts, exponential backoff with full jitter, and a
wait of our own that honours Retry-After), ending in an error naming the URL:
* a GET is retried after 429, 5xx, timeouts and transport errors: reading twice is harmless;
* a POST (the alert webhook) is delivered at most once: it is retried only when the receiver
  certainly did not take it (the connection was never made, or 429 / 503, which refuse the
  request), never after a timeout or a 500, when it may have been delivered already. The incident
  record, not a second POST, is what makes an alert certain.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential
from tenacity.wait import wait_base

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A POST is retried only where the server refused it, so it was not delivered.
POST_RETRY_STATUSES = frozenset({429, 503})


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


class _Retry(Exception):
    """One attempt that may be tried again: what went wrong, and how long the server asked to wait."""

    def __init__(self, problem: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.status = status
        self.retry_after = retry_after


class wait_retry_after_or_jitter(wait_base):  # noqa: N801 - named like tenacity's own waits
    """The server's Retry-After when it gave one (capped at max_delay), else "full jitter":
    uniform between 0 and min(max_delay, base_delay * 2^(attempt-1)) (AWS architecture blog)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.cap = policy.max_delay
        self.jitter = wait_random_exponential(multiplier=policy.base_delay, max=policy.max_delay)

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, _Retry) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.cap)
        return float(self.jitter(retry_state))


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
        at_most_once = method != "GET"

        def attempt() -> httpx.Response:
            self.limiter.wait()
            try:
                response = self._request(method, url, max_bytes, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # never reached the server
                raise _Retry(f"{type(exc).__name__}: {exc}") from exc
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if at_most_once:  # it may have arrived: do not send it again
                    raise FetchError(f"{failure} failed: {type(exc).__name__}: {exc} (not retried: it may "
                                     "have been delivered)", url=url) from exc
                raise _Retry(f"{type(exc).__name__}: {exc}") from exc
            retry_on = POST_RETRY_STATUSES if at_most_once else RETRY_STATUSES
            if response.status_code in retry_on:
                raise _Retry(f"HTTP {response.status_code}", response.status_code, _retry_after(response.headers))
            return response

        def before_sleep(state: RetryCallState) -> None:
            outcome = state.outcome
            error = outcome.exception() if outcome is not None else None
            pause = state.next_action.sleep if state.next_action else 0.0
            log.warning("%s: %s (attempt %d/%d); retrying in %.1fs", label, error, state.attempt_number,
                        self.retry.max_attempts, pause)

        retrying = Retrying(
            stop=stop_after_attempt(self.retry.max_attempts),
            wait=wait_retry_after_or_jitter(self.retry),
            retry=retry_if_exception_type(_Retry),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Retry as last:
            raise FetchError(f"{failure} failed after {self.retry.max_attempts} attempts: {last.problem}",
                             url=url, status=last.status) from None
