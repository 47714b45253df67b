"""A real HTTP server on 127.0.0.1 (ephemeral port) in a thread, with scripted faults.

Each fake API subclasses :class:`FakeApi` and implements :meth:`FakeApi.route`. Tests
script failures with :meth:`FakeApi.fail`: the next matching requests get a 429, a 5xx,
garbage, a JSON body cut short, or a connection closed mid-body, exactly as a flaky API or
proxy would produce them. :meth:`FakeApi.hold` stops one request in its tracks (before
the response, or half-way through its body) until the test releases it: the moment a test
kills the client process. :meth:`FakeApi.rate_limit` enforces a request budget per window
and answers 429 with ``Retry-After`` beyond it, as the real APIs do. Every request is
recorded (path, query, headers, arrival time).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Query = dict[str, list[str]]

FAULTS = ("429", "500", "502", "503", "garbage", "truncated_json", "cut", "empty", "401")


@dataclass
class Fault:
    kind: str
    times: int = 1  # how many matching requests fail; -1: all of them
    skip: int = 0  # let this many matching requests through first
    path: str | None = None  # only requests whose path starts with this
    retry_after: str | None = None  # a Retry-After value to send with 429/503


@dataclass
class Hold:
    """One request held open: ``reached`` is set when it arrives (with half of its body sent
    first when ``partial``); the server answers nothing more until ``release`` is set, then
    hangs up."""

    path: str  # matched exactly
    skip: int  # requests to the path served normally before the one held
    partial: bool
    taken: bool = False
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class RateLimit:
    """At most ``limit`` requests to ``path`` in any ``window`` seconds (a sliding window)."""

    limit: int
    window: float
    path: str | None
    arrivals: list[float] = field(default_factory=list)  # accepted requests, monotonic
    refused: int = 0


@dataclass
class Request:
    path: str
    query: Query
    headers: dict[str, str] = field(default_factory=dict)
    at: float = 0.0  # time.monotonic() on arrival


@dataclass
class Response:
    status: int = 200
    body: Any = None  # JSON-able, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, separators=(",", ":")).encode()


class FakeApi:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.faults_served: list[str] = []
        self.extra_headers: dict[str, str] = {}  # sent with every response (rate limits)
        self.holds: list[Hold] = []
        self.limits: list[RateLimit] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so the client's pool is exercised
            # One write per response, sent at once: no Nagle/delayed-ACK stalls.
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                api._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- scripting -----------------------------------------------------------------------

    def fail(
        self,
        kind: str,
        *,
        times: int = 1,
        skip: int = 0,
        path: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        assert kind in FAULTS, kind
        with self._lock:
            self.faults.append(Fault(kind, times, skip, path, retry_after))

    def hold(self, path: str, *, skip: int = 0, partial: bool = False) -> Hold:
        """Hold the request to ``path`` that comes after ``skip`` served ones; see
        :class:`Hold`. Release it (``hold.release.set()``) before stopping the server."""
        held = Hold(path, skip, partial)
        with self._lock:
            self.holds.append(held)
        return held

    def rate_limit(self, limit: int, window: float, *, path: str | None = None) -> RateLimit:
        """Refuse requests beyond ``limit`` in any ``window`` seconds with a 429 and a
        ``Retry-After`` in whole seconds, rounded up (as Zendesk and Stripe send it)."""
        rule = RateLimit(limit, window, path)
        with self._lock:
            self.limits.append(rule)
        return rule

    def requests_to(self, prefix: str) -> list[Request]:
        return [r for r in self.requests if r.path.startswith(prefix)]

    # -- to implement --------------------------------------------------------------------

    def route(self, request: Request) -> Response:
        raise NotImplementedError

    # -- internals -----------------------------------------------------------------------

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.path is not None and not path.startswith(fault.path):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    return None
                if fault.times == 0:
                    continue
                if fault.times > 0:
                    fault.times -= 1
                self.faults_served.append(fault.kind)
                return fault
        return None

    def _take_hold(self, path: str) -> Hold | None:
        with self._lock:
            for held in self.holds:
                if path != held.path or held.taken:
                    continue
                if held.skip > 0:
                    held.skip -= 1
                    return None
                held.taken = True
                return held
        return None

    def _over_limit(self, path: str, now: float) -> float | None:
        """Seconds until a request to ``path`` would be accepted, or None to accept it."""
        with self._lock:
            for rule in self.limits:
                if rule.path is not None and not path.startswith(rule.path):
                    continue
                rule.arrivals = [t for t in rule.arrivals if t > now - rule.window]
                if len(rule.arrivals) >= rule.limit:
                    rule.refused += 1
                    return rule.arrivals[0] + rule.window - now
                rule.arrivals.append(now)
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        request = Request(
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in handler.headers.items()},
            at=time.monotonic(),
        )
        with self._lock:
            self.requests.append(request)
        held = self._take_hold(parts.path)
        if held is not None:
            self._send_held(handler, held, request)
            return
        wait = self._over_limit(parts.path, request.at)
        if wait is not None:
            body = json.dumps({"error": "APIRateLimitExceeded"}).encode()
            self._send(handler, 429, body, {"Retry-After": str(max(1, math.ceil(wait)))})
            return
        fault = self._take_fault(parts.path)
        if fault is not None:
            self._send_fault(handler, fault, request)
            return
        response = self.route(request)
        self._send(handler, response.status, response.encoded(), response.headers)

    def _send_fault(self, handler: BaseHTTPRequestHandler, fault: Fault, request: Request) -> None:
        kind = fault.kind
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        if kind in ("429", "500", "502", "503", "401"):
            body = json.dumps({"error": {"type": "fake_error", "message": kind}}).encode()
            self._send(handler, int(kind), body, headers)
            return
        if kind == "garbage":
            self._send(handler, 200, b"<html><body>Bad gateway, try later</body></html>", {})
            return
        if kind == "empty":
            self._send(handler, 200, b"", {})
            return
        good = self.route(request).encoded()
        if kind == "truncated_json":  # a well-formed HTTP response whose JSON stops short
            self._send(handler, 200, good[: max(1, len(good) // 2)], {})
            return
        # "cut": announce the whole body, send half, hang up (a proxy or server dying).
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(good)))
        handler.end_headers()
        handler.wfile.write(good[: len(good) // 2])
        handler.wfile.flush()
        handler.close_connection = True

    def _send_held(self, handler: BaseHTTPRequestHandler, held: Hold, request: Request) -> None:
        if held.partial:  # the client is now reading a page that will never finish
            good = self.route(request).encoded()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(good)))
            handler.end_headers()
            handler.wfile.write(good[: len(good) // 2])
            handler.wfile.flush()
        held.reached.set()
        held.release.wait(120)
        handler.close_connection = True  # by now the client is usually dead: just hang up

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        headers: Mapping[str, str],
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for k, v in {**self.extra_headers, **headers}.items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(body)


def first(query: Query, name: str, default: str | None = None) -> str | None:
    values = query.get(name)
    return values[0] if values else default
