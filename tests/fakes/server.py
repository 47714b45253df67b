"""A real HTTP server on 127.0.0.1 (ephemeral port) in a thread, with scripted faults.

Each fake API subclasses :class:`FakeApi` and implements :meth:`FakeApi.route`. Tests
script failures with :meth:`FakeApi.fail`: the next matching requests get a 429, a 5xx,
garbage, a JSON body cut short, or a connection closed mid-body, exactly as a flaky API or
proxy would produce them. Every request is recorded (path, query, headers).
"""

from __future__ import annotations

import json
import threading
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
class Request:
    path: str
    query: Query
    headers: dict[str, str] = field(default_factory=dict)


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

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        request = Request(
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in handler.headers.items()},
        )
        with self._lock:
            self.requests.append(request)
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
