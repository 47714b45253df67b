"""A fake Slack on 127.0.0.1: the Web API, file uploads, response_urls and Socket Mode.

Real slack-sdk and slack-bolt talk to it over HTTP (``SLACK_API_URL`` points here) and a
websocket. Every request is recorded as a :class:`Call`; faults are scripted per method
(``fail_next``, ``rate_limit_next``) or per channel (``not_member``). Messages are checked
against Block Kit's limits the way Slack does, answering ``invalid_blocks``.

Also here: what Slack itself sends — a slash-command payload and its HMAC-SHA256 signature
(``v0:{timestamp}:{body}``), and a tiny real PNG.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import struct
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-1111-2222-fakebottoken"
APP_TOKEN = "xapp-1-A0KPI-3333-fakeapptoken"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Call:
    """One request the fake received: a Web API method, ``upload``, ``response`` or ``ack``."""

    method: str
    params: dict[str, Any]
    token: str | None = None
    body: bytes = b""
    at: float = field(default_factory=time.perf_counter)


@dataclass
class _Fault:
    status: int
    error: str
    headers: dict[str, str]


class FakeSlackAPI:
    def __init__(self, *, bot_token: str = BOT_TOKEN, app_token: str = APP_TOKEN) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.calls: list[Call] = []
        self.uploads: dict[str, bytes] = {}  # file id → the bytes uploaded
        self.not_member: set[str] = set()  # channels the bot was never invited to
        self.expired: set[str] = set()  # response_url keys past their 30 minutes
        self._faults: dict[str, list[_Fault]] = {}
        self._files: dict[str, dict[str, Any]] = {}
        self._ts = itertools.count(1)
        self._changed = asyncio.Condition()
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_up = asyncio.Event()
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> FakeSlackAPI:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/response/{key}", self._response_url)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        for ws in self._sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, key: str = "cmd1") -> str:
        return f"{self.url}/response/{key}"

    # -- scripting and inspection -------------------------------------------------------

    def fail_next(self, method: str, error: str, *, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` answer ``{"ok": false, "error": error}``."""
        self._faults.setdefault(method, []).extend([_Fault(200, error, {})] * times)

    def rate_limit_next(self, method: str, *, retry_after: int = 1, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` answer HTTP 429 with ``Retry-After``."""
        fault = _Fault(429, "ratelimited", {"Retry-After": str(retry_after)})
        self._faults.setdefault(method, []).extend([fault] * times)

    def of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        """Wait (on events, not a sleep) until ``method`` was called ``count`` times."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.of(method)) >= count)
        return self.of(method)

    async def _record(self, call: Call) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    # -- the Web API --------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        else:
            params.update(await request.post())
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        await self._record(Call(method, params, token))

        faults = self._faults.get(method)
        if faults:
            fault = faults.pop(0)
            body = {"ok": False, "error": fault.error}
            return web.json_response(body, status=fault.status, headers=fault.headers)
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token is None:
            return _error("not_authed")
        if token != expected:
            return _error("invalid_auth")
        answer = getattr(self, "_" + method.replace(".", "_"), None)
        if answer is None:
            return _error("unknown_method")
        return web.json_response(answer(params))

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://kpibot-fake.slack.com/",
            "team": "Fake Team",
            "user": "kpibot",
            "team_id": "T0FAKE",
            "user_id": "U0KPIBOT",
            "bot_id": "B0KPIBOT",
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel", "")
        refusal = self._channel_refusal(channel) or _blocks_refusal(params.get("blocks"))
        if refusal:
            return refusal
        ts = self._next_ts()
        message = {"type": "message", "text": params.get("text", ""), "ts": ts}
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        refusal = self._channel_refusal(params.get("channel", "")) or _blocks_refusal(
            params.get("blocks")
        )
        return refusal or {"ok": True, "message_ts": self._next_ts()}

    def _files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("filename") or not str(params.get("length", "")).isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F0{uuid.uuid4().hex[:9].upper()}"
        self._files[file_id] = {
            "id": file_id,
            "name": params["filename"],
            "length": int(params["length"]),
            "alt_txt": params.get("alt_txt"),
        }
        return {"ok": True, "file_id": file_id, "upload_url": f"{self.url}/upload/{file_id}"}

    def _files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        files = json.loads(params.get("files", "[]"))
        missing = [f["id"] for f in files if f.get("id") not in self.uploads]
        if not files or missing:
            return {"ok": False, "error": "file_not_found"}
        channel = params.get("channel_id")
        refusal = self._channel_refusal(channel) if channel else None
        if refusal:
            return refusal
        done = [
            {**self._files[f["id"]], "title": f.get("title"), "mimetype": "image/png"}
            for f in files
        ]
        return {"ok": True, "files": done}

    def _channel_refusal(self, channel: str) -> dict[str, Any] | None:
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if channel in self.not_member:
            return {"ok": False, "error": "not_in_channel"}
        return None

    def _next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    # -- uploads and response_urls ---------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        body = await request.read()
        await self._record(Call("upload", {"file_id": file_id}, body=body))
        announced = self._files.get(file_id)
        if announced is None:
            return web.Response(status=404, text="unknown upload url")
        if len(body) != announced["length"]:
            return web.Response(status=400, text="length mismatch")
        self.uploads[file_id] = body
        return web.Response(text=f"OK - {len(body)}")

    async def _response_url(self, request: web.Request) -> web.Response:
        payload = await request.json()
        key = request.match_info["key"]
        await self._record(Call("response", {**payload, "key": key}))
        if key in self.expired:
            return web.Response(status=404, text="expired_url")
        problems = check_blocks(payload["blocks"]) if "blocks" in payload else []
        if problems:
            return web.Response(status=400, text="invalid_blocks")
        return web.Response(text="ok")

    # -- Socket Mode -----------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {}})
        self._socket_up.set()
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            ack = json.loads(message.data)
            await self._record(Call("ack", ack))
            future = self._acks.pop(ack.get("envelope_id", ""), None)
            if future is not None and not future.done():
                future.set_result(ack)
        return ws

    async def send_envelope(
        self, payload: dict[str, Any], *, kind: str = "slash_commands", timeout: float = 5.0
    ) -> dict[str, Any]:
        """Deliver ``payload`` over Socket Mode as Slack does; return the app's ack."""
        async with asyncio.timeout(timeout):
            await self._socket_up.wait()
            envelope_id = str(uuid.uuid4())
            self._acks[envelope_id] = asyncio.get_running_loop().create_future()
            await self._sockets[-1].send_json(
                {
                    "envelope_id": envelope_id,
                    "type": kind,
                    "payload": payload,
                    "accepts_response_payload": True,
                    "retry_attempt": 0,
                    "retry_reason": "",
                }
            )
            return await self._acks[envelope_id]


def _error(code: str) -> web.Response:
    return web.json_response({"ok": False, "error": code})


def _blocks_refusal(blocks: Any) -> dict[str, Any] | None:
    if blocks is None:
        return None
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    problems = check_blocks(blocks)
    return {"ok": False, "error": "invalid_blocks", "errors": problems} if problems else None


# -- Block Kit's limits, as Slack enforces them (written apart from bot/platforms) ---------


def check_blocks(blocks: list[dict[str, Any]]) -> list[str]:
    """Every way ``blocks`` break Block Kit's limits (empty: Slack would accept them)."""
    problems: list[str] = []
    if len(blocks) > 50:
        problems.append(f"{len(blocks)} blocks (max 50)")
    for i, block in enumerate(blocks):
        kind = block.get("type")
        where = f"blocks[{i}] ({kind})"
        if kind == "header":
            problems += _check_text(block.get("text"), 150, where, plain=True)
        elif kind == "section":
            fields = block.get("fields", [])
            if "text" not in block and not fields:
                problems.append(f"{where}: needs text or fields")
            if "text" in block:
                problems += _check_text(block["text"], 3000, where)
            if len(fields) > 10:
                problems.append(f"{where}: {len(fields)} fields (max 10)")
            for j, f in enumerate(fields):
                problems += _check_text(f, 2000, f"{where}.fields[{j}]")
        elif kind == "context":
            elements = block.get("elements", [])
            if not 1 <= len(elements) <= 10:
                problems.append(f"{where}: {len(elements)} elements (1..10)")
            for j, element in enumerate(elements):
                problems += _check_text(element, 3000, f"{where}.elements[{j}]")
        else:
            problems.append(f"{where}: unexpected block type")
    return problems


def _check_text(obj: Any, limit: int, where: str, *, plain: bool = False) -> list[str]:
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return [f"{where}: missing text object"]
    if plain and obj.get("type") != "plain_text":
        return [f"{where}: must be plain_text"]
    text = obj["text"]
    if not text.strip():
        return [f"{where}: empty text"]
    if len(text) > limit:
        return [f"{where}: {len(text)} characters (max {limit})"]
    return []


# -- what Slack sends --------------------------------------------------------------------


def slash_command(
    text: str, *, response_url: str, channel_id: str = "C0KPI", user_id: str = "U0ASKER"
) -> dict[str, str]:
    """A ``/kpi`` payload with the fields Slack sends."""
    return {
        "token": "legacy-verification-token",
        "team_id": "T0FAKE",
        "team_domain": "kpibot-fake",
        "channel_id": channel_id,
        "channel_name": "support-leads",
        "user_id": user_id,
        "user_name": "ada",
        "command": "/kpi",
        "text": text,
        "api_app_id": "A0KPI",
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": "1337.42.abcdef",
    }


def form_body(payload: dict[str, str]) -> str:
    return urlencode(payload)


def signed_headers(
    body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """The headers Slack adds: ``v0=`` + HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


def tiny_png(width: int = 4, height: int = 3) -> bytes:
    """A real (decodable) PNG: a small grey-scale ramp, made without matplotlib."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + bytes((x * 60) % 256 for x in range(width)) for _ in range(height))
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
