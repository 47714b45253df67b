"""Slack: ``/kpi`` over Socket Mode (default) or HTTP, and posts for digests and alerts.

The only module that imports ``slack_bolt``/``slack_sdk``. What it does with a Reply:

- ``/kpi …``: acks at once with an ephemeral "working on it" note (Slack wants an answer
  within 3 s), then awaits the command handler in a task of its own. An ephemeral reply
  replaces the note through the command's ``response_url``; a reply for the channel goes
  out with ``chat.postMessage``, its chart right below with ``files_upload_v2``, and the
  note is deleted. Slack has no ephemeral files, so an ephemeral answer with a chart says
  how to ask for it in the channel.
- :meth:`SlackPlatform.post` (digests, alerts): ``chat.postMessage`` with Block Kit, the
  chart as a threaded reply; returns the thread's ``ts`` for reminders and resolutions.

Slack's limits: a 429 is retried after its ``Retry-After`` (slack-sdk's retry handler);
posts are paced to one per second per channel, the rate Slack allows ``chat.postMessage``.
Refusals (``not_in_channel``, ``channel_not_found``, ``invalid_auth``) are logged in one
line saying what to do, and a ``/kpi`` asker gets the same hint. Tokens are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, Literal

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import ConfigError, PlatformError
from bot.platforms.base import CommandHandler, CommandRequest
from bot.platforms.slack_blocks import escape, fallback_text, render_blocks, truncate
from bot.replies import Reply
from bot.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"
COMMAND = "/kpi"
EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
PACE_SECONDS = 1.0  # chat.postMessage: one message per second per channel
MAX_ALT_TEXT = 1000  # files.getUploadURLExternal's alt_txt limit
DRAIN_SECONDS = 10.0  # how long stop() lets in-flight answers finish

# What Slack's refusal means for the person who asked, and what to do about it.
CHANNEL_HINTS = {
    "not_in_channel": "I'm not a member of this channel. Invite me with {invite} and ask again.",
    "channel_not_found": (
        "I can't see this conversation. In a private channel, invite me with {invite}; "
        "in a direct message, ask without “here”."
    ),
    "is_archived": "This channel is archived, so nothing can be posted in it.",
}
AUTH_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)

Mode = Literal["socket", "http"]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class ChannelPacer:
    """At most one post per ``interval`` seconds per channel; callers wait their turn.

    A slot is reserved before waiting (no await in between), so concurrent posts to one
    channel queue up in order instead of all waking at the same instant.
    """

    def __init__(self, interval: float = PACE_SECONDS, *, clock: Clock, sleep: Sleep) -> None:
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._next_free: dict[str, float] = {}

    async def wait(self, channel: str) -> None:
        now = self._clock()
        at = max(now, self._next_free.get(channel, now))
        self._next_free[channel] = at + self.interval
        if len(self._next_free) > 1000:  # forget channels idle for a while
            self._next_free = {c: t for c, t in self._next_free.items() if t > now}
        if at > now:
            await self._sleep(at - now)


class RateLimitRetry(AsyncRateLimitErrorRetryHandler):
    """slack-sdk's 429 handler (waits ``Retry-After`` plus up to 1 s of jitter), with the
    sleep injected so tests and benchmarks need not wait."""

    def __init__(self, max_retry_count: int = 3, *, sleep: Sleep = asyncio.sleep) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self._sleep = sleep

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        if response is None:
            raise error  # type: ignore[misc]
        state.next_attempt_requested = True
        retry_after = next(
            (v for k, v in response.headers.items() if k.lower() == "retry-after"), None
        )
        try:
            delay = float(retry_after[0]) if retry_after else 1.0
        except ValueError:
            delay = 1.0
        await self._sleep(delay + random.random())
        state.increment_current_attempt()


def _error_code(exc: SlackApiError) -> str:
    return str(exc.response.get("error", "unknown_error"))


def _unreachable(exc: aiohttp.ClientError) -> PlatformError:
    return PlatformError(f"cannot reach the Slack API: {exc}", code="connection")


class _DropTokenNotice(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment by itself and then warns that the
    client we hand it wins: true, intended, and noise in every start-up log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


_BOLT_LOG = logging.getLogger("bot.platforms.slack.bolt")
_BOLT_LOG.addFilter(_DropTokenNotice())


class SlackPlatform:
    """kpibot on Slack. ``mode="socket"`` (``kpibot run``) needs ``SLACK_APP_TOKEN``;
    ``mode="http"`` (``kpibot serve``) needs ``SLACK_SIGNING_SECRET`` and listens on
    ``host:port`` with Slack's requests at ``/slack/events`` and ``GET /healthz``.

    ``clock`` and ``sleep`` drive the per-channel pacing and the 429 waits (tests inject
    them); ``port=0`` binds an ephemeral port, readable from :attr:`port` after start.
    """

    name: ClassVar[str] = "slack"

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> SlackPlatform:
        return cls(settings, **kwargs)

    def __init__(
        self,
        settings: Settings,
        *,
        mode: Mode = "socket",
        host: str = "0.0.0.0",
        port: int = 3000,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        max_rate_limit_retries: int = 3,
    ) -> None:
        bot_token = settings.env("SLACK_BOT_TOKEN")
        if not bot_token:
            raise ConfigError(
                "SLACK_BOT_TOKEN",
                "not set",
                "set it to the app's Bot User OAuth Token (xoxb-…)",
            )
        self.mode = mode
        self._app_token = settings.env("SLACK_APP_TOKEN") or ""
        self._signing_secret = settings.env("SLACK_SIGNING_SECRET") or ""
        if mode == "socket" and not self._app_token.startswith("xapp-"):
            raise ConfigError(
                "SLACK_APP_TOKEN",
                "Socket Mode needs an app-level token (xapp-…)",
                "create one with the connections:write scope under Basic Information, "
                "or run `kpibot serve` (HTTP mode, needs SLACK_SIGNING_SECRET)",
            )
        if mode == "http" and not self._signing_secret:
            raise ConfigError(
                "SLACK_SIGNING_SECRET",
                "HTTP mode cannot verify Slack's requests without it",
                "copy the Signing Secret from the app's Basic Information page",
            )
        api_url = settings.env("SLACK_API_URL") or DEFAULT_API_URL
        retry_handlers: list[AsyncRetryHandler] = [
            AsyncConnectionErrorRetryHandler(),
            RateLimitRetry(max_rate_limit_retries, sleep=sleep),
        ]
        self.client = AsyncWebClient(
            token=bot_token,
            base_url=api_url if api_url.endswith("/") else api_url + "/",
            retry_handlers=retry_handlers,
        )
        self.app = AsyncApp(
            client=self.client,
            # The listener only acks and hands the work to a task of its own (tracked, so
            # stop() can drain it); Bolt's default would poll for the ack every 10 ms.
            process_before_response=True,
            signing_secret=self._signing_secret,
            name="kpibot",
            logger=_BOLT_LOG,
        )
        self.app.command(COMMAND)(self._on_kpi)
        self._pacer = ChannelPacer(clock=clock, sleep=sleep)
        self._host = host
        self._port = port
        self._handler: CommandHandler | None = None
        self._answers: set[asyncio.Task[None]] = set()
        self._socket: AsyncSocketModeHandler | None = None
        self._runner: web.AppRunner | None = None
        self._bot_name = "kpibot"

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port HTTP mode listens on (the real one when started with ``port=0``)."""
        if self._runner is not None:
            for address in self._runner.addresses:
                if isinstance(address, tuple):
                    return int(address[1])
        return self._port

    async def start(self, handler: CommandHandler) -> None:
        """Check the bot token, then connect (Socket Mode) or listen (HTTP); return once up."""
        self._handler = handler
        if self.client.session is None:
            # One connection pool for every Web API call: an answer makes four or five,
            # and without it each opens (and on slack.com, TLS-handshakes) its own.
            self.client.session = aiohttp.ClientSession()
        try:
            await self._introduce()
        except PlatformError:
            await self.stop()
            raise
        if self.mode == "socket":
            self._socket = AsyncSocketModeHandler(self.app, self._app_token)
            await self._socket.connect_async()
            log.info("Slack: connected over Socket Mode as @%s", self._bot_name)
        else:
            self._runner = web.AppRunner(self.web_app(handler), access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, self._host, self._port).start()
            log.info(
                "Slack: listening for /kpi on http://%s:%d%s", self._host, self.port, EVENTS_PATH
            )

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.drain(DRAIN_SECONDS)
        if self.client.session is not None:
            await self.client.session.close()
            self.client.session = None

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the ``/kpi`` answers in flight; cancel those still running at ``timeout``."""
        if not self._answers:
            return
        _, pending = await asyncio.wait(set(self._answers), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def _introduce(self) -> None:
        """auth.test: fail at start-up, in words, when the bot token is wrong."""
        try:
            who = await self.client.auth_test()
        except SlackApiError as exc:
            code = _error_code(exc)
            log.error(
                "Slack rejected SLACK_BOT_TOKEN (%s): check the token, reinstall the app", code
            )
            raise PlatformError(f"Slack rejected SLACK_BOT_TOKEN ({code})", code=code) from None
        except aiohttp.ClientError as exc:
            raise _unreachable(exc) from None
        self._bot_name = str(who.get("user") or self._bot_name)

    # -- HTTP mode ---------------------------------------------------------------------

    def web_app(self, handler: CommandHandler) -> web.Application:
        """An aiohttp app for ``kpibot serve``: POST /slack/events (signed), GET /healthz."""
        self._handler = handler
        app = web.Application()
        app.router.add_post(EVENTS_PATH, self._events)
        app.router.add_get(HEALTH_PATH, self._healthz)
        return app

    async def _events(self, request: web.Request) -> web.Response:
        # Bolt checks the signature and the 5-minute replay window; this only turns a
        # missing or malformed timestamp, which Bolt answers with a 500, into the 401.
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        if not timestamp.isdigit() or not request.headers.get("X-Slack-Signature"):
            log.info("Slack: refused an unsigned request to %s", EVENTS_PATH)
            return web.json_response({"error": "invalid request"}, status=401)
        response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def _healthz(self, request: web.Request) -> web.Response:
        ready = self._handler is not None
        return web.json_response(
            {"status": "ok" if ready else "starting", "platform": self.name, "mode": self.mode},
            status=200 if ready else 503,
        )

    # -- /kpi --------------------------------------------------------------------------

    async def _on_kpi(self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        text = (command.get("text") or "").strip()
        await ack(text=f"⏳ Working on `{escape(f'{COMMAND} {text}'.strip())}`…")
        request = CommandRequest(
            text=text,
            platform=self.name,
            channel_id=command.get("channel_id", ""),
            user_id=command.get("user_id", ""),
            user_name=command.get("user_name", ""),
        )
        task = asyncio.create_task(self._answer(request, respond))
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    async def _answer(self, request: CommandRequest, respond: AsyncRespond) -> None:
        try:
            reply = await self._ask(request)
            if reply.ephemeral:
                await self._respond(respond, request, reply, notes=self._chart_note(reply, request))
            else:
                await self._answer_in_channel(request, reply, respond)
        except Exception:
            log.exception("Slack: could not deliver the answer to /kpi %s", request.text)

    async def _ask(self, request: CommandRequest) -> Reply:
        if self._handler is None:
            return Reply(
                title="kpibot is starting",
                kind="error",
                text="Try again in a moment.",
                ephemeral=True,
            )
        try:
            return await self._handler(request)
        except Exception:
            log.exception("/kpi %s failed in %s", request.text, request.channel_id)
            return Reply(
                title="Something went wrong",
                kind="error",
                text=f"kpibot could not answer `{COMMAND} {request.text}`; its log says why.",
                ephemeral=True,
            )

    async def _answer_in_channel(
        self, request: CommandRequest, reply: Reply, respond: AsyncRespond
    ) -> None:
        channel = request.channel_id
        # Slack shows nobody the command itself: say who asked what, without an @-mention.
        asked = f"{request.user_name or 'someone'} asked: {COMMAND} {request.text}"
        try:
            await self._post_message(channel, reply, notes=(asked,))
        except SlackApiError as exc:
            # Not posted: the asker still gets the answer, privately, and how to fix it.
            hint = self._refusal(exc, "chat.postMessage", channel)
            await self._respond(respond, request, reply, notes=(hint,))
            return
        if reply.chart is not None:
            try:
                await self._upload_chart(channel, reply)
            except SlackApiError as exc:
                hint = self._refusal(exc, "files.completeUploadExternal", channel)
                await respond(
                    text=f"The chart could not be posted: {hint}",
                    response_type="ephemeral",
                    replace_original=True,
                )
                return
        await respond(delete_original=True)  # the "working on it" note

    def _chart_note(self, reply: Reply, request: CommandRequest) -> tuple[str, ...]:
        if reply.chart is None or request.text.split()[-1:] == ["here"]:
            return ()
        return (
            f"📈 Charts come with answers shared in the channel: {COMMAND} {request.text} here",
        )

    async def _respond(
        self,
        respond: AsyncRespond,
        request: CommandRequest,
        reply: Reply,
        *,
        notes: Sequence[str] = (),
    ) -> None:
        """Reply to the asker only, replacing the "working on it" note."""
        text, blocks = fallback_text(reply), render_blocks(reply, notes=notes)
        response = await respond(
            text=text, blocks=blocks, response_type="ephemeral", replace_original=True
        )
        if response.status_code == 200:
            return
        # A response_url lasts 30 minutes and 5 uses; past that, chat.postEphemeral.
        log.warning(
            "Slack: response_url refused the reply (HTTP %s); trying chat.postEphemeral",
            response.status_code,
        )
        try:
            await self.client.chat_postEphemeral(
                channel=request.channel_id, user=request.user_id, text=text, blocks=blocks
            )
        except SlackApiError as exc:
            self._refusal(exc, "chat.postEphemeral", request.channel_id)

    # -- posts -------------------------------------------------------------------------

    async def post(self, target: str, reply: Reply, *, thread_ref: str | None = None) -> str | None:
        """Post ``reply`` to ``target`` (a channel id, ``slack:`` prefix optional).

        The chart follows as a reply in the message's thread. Returns the thread's ``ts``
        (``thread_ref`` when given) to thread reminders and resolutions under. Raises
        :class:`PlatformError` when Slack refuses the message; a refused chart is logged
        only, since the message is already out.
        """
        channel = target.removeprefix("slack:")
        try:
            ts = await self._post_message(channel, reply, thread_ts=thread_ref)
        except SlackApiError as exc:
            code = _error_code(exc)
            hint = self._refusal(exc, "chat.postMessage", channel)
            raise PlatformError(f"Slack refused the post to {channel}: {hint}", code=code) from None
        except aiohttp.ClientError as exc:
            raise _unreachable(exc) from None
        root = thread_ref or ts
        if reply.chart is not None:
            try:
                await self._upload_chart(channel, reply, thread_ts=root)
            except SlackApiError as exc:
                self._refusal(exc, "files.completeUploadExternal", channel)
            except aiohttp.ClientError as exc:
                log.warning("Slack: the chart for %s was not uploaded: %s", channel, exc)
        return root

    async def _post_message(
        self,
        channel: str,
        reply: Reply,
        *,
        thread_ts: str | None = None,
        notes: Sequence[str] = (),
    ) -> str:
        await self._pacer.wait(channel)
        response = await self.client.chat_postMessage(
            channel=channel,
            text=fallback_text(reply),
            blocks=render_blocks(reply, notes=notes),
            thread_ts=thread_ts,
            unfurl_links=False,
            unfurl_media=False,
        )
        return str(response["ts"])

    async def _upload_chart(
        self, channel: str, reply: Reply, *, thread_ts: str | None = None
    ) -> None:
        assert reply.chart is not None
        await self.client.files_upload_v2(
            channel=channel,
            file=reply.chart.png,
            filename=reply.chart.filename,
            title=reply.title,
            alt_txt=truncate(reply.chart.alt_text, MAX_ALT_TEXT),
            thread_ts=thread_ts,
        )

    def _refusal(self, exc: SlackApiError, method: str, channel: str) -> str:
        """Log why Slack refused ``method`` in one line; return the hint for a person."""
        code = _error_code(exc)
        invite = f"/invite @{self._bot_name}"
        if code in AUTH_ERRORS:
            log.error(
                "Slack: %s refused (%s): check SLACK_BOT_TOKEN, reinstall the app", method, code
            )
            return "Slack rejected kpibot's token; an admin needs to check SLACK_BOT_TOKEN."
        if code == "missing_scope":
            needed = exc.response.get("needed", "?")
            log.error(
                "Slack: %s needs the scope %s: reinstall the app from its manifest", method, needed
            )
            return f"kpibot lacks the Slack permission {needed}; reinstall it from its manifest."
        hint = CHANNEL_HINTS.get(code, "Slack refused it ({code}).").format(
            code=code, invite=invite
        )
        log.warning("Slack: %s in %s refused (%s): %s", method, channel, code, hint)
        return hint
