"""A fake Discord: the REST API (``/api/v10``) and a gateway, on 127.0.0.1.

Enough of Discord for the real discord.py to log in, register slash commands, connect to
the gateway, receive an ``INTERACTION_CREATE``, defer it and follow it up, and to post to
channels and webhooks. Every REST request is recorded (method, path, query, JSON or
multipart parts) for assertions. A 429 can be scripted for any route, shaped like Discord's
(``retry_after`` in the JSON body, ``Retry-After`` and ``Via`` headers).

Payload shapes follow https://discord.com/developers/docs (users, applications, application
commands, interactions, messages, gateway HELLO/READY/dispatch).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

APP_ID = 1100000000000000001
BOT_ID = APP_ID  # a bot user has its application's id
GUILD_ID = 1200000000000000002
CHANNEL_ID = 1300000000000000003
USER_ID = 1400000000000000004
EPOCH = "2026-01-05T09:00:00.000000+00:00"

_snowflakes = itertools.count(1500000000000000000)


@dataclass
class Recorded:
    method: str
    path: str  # without the /api/v10 prefix: "/channels/123/messages"
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None  # the JSON body, or the multipart payload_json
    files: list[Part] = field(default_factory=list)


@dataclass
class Part:
    name: str  # "files[0]"
    filename: str
    content_type: str
    data: bytes


@dataclass
class _Scripted:
    method: str
    path: re.Pattern[str]
    status: int
    body: Any
    headers: dict[str, str]
    times: int


def bot_user() -> dict[str, Any]:
    return {
        "id": str(BOT_ID),
        "username": "kpibot",
        "discriminator": "0",
        "global_name": None,
        "avatar": None,
        "bot": True,
        "flags": 0,
        "mfa_enabled": False,
        "verified": True,
    }


def human_user() -> dict[str, Any]:
    return {
        "id": str(USER_ID),
        "username": "ada",
        "discriminator": "0",
        "global_name": "Ada",
        "avatar": None,
        "public_flags": 0,
    }


def slash_command_interaction(
    query: str | None,
    *,
    interaction_id: int | None = None,
    token: str = "aW50ZXJhY3Rpb246MTIzNDU2",
    autocomplete: bool = False,
) -> dict[str, Any]:
    """An INTERACTION_CREATE for ``/kpi query:<query>`` typed in a server text channel."""
    options = []
    if query is not None:
        option: dict[str, Any] = {"name": "query", "type": 3, "value": query}
        if autocomplete:
            option["focused"] = True
        options.append(option)
    return {
        "id": str(interaction_id or next(_snowflakes)),
        "application_id": str(APP_ID),
        "type": 4 if autocomplete else 2,
        "data": {
            "id": "1600000000000000006",
            "name": "kpi",
            "type": 1,
            "guild_id": str(GUILD_ID),
            "options": options,
        },
        "guild_id": str(GUILD_ID),
        "guild": {"id": str(GUILD_ID), "locale": "en-US", "features": []},
        "channel_id": str(CHANNEL_ID),
        "channel": {
            "id": str(CHANNEL_ID),
            "type": 0,
            "guild_id": str(GUILD_ID),
            "name": "support-kpis",
            "position": 3,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "flags": 0,
        },
        "member": {
            "user": human_user(),
            "roles": [],
            "nick": None,
            "avatar": None,
            "joined_at": EPOCH,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "permissions": "2248473465835073",
        },
        "token": token,
        "version": 1,
        "app_permissions": "2248473465835073",
        "locale": "en-GB",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": str(GUILD_ID)},
        "context": 0,
        "attachment_size_limit": 10485760,
    }


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json", as Discord sends it: discord.py compares the header verbatim.
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


_RECORDED = web.RequestKey("recorded", Recorded)


class FakeDiscord:
    """Start with ``await fake.start()``; point ``DISCORD_API_URL`` at ``fake.api_url``."""

    def __init__(self, *, token: str = "test-bot-token") -> None:
        self.token = token
        self.identify: dict[str, Any] | None = None  # the IDENTIFY payload, once received
        self.requests: list[Recorded] = []
        self.webhook_headers: dict[str, str] = {}  # added to every successful webhook post
        self.close_gateway_with: int | None = None  # a close code to answer IDENTIFY with
        self.identified = asyncio.Event()
        self._scripted: list[_Scripted] = []
        self._sockets: list[web.WebSocketResponse] = []
        self._sequence = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/gateway", self._gateway)
        r = "/api/v10"
        app.router.add_get(r + "/users/@me", self._me)
        app.router.add_get(r + "/oauth2/applications/@me", self._application)
        app.router.add_get(r + "/gateway/bot", self._gateway_bot)
        app.router.add_put(r + "/applications/{app}/commands", self._bulk_commands)
        app.router.add_put(r + "/applications/{app}/guilds/{guild}/commands", self._bulk_commands)
        app.router.add_post(r + "/interactions/{id}/{token}/callback", self._callback)
        app.router.add_post(r + "/webhooks/{id}/{token}", self._execute_webhook)
        app.router.add_delete(r + "/webhooks/{id}/{token}/messages/@original", self._no_content)
        app.router.add_post(r + "/channels/{channel}/messages", self._channel_message)
        self.app = app

    # -- control -------------------------------------------------------------------------

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        for ws in self._sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def fail(
        self,
        method: str,
        path: str,
        *,
        status: int = 429,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests whose path matches the regex ``path`` so."""
        self._scripted.append(
            _Scripted(method, re.compile(path), status, body, headers or {}, times)
        )

    def rate_limit(self, method: str, path: str, *, retry_after: float, times: int = 1) -> None:
        """A 429 as Discord sends it (``Via`` marks it as Discord's, not Cloudflare's)."""
        self.fail(
            method,
            path,
            status=429,
            body={
                "message": "You are being rate limited.",
                "retry_after": retry_after,
                "global": False,
            },
            headers={
                "Retry-After": str(max(1, round(retry_after))),
                "X-RateLimit-Scope": "user",
                "Via": "1.1 google",
            },
            times=times,
        )

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a gateway DISPATCH (op 0) to every connected client."""
        await self.identified.wait()
        for ws in self._sockets:
            await ws.send_str(
                json.dumps({"op": 0, "t": event, "s": next(self._sequence), "d": data})
            )

    async def wait_for(
        self, method: str, path: str, *, count: int = 1, timeout: float = 5.0
    ) -> list[Recorded]:
        """The recorded requests matching, once there are ``count`` of them."""
        pattern = re.compile(path)

        def matching() -> list[Recorded]:
            return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(matching()) >= count), timeout
            )
        return matching()

    def find(self, method: str, path: str) -> list[Recorded]:
        pattern = re.compile(path)
        return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    # -- the middleware: record, then maybe answer as scripted ----------------------------

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/gateway":
            return await handler(request)
        recorded = Recorded(
            method=request.method,
            path=request.path.removeprefix("/api/v10"),
            query=dict(request.query),
            headers=dict(request.headers),
        )
        if request.content_type == "multipart/form-data":
            form = await request.post()
            for name, value in form.items():
                if name == "payload_json":
                    text = value.decode() if isinstance(value, bytes | bytearray) else str(value)
                    recorded.json = json.loads(text)
                elif isinstance(value, web.FileField):
                    recorded.files.append(
                        Part(name, value.filename, value.content_type, value.file.read())
                    )
        elif request.can_read_body:
            raw = await request.read()
            recorded.json = json.loads(raw) if raw else None
        request[_RECORDED] = recorded
        async with self._changed:
            self.requests.append(recorded)
            self._changed.notify_all()
        for scripted in self._scripted:
            if (
                scripted.times > 0
                and scripted.method == request.method
                and scripted.path.search(recorded.path)
            ):
                scripted.times -= 1
                return _json(scripted.body, status=scripted.status, headers=scripted.headers)
        return await handler(request)

    # -- REST ------------------------------------------------------------------------------

    async def _me(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bot {self.token}":
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        return _json(bot_user())

    async def _application(self, request: web.Request) -> web.Response:
        return _json(
            {
                "id": str(APP_ID),
                "name": "kpibot",
                "description": "Customer KPIs",
                "icon": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": human_user(),
                "team": None,
                "verify_key": "0" * 64,
                "flags": 0,
                "summary": "",
                "bot": bot_user(),
            }
        )

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        return _json(
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        )

    async def _bulk_commands(self, request: web.Request) -> web.Response:
        commands = request[_RECORDED].json or []
        guild = request.match_info.get("guild")
        out = []
        for command in commands:
            created = {
                "id": str(next(_snowflakes)),
                "application_id": str(APP_ID),
                "version": str(next(_snowflakes)),
                "default_member_permissions": None,
                "type": 1,
                **command,
            }
            if guild:
                created["guild_id"] = guild
            out.append(created)
        return _json(out)

    async def _callback(self, request: web.Request) -> web.Response:
        body = request[_RECORDED].json or {}
        flags = (body.get("data") or {}).get("flags", 0)
        payload: dict[str, Any] = {
            "interaction": {
                "id": request.match_info["id"],
                "type": 2,
                "response_message_loading": body.get("type") == 5,
                "response_message_ephemeral": bool(flags & 64),
            }
        }
        if request.query.get("with_response") in ("1", "true"):
            return _json(payload)
        return web.Response(status=204)

    async def _execute_webhook(self, request: web.Request) -> web.Response:
        recorded: Recorded = request[_RECORDED]
        message = self._message(
            recorded, channel_id=CHANNEL_ID, webhook_id=request.match_info["id"]
        )
        if request.query.get("wait") in ("true", "1", "True"):
            return _json(message, headers=self.webhook_headers)
        return web.Response(status=204, headers=self.webhook_headers)

    async def _channel_message(self, request: web.Request) -> web.Response:
        recorded: Recorded = request[_RECORDED]
        return _json(self._message(recorded, channel_id=int(request.match_info["channel"])))

    async def _no_content(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    def _message(
        self, recorded: Recorded, *, channel_id: int, webhook_id: str | None = None
    ) -> dict[str, Any]:
        body = recorded.json or {}
        attachments = [
            {
                "id": str(next(_snowflakes)),
                "filename": part.filename,
                "size": len(part.data),
                "url": f"https://cdn.discordapp.com/attachments/{channel_id}/1/{part.filename}",
                "proxy_url": f"https://media.discordapp.net/attachments/{channel_id}/1/{part.filename}",
                "content_type": part.content_type,
            }
            for part in recorded.files
        ]
        message: dict[str, Any] = {
            "id": str(next(_snowflakes)),
            "channel_id": str(channel_id),
            "type": 0 if "message_reference" not in body else 19,
            "content": body.get("content") or "",
            "author": {**bot_user(), "id": webhook_id or str(BOT_ID)},
            "embeds": body.get("embeds", []),
            "attachments": attachments,
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": EPOCH,
            "edited_timestamp": None,
            "flags": body.get("flags", 0),
            "components": [],
        }
        if webhook_id:
            message["webhook_id"] = webhook_id
        if "message_reference" in body:
            message["message_reference"] = {
                **body["message_reference"],
                "channel_id": str(channel_id),
            }
        return message

    # -- the gateway -----------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            if frame["op"] == 1:  # heartbeat
                await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
            elif frame["op"] == 2:  # identify
                self.identify = frame["d"]
                if self.close_gateway_with is not None:  # e.g. 4004: authentication failed
                    await ws.close(code=self.close_gateway_with)
                    break
                await ws.send_json(
                    {
                        "op": 0,
                        "t": "READY",
                        "s": next(self._sequence),
                        "d": {
                            "v": 10,
                            "user": bot_user(),
                            "guilds": [],
                            "session_id": "fake-session",
                            "resume_gateway_url": self.gateway_url,
                            "application": {"id": str(APP_ID), "flags": 0},
                        },
                    }
                )
                self.identified.set()
        self._sockets.remove(ws)
        return ws


def point_gateway_at(url: str) -> str:
    """Make discord.py open its gateway websocket at ``url``; returns the previous URL.

    discord.py 2.6 connects to the class attribute ``DiscordWebSocket.DEFAULT_GATEWAY``
    (it no longer asks ``GET /gateway/bot``). Tests only: production talks to Discord's
    gateway. The canary test fails if discord.py stops reading it.
    """
    import discord.gateway
    import yarl

    previous = str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
    return previous
