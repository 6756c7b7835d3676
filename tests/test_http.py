"""HTTP retries (tenacity) against a real server on 127.0.0.1: a GET is retried, a POST (the alert
webhook) is delivered at most once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from vru.http import FetchError, HttpClient, RetryPolicy


class Receiver:
    """Answers each request with the next scripted (status, seconds to wait first); counts them."""

    def __init__(self) -> None:
        self.script: list[tuple[int, float, dict[str, str]]] = []
        self.hits: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                receiver.hits.append(self.command)
                status, delay, headers = receiver.script.pop(0) if receiver.script else (200, 0.0, {})
                time.sleep(delay)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout)

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def client(timeout: float = 5.0, attempts: int = 3) -> HttpClient:
    return HttpClient(rate_per_second=100, retry=RetryPolicy(max_attempts=attempts, base_delay=0.01, max_delay=0.05),
                      timeout=timeout)


def test_a_post_that_timed_out_is_not_sent_again(receiver: Receiver) -> None:
    receiver.script = [(200, 1.5, {})]  # answers after the client's 0.5 s timeout: it may have arrived
    with client(timeout=0.5) as http, pytest.raises(FetchError, match="not retried: it may have been delivered"):
        http.post_json(receiver.url, {"incident": 1}, label="POST alert webhook")
    time.sleep(1.2)  # long enough for a retry to have reached the receiver
    assert receiver.hits == ["POST"]


def test_a_post_the_server_refused_is_retried_and_a_500_is_not(receiver: Receiver) -> None:
    receiver.script = [(503, 0.0, {}), (429, 0.0, {"Retry-After": "0"}), (200, 0.0, {})]
    with client() as http:
        assert http.post_json(receiver.url, {}, label="POST alert webhook").status_code == 200
    assert receiver.hits == ["POST"] * 3
    receiver.hits.clear()
    receiver.script = [(500, 0.0, {})]  # the receiver may have acted on it before failing
    with client() as http:
        assert http.post_json(receiver.url, {}, label="POST alert webhook").status_code == 500
    assert receiver.hits == ["POST"]


def test_a_get_is_retried_honouring_retry_after_then_gives_up_naming_the_url(receiver: Receiver) -> None:
    receiver.script = [(503, 0.0, {"Retry-After": "1"}), (200, 0.0, {})]
    started = time.monotonic()
    with client() as http:
        assert http.get(receiver.url).status_code == 200
    assert time.monotonic() - started >= 0.05  # Retry-After 1 s, capped at max_delay 0.05 s
    assert receiver.hits == ["GET", "GET"]
    receiver.hits.clear()
    receiver.script = [(502, 0.0, {})] * 3
    failed = r"GET .*/hook .*failed after 3 attempts: HTTP 502"
    with client() as http, pytest.raises(FetchError, match=failed) as raised:
        http.get(receiver.url)
    assert raised.value.status == 502 and receiver.hits == ["GET"] * 3


def test_a_get_that_timed_out_is_retried(receiver: Receiver) -> None:
    receiver.script = [(200, 1.0, {}), (200, 0.0, {})]
    with client(timeout=0.3) as http:
        assert http.get(receiver.url).status_code == 200
    assert receiver.hits == ["GET", "GET"]
