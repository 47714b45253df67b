"""Discord: the ``/kpi`` slash command, and digests and alerts posted to channels.

Two ways to post, chosen per target (a digest's or alert rule's ``channel`` without its
``discord:`` prefix):

``"123456789012345678"``
    A channel id. The bot posts through Discord's REST API with its token; no gateway
    connection is needed, so ``kpibot digest`` can post without ``kpibot run``. A
    ``thread_ref`` (a message id this method returned) makes the post a reply to it.
``"webhook"`` / ``"webhook:<name>"``
    A channel webhook, for teams that prefer not to run a bot: ``DISCORD_WEBHOOK_URL``, or
    ``DISCORD_<NAME>_WEBHOOK_URL`` for a named one. Webhook URLs carry their token, so they
    are secrets: they are never logged or put in an exception, only named by target. A
    webhook cannot reply to a message, so ``thread_ref`` is ignored there (a webhook URL
    with ``?thread_id=…`` posts into that thread instead).

Interactions arrive over the gateway (``start``): the command is acknowledged with a
deferral at once, the handler runs, and the reply follows as an embed with the chart
attached (``attachment://chart.png``).

Every request goes to ``DISCORD_API_URL`` (default ``https://discord.com/api/v10``),
webhooks included, so a proxy or a test server sees all of it. discord.py builds its URLs
from the class attribute ``discord.http.Route.BASE``; :func:`point_rest_api_at` is the one
place that sets it, and ``tests/platforms/test_discord_canary.py`` fails if discord.py
stops building URLs that way.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self

import aiohttp
import discord
from discord import app_commands

from bot.errors import ConfigError, PlatformError
from bot.platforms.base import CommandHandler, CommandRequest
from bot.replies import TONE_MARK, Reply, Tone, mark_change, text_sections

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://discord.com/api/v10"

# Okabe–Ito colours, distinguishable with the common colour-vision deficiencies; the ▲/▼
# in the comparison carries the direction too, so colour is never the only signal.
TONE_COLOURS: dict[Tone, int] = {
    Tone.GOOD: 0x009E73,  # bluish green
    Tone.BAD: 0xD55E00,  # vermillion
    Tone.NEUTRAL: 0x5865F2,  # Discord blurple
}

# Discord's embed limits (characters); a request over any of them is refused with a 400.
_TITLE_MAX, _DESCRIPTION_MAX, _FOOTER_MAX, _TOTAL_MAX = 256, 4096, 2048, 6000
_FIELDS_MAX, _FIELD_NAME_MAX, _FIELD_VALUE_MAX = 25, 256, 1024
_CHOICES_MAX, _CHOICE_MAX = 25, 100  # autocomplete: choices per answer, characters per choice

_SIGNED = frozenset("🚨🔔✅⚠⏰")  # alert titles that start with their own sign

# A rate limit longer than this is an outage, not a pause: give up and say so.
_MAX_RETRY_AFTER = 60.0
_WEBHOOK_ATTEMPTS = 5
# Interaction tokens live 15 minutes; answer with an error well before that.
_HANDLER_TIMEOUT = 600.0

# https://discord.com/api/webhooks/123456789012345678/AbC-dEf_123 (any host: proxies,
# canary.discord.com; an optional /v10 after /api; an optional ?thread_id=…)
_WEBHOOK_URL = re.compile(
    r"^https?://[^/\s]+/api(?:/v\d+)?/webhooks/(?P<id>\d+)/(?P<token>[A-Za-z0-9_.-]+)/?"
    r"(?:\?(?P<query>\S*))?$"
)
_WEBHOOK_NAME = re.compile(r"^[A-Za-z0-9_]+$")  # webhook:alerts → DISCORD_ALERTS_WEBHOOK_URL
_SNOWFLAKE = re.compile(r"^\d{1,20}$")  # 123456789012345678

# What the bot needs where it posts (docs/discord.md explains each): 117760.
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,  # replying to an earlier alert needs it
)
INVITE_SCOPES = ("bot", "applications.commands")

KpiNames = Callable[[], Iterable[str]]
Sleep = Callable[[float], Awaitable[None]]


# -- rendering ---------------------------------------------------------------------------


def render_embed(reply: Reply) -> dict[str, Any]:
    """The Discord embed for ``reply``, as the JSON Discord takes, within Discord's limits."""
    lines: list[str] = []
    if reply.headline:
        lines.append(f"**{reply.headline}**")
    if reply.comparison:
        lines.append(reply.comparison)
    text = reply.text or ""
    sections: list[tuple[str, str]] = []
    if reply.kind == "digest":  # sections go below the figures, as fields of their own
        text, sections = text_sections(text)
    if text:
        if lines:
            lines.append("")
        lines.append(text)
    embed: dict[str, Any] = {
        "title": _clip(reply.title, _TITLE_MAX),
        "color": TONE_COLOURS[reply.tone],
    }
    if lines:
        embed["description"] = _clip("\n".join(lines), _DESCRIPTION_MAX)
    if reply.context:
        # A footer is plain text: Discord would show "Rule `frt-high`" with its backticks.
        footer = " · ".join(reply.context).replace("`", "")
        embed["footer"] = {"text": _clip(footer, _FOOTER_MAX)}
    if reply.chart is not None:
        embed["image"] = {"url": f"attachment://{chart_filename(reply)}"}
    # The embed's colour is the reply's tone; a field with a tone of its own (a digest's
    # KPIs, better or worse each) says so as on Slack, by its change.
    fields = [
        {
            "name": _clip(f.label, _FIELD_NAME_MAX) or "\u200b",  # an empty name is refused
            "value": _clip(mark_change(f.value, TONE_MARK[f.tone]), _FIELD_VALUE_MAX) or "\u200b",
            "inline": len(f.value) <= 40,
        }
        for f in reply.fields
    ]
    fields += [
        {
            "name": _clip(title, _FIELD_NAME_MAX),
            "value": _clip(body, _FIELD_VALUE_MAX) or "\u200b",
            "inline": False,
        }
        for title, body in sections
    ]
    _fit(embed, fields)
    return embed


def notification_text(reply: Reply) -> str | None:
    """Message text beside the embed: an alert's title, so a phone notification says it."""
    if reply.kind != "alert":
        return None
    # "🚨 Alert: …", "✅ Resolved: …" carry their own sign; a bell before them would be two.
    return _clip(reply.title if reply.title[:1] in _SIGNED else f"🔔 {reply.title}", 2000)


def chart_filename(reply: Reply) -> str:
    """The attachment name: Discord matches ``attachment://`` on it, so keep it plain."""
    name = reply.chart.filename if reply.chart else "chart.png"
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip("._") or "chart"
    return name if name.lower().endswith(".png") else name + ".png"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _embed_size(embed: dict[str, Any]) -> int:
    size = len(embed.get("title", "")) + len(embed.get("description", ""))
    size += len(embed.get("footer", {}).get("text", ""))
    return size + sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))


def _fit(embed: dict[str, Any], fields: list[dict[str, Any]]) -> None:
    """Add as many fields as fit (25, 6000 characters in all), then "and N more"."""
    kept = fields[:_FIELDS_MAX]
    while True:
        hidden = len(fields) - len(kept)
        shown = [*kept, {"name": "…", "value": f"and {hidden} more", "inline": False}]
        embed["fields"] = kept if not hidden else shown
        if (_embed_size(embed) <= _TOTAL_MAX and len(embed["fields"]) <= _FIELDS_MAX) or not kept:
            break
        kept = kept[:-1]
    if not embed["fields"]:
        del embed["fields"]
    over = _embed_size(embed) - _TOTAL_MAX
    if over > 0 and "description" in embed:  # a very long help text
        embed["description"] = _clip(embed["description"], max(len(embed["description"]) - over, 1))


def suggest_queries(current: str, kpi_names: Iterable[str]) -> list[str]:
    """Autocomplete for the ``query`` option: KPI names while the first word is typed.

    ``"np"`` → ``["nps"]``; past the first word the typed text is offered back unchanged
    (Discord accepts free text either way, this just keeps it visible).
    """
    typed = current.lstrip()
    if " " in typed:
        return [typed[:_CHOICE_MAX]]
    word = typed.lower()
    by_folded: dict[str, str] = {}
    for name in kpi_names:
        if name:
            by_folded.setdefault(name.lower(), name)  # "NPS" after "nps" adds nothing
    names = list(by_folded.values())
    starts = [n for n in names if n.lower().startswith(word)]
    contains = [n for n in names if word in n.lower() and n not in starts]
    return [n[:_CHOICE_MAX] for n in (starts + contains)[:_CHOICES_MAX]]


# -- targets -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    """A channel webhook parsed from its URL; ``repr`` and ``str`` never show the token."""

    label: str  # "webhook" or "webhook:alerts": how logs and errors name it
    env_var: str
    id: str
    token: str
    thread_id: str | None = None

    def __repr__(self) -> str:
        return f"Webhook({self.label!r}, id={self.id})"

    __str__ = __repr__

    @classmethod
    def parse(cls, url: str, *, label: str, env_var: str) -> Webhook:
        match = _WEBHOOK_URL.match(url.strip())
        if match is None:
            raise ConfigError(
                env_var,
                "not a Discord webhook URL",
                "copy it from the channel's Integrations → Webhooks → Copy Webhook URL "
                "(https://discord.com/api/webhooks/<id>/<token>)",
            )
        thread_id = None
        for pair in (match["query"] or "").split("&"):
            key, _, value = pair.partition("=")
            if key == "thread_id" and _SNOWFLAKE.match(value):
                thread_id = value
        return cls(label, env_var, match["id"], match["token"], thread_id)


def webhook_env_var(name: str | None) -> str:
    """``None`` → ``DISCORD_WEBHOOK_URL``; ``"alerts"`` → ``DISCORD_ALERTS_WEBHOOK_URL``."""
    return "DISCORD_WEBHOOK_URL" if not name else f"DISCORD_{name.upper()}_WEBHOOK_URL"


def webhooks_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Webhook URLs by target name ("" for the default) from ``DISCORD_…WEBHOOK_URL``."""
    out: dict[str, str] = {}
    for key, value in environ.items():
        if not value or not key.startswith("DISCORD_") or not key.endswith("WEBHOOK_URL"):
            continue
        middle = key.removeprefix("DISCORD_").removesuffix("WEBHOOK_URL").strip("_")
        out[middle.lower()] = value
    return out


def parse_guild_ids(text: str | None, *, env_var: str = "DISCORD_GUILD_IDS") -> tuple[int, ...]:
    """``"123, 456"`` → ``(123, 456)``: the servers the command is registered in at once."""
    ids: list[int] = []
    for part in re.split(r"[\s,]+", text or ""):
        if not part:
            continue
        if not _SNOWFLAKE.match(part):
            raise ConfigError(
                env_var,
                f"{part!r} is not a server id",
                "list numeric server ids separated by commas (Discord: Developer Mode on, "
                "right-click the server → Copy Server ID)",
            )
        ids.append(int(part))
    return tuple(dict.fromkeys(ids))


def invite_url(application_id: int | str) -> str:
    """The link a server admin opens to add the bot with the scopes and permissions it needs."""
    return (
        f"https://discord.com/oauth2/authorize?client_id={application_id}"
        f"&scope={'+'.join(INVITE_SCOPES)}&permissions={INVITE_PERMISSIONS.value}"
    )


# -- the REST base URL -------------------------------------------------------------------


def point_rest_api_at(base_url: str) -> str:
    """Make discord.py send every REST request (bot, interaction, webhook) to ``base_url``.

    Returns the previous base so it can be restored. discord.py reads the class attribute
    ``Route.BASE`` when it builds each request; one process runs one Discord client, so a
    process-wide setting is what we want.
    """
    previous = discord.http.Route.BASE
    discord.http.Route.BASE = base_url.rstrip("/")
    return previous


# -- the platform ------------------------------------------------------------------------


class DiscordPlatform:
    """The Discord adapter: ``/kpi`` over the gateway, posts over REST or webhooks."""

    name: ClassVar[str] = "discord"

    def __init__(
        self,
        *,
        token: str | None,
        api_url: str = DEFAULT_API_URL,
        guild_ids: Sequence[int] = (),
        webhooks: Mapping[str, str] | None = None,
        kpi_names: KpiNames | None = None,
        answers_ephemeral: bool = True,
        sync_commands: bool = True,
        connect_timeout: float = 30.0,
        handler_timeout: float = _HANDLER_TIMEOUT,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """
        ``webhooks`` maps a target name ("" for the default ``"webhook"`` target) to a
        webhook URL; ``kpi_names`` returns KPI names and aliases for autocomplete;
        ``answers_ephemeral`` is how a command is deferred (the usual visibility of an
        answer); ``sleep`` is awaited for webhook rate limits (tests inject their own).
        """
        if not api_url.startswith(("http://", "https://")):
            raise ConfigError(
                "DISCORD_API_URL", f"{api_url!r} is not an http(s) URL", "use e.g. https://…"
            )
        self.token = token.strip() if token else None
        self.api_url = api_url.rstrip("/")
        self.guild_ids = tuple(guild_ids)
        self.webhooks = {
            (name or ""): Webhook.parse(
                url,
                label=f"webhook:{name}" if name else "webhook",
                env_var=webhook_env_var(name),
            )
            for name, url in (webhooks or {}).items()
        }
        self.kpi_names = kpi_names or (lambda: ())
        self.answers_ephemeral = answers_ephemeral
        self.sync_commands = sync_commands
        self.connect_timeout = connect_timeout
        self.handler_timeout = handler_timeout
        self._sleep = sleep
        self._handler: CommandHandler | None = None
        self._previous_base: str | None = None
        self._login_lock = asyncio.Lock()
        self._logged_in = False
        self._connected = asyncio.Event()
        self._gateway: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._webhook_locks: dict[str, asyncio.Lock] = {}
        self.client = _KpiClient(self)
        self.tree = self._build_tree()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        kpi_names: KpiNames | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> DiscordPlatform:
        """Build from :class:`bot.settings.Settings` (and the environment for what it lacks).

        Reads ``DISCORD_BOT_TOKEN``, ``DISCORD_API_URL``, ``DISCORD_GUILD_IDS``,
        ``DISCORD_WEBHOOK_URL`` and ``DISCORD_<NAME>_WEBHOOK_URL``.
        """
        env = os.environ if environ is None else environ

        def value(name: str) -> str | None:
            return settings.env(name) or env.get(name) or None

        webhooks = webhooks_from_env(env)
        if value("DISCORD_WEBHOOK_URL"):
            webhooks[""] = value("DISCORD_WEBHOOK_URL") or ""
        return cls(
            token=value("DISCORD_BOT_TOKEN"),
            api_url=value("DISCORD_API_URL") or DEFAULT_API_URL,
            guild_ids=parse_guild_ids(value("DISCORD_GUILD_IDS")),
            webhooks=webhooks,
            kpi_names=kpi_names,
            answers_ephemeral=settings.config.bot.answers == "ephemeral",
        )

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, handler: CommandHandler) -> None:
        """Log in, register ``/kpi``, connect to the gateway; return once connected."""
        if self._gateway is not None:
            raise RuntimeError("DiscordPlatform.start() was already called")
        self._handler = handler
        await self._login()
        if self.sync_commands:
            await self._sync_commands()
        self._gateway = asyncio.create_task(
            self.client.connect(reconnect=True), name="discord-gateway"
        )
        self._gateway.add_done_callback(self._gateway_ended)
        connected = asyncio.create_task(self._connected.wait())
        try:
            done, _ = await asyncio.wait(
                {self._gateway, connected},
                timeout=self.connect_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            connected.cancel()
        if self._gateway in done:
            exc = None if self._gateway.cancelled() else self._gateway.exception()
            why = f"{type(exc).__name__}: {exc}" if exc else "closed"
            raise PlatformError(
                f"discord: the gateway connection ended at start ({why})", code="gateway"
            ) from None
        if not done:
            log.warning(
                "discord: not connected to the gateway after %.0fs; still trying",
                self.connect_timeout,
            )
        else:
            log.info("discord: connected; /kpi registered in %s", self._where_registered())
        if self.client.application_id is not None:
            log.info("discord: invite the bot with %s", invite_url(self.client.application_id))

    async def stop(self) -> None:
        """Disconnect and close every connection; safe to call twice or without start."""
        if not self.client.is_closed():
            await self.client.close()
        if self._gateway is not None:
            with suppress(asyncio.CancelledError, Exception):
                await self._gateway
            self._gateway = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._previous_base is not None:
            discord.http.Route.BASE = self._previous_base
            self._previous_base = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def validate_target(self, target: str) -> None:
        """Raise :class:`ConfigError` if ``target`` cannot be posted to (call at start-up)."""
        self._resolve(target)

    # -- posting -------------------------------------------------------------------------

    async def post(self, target: str, reply: Reply, *, thread_ref: str | None = None) -> str | None:
        """Post ``reply`` to a channel id or webhook target; return the message id."""
        where = self._resolve(target)
        if isinstance(where, Webhook):
            if thread_ref:
                log.debug("discord: %s cannot reply to a message; posting on its own", where)
            return await self._post_webhook(where, reply)
        return await self._post_channel(where, reply, thread_ref)

    def _resolve(self, target: str) -> Webhook | int:
        name = target.strip().removeprefix("discord:")
        if _SNOWFLAKE.match(name):
            if self.token is None:
                raise ConfigError(
                    "DISCORD_BOT_TOKEN",
                    f"posting to channel {name} needs the bot token",
                    "set DISCORD_BOT_TOKEN, or post through a webhook target (discord:webhook)",
                )
            return int(name)
        kind, _, hook = name.partition(":")
        if kind == "webhook" and (not hook or _WEBHOOK_NAME.match(hook)):
            found = self.webhooks.get(hook.lower())
            if found is None:
                raise ConfigError(
                    webhook_env_var(hook or None),
                    f"the target discord:{name} has no webhook URL",
                    f"set {webhook_env_var(hook or None)} to the channel's webhook URL",
                )
            return found
        raise ConfigError(
            "channel",
            f"{target!r} is not a Discord target",
            "use discord:<channel id>, discord:webhook or discord:webhook:<name>",
        )

    async def _post_channel(self, channel_id: int, reply: Reply, thread_ref: str | None) -> str:
        await self._login()
        channel = self.client.get_partial_messageable(channel_id)
        kwargs = _message_kwargs(reply)
        if thread_ref and _SNOWFLAKE.match(thread_ref):
            kwargs["reference"] = discord.MessageReference(
                message_id=int(thread_ref), channel_id=channel_id, fail_if_not_exists=False
            )
        try:
            message = await channel.send(**kwargs)
        except discord.Forbidden as exc:
            raise PlatformError(
                f"discord: the bot may not post in channel {channel_id} "
                f"({exc.text or exc.status}); give it View Channel, Send Messages, "
                "Embed Links and Attach Files there",
                code="forbidden",
            ) from None
        except discord.NotFound as exc:
            raise PlatformError(
                f"discord: channel {channel_id} not found ({exc.text or exc.status}); "
                "check the id and that the bot is in that server",
                code="unknown_channel",
            ) from None
        except discord.RateLimited as exc:
            raise PlatformError(
                f"discord: rate limited for {exc.retry_after:.0f}s posting to {channel_id}",
                code="rate_limited",
            ) from None
        except discord.HTTPException as exc:
            raise PlatformError(
                f"discord: posting to channel {channel_id} failed: {exc.status} {exc.text}",
                code=str(exc.code or exc.status),
            ) from None
        return str(message.id)

    async def _post_webhook(self, hook: Webhook, reply: Reply) -> str | None:
        """Execute a channel webhook, waiting out 429s as Discord's ``retry_after`` says."""
        session = self._http_session()
        url = f"{self.api_url}/webhooks/{hook.id}/{hook.token}"
        params = {"wait": "true"}
        if hook.thread_id:
            params["thread_id"] = hook.thread_id
        payload = _webhook_payload(reply)
        lock = self._webhook_locks.setdefault(hook.id, asyncio.Lock())
        async with lock:  # one request at a time per webhook: its rate limit is shared
            for attempt in range(1, _WEBHOOK_ATTEMPTS + 1):
                try:
                    async with session.post(
                        url, data=_webhook_form(reply, payload), params=params
                    ) as response:
                        status = response.status
                        body = await _json_or_none(response)
                        headers = response.headers
                except (aiohttp.ClientError, TimeoutError) as exc:
                    # aiohttp puts the URL (with the token) in some messages: name the type only.
                    if attempt == _WEBHOOK_ATTEMPTS:
                        raise PlatformError(
                            f"discord: {hook} could not be reached ({type(exc).__name__})",
                            code="unreachable",
                        ) from None
                    await self._sleep(min(2.0**attempt, 30.0))
                    continue
                if 200 <= status < 300:
                    await self._respect_bucket(headers)
                    return str(body["id"]) if isinstance(body, dict) and "id" in body else None
                if status == 429:
                    delay = _retry_after(body, headers)
                    if delay > _MAX_RETRY_AFTER or attempt == _WEBHOOK_ATTEMPTS:
                        raise PlatformError(
                            f"discord: {hook} is rate limited for {delay:.1f}s; giving up",
                            code="rate_limited",
                        )
                    log.warning("discord: %s rate limited; retrying in %.2fs", hook, delay)
                    await self._sleep(delay)
                    continue
                if status >= 500 and attempt < _WEBHOOK_ATTEMPTS:
                    await self._sleep(min(2.0**attempt, 30.0))
                    continue
                raise _webhook_error(hook, status, body)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _respect_bucket(self, headers: Mapping[str, str]) -> None:
        # An exhausted bucket: wait before the lock lets the next post to this webhook go.
        if headers.get("X-RateLimit-Remaining") == "0":
            with suppress(ValueError):
                delay = float(headers.get("X-RateLimit-Reset-After", "0"))
                if 0 < delay <= _MAX_RETRY_AFTER:
                    await self._sleep(delay)

    def _http_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=30),
                headers={"User-Agent": "kpibot (https://github.com/kpibot, 0.1)"},
            )
        return self._session

    # -- logging in and the command ------------------------------------------------------

    async def _login(self) -> None:
        async with self._login_lock:
            if self._logged_in:
                return
            if self.token is None:
                raise ConfigError(
                    "DISCORD_BOT_TOKEN",
                    "the Discord bot needs its token",
                    "copy it from the Developer Portal → your application → Bot → Reset Token",
                )
            if self._previous_base is None:
                self._previous_base = point_rest_api_at(self.api_url)
            try:
                await self.client.login(self.token)
            except discord.LoginFailure:
                raise ConfigError(
                    "DISCORD_BOT_TOKEN",
                    "Discord refused the bot token",
                    "reset it in the Developer Portal → Bot and update the environment",
                ) from None
            self._logged_in = True
            log.info(
                "discord: logged in as %s (application %s)",
                self.client.user,
                self.client.application_id,
            )

    async def _sync_commands(self) -> None:
        try:
            if not self.guild_ids:
                await self.tree.sync()
                return
            for guild_id in self.guild_ids:
                await self.tree.sync(guild=discord.Object(id=guild_id))
        except discord.Forbidden:
            raise PlatformError(
                "discord: may not register /kpi in a server listed in DISCORD_GUILD_IDS; "
                "invite the bot with the applications.commands scope (see docs/discord.md in the kpibot repository)",
                code="forbidden",
            ) from None

    def _where_registered(self) -> str:
        return (
            f"servers {', '.join(map(str, self.guild_ids))}" if self.guild_ids else "every server"
        )

    def _gateway_ended(self, task: asyncio.Task[None]) -> None:
        self._connected.clear()
        if not task.cancelled() and task.exception() is not None and not self.client.is_closed():
            exc = task.exception()
            log.error("discord: the gateway connection ended: %s: %s", type(exc).__name__, exc)

    def _build_tree(self) -> app_commands.CommandTree[Any]:
        tree: app_commands.CommandTree[Any] = app_commands.CommandTree(self.client)
        platform = self

        @app_commands.command(name="kpi", description="A KPI: the figure, a comparison and a chart")
        @app_commands.describe(query="e.g. nps last 30d · frt p90 by week · help")
        @app_commands.guild_only()
        async def kpi(interaction: discord.Interaction, query: str = "") -> None:
            await platform._answer(interaction, query)

        @kpi.autocomplete("query")
        async def complete(interaction: discord.Interaction, current: str) -> list[Any]:
            return platform._complete(current)

        if self.guild_ids:
            tree.add_command(kpi, guilds=[discord.Object(id=g) for g in self.guild_ids])
        else:
            tree.add_command(kpi)
        return tree

    def _complete(self, current: str) -> list[app_commands.Choice[str]]:
        try:
            names = list(self.kpi_names())
        except Exception:
            log.exception("discord: the KPI names for autocomplete failed")
            return []
        return [app_commands.Choice(name=s, value=s) for s in suggest_queries(current, names)]

    async def _answer(self, interaction: discord.Interaction, query: str) -> None:
        """Defer at once (Discord allows 3 s), run the handler, follow up with the reply."""
        deferred_ephemeral = self.answers_ephemeral
        try:
            await interaction.response.defer(ephemeral=deferred_ephemeral, thinking=True)
        except discord.HTTPException as exc:
            log.warning(
                "discord: /kpi was not acknowledged in time (%s %s); the user sees an error",
                exc.status,
                exc.code,
            )
            return
        request = CommandRequest(
            text=query.strip(),
            platform=self.name,
            channel_id=str(interaction.channel_id or ""),
            user_id=str(interaction.user.id),
            user_name=interaction.user.name,
        )
        reply = await self._run_handler(request)
        await self._follow_up(interaction, reply, deferred_ephemeral)

    async def _run_handler(self, request: CommandRequest) -> Reply:
        if self._handler is None:
            return _failure("kpibot is starting up; try again in a moment.")
        try:
            async with asyncio.timeout(self.handler_timeout):
                return await self._handler(request)
        except TimeoutError:
            log.error("discord: /kpi %r took longer than %.0fs", request.text, self.handler_timeout)
            return _failure("That took too long to work out. Try a shorter window.")
        except Exception:  # whatever broke, the user gets an answer and we get the traceback
            log.exception("discord: /kpi %r failed", request.text)
            return _failure("Something went wrong answering that. The error has been logged.")

    async def _follow_up(
        self, interaction: discord.Interaction, reply: Reply, deferred_ephemeral: bool
    ) -> None:
        if reply.ephemeral != deferred_ephemeral:
            # The first follow-up replaces the "thinking…" message and keeps the deferral's
            # visibility; delete that message so the reply gets the visibility it asks for.
            with suppress(discord.HTTPException):
                await interaction.delete_original_response()
        try:
            await interaction.followup.send(
                **_message_kwargs(reply), ephemeral=reply.ephemeral, wait=True
            )
        except discord.HTTPException as exc:
            log.error("discord: the /kpi reply was refused: %s %s", exc.status, exc.text)


class _KpiClient(discord.Client):
    """discord.Client with the intents kpibot needs (none privileged) and a connect signal."""

    def __init__(self, platform: DiscordPlatform) -> None:
        super().__init__(
            intents=discord.Intents(guilds=True),
            max_messages=None,  # no message cache: kpibot never reads messages
            max_ratelimit_timeout=_MAX_RETRY_AFTER,
            chunk_guilds_at_startup=False,
        )
        self._platform = platform

    async def on_connect(self) -> None:
        self._platform._connected.set()


# -- helpers -----------------------------------------------------------------------------


def _failure(text: str) -> Reply:
    return Reply(title="kpibot", kind="error", text=text, ephemeral=True)


def _message_kwargs(reply: Reply) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "embed": discord.Embed.from_dict(render_embed(reply)),
        "allowed_mentions": discord.AllowedMentions.none(),  # data never pings anyone
    }
    if notification_text(reply):
        kwargs["content"] = notification_text(reply)
    if reply.chart is not None:
        kwargs["file"] = discord.File(
            io.BytesIO(reply.chart.png),
            filename=chart_filename(reply),
            description=_clip(reply.chart.alt_text, 1024) or None,
        )
    return kwargs


def _webhook_payload(reply: Reply) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "embeds": [render_embed(reply)],
        "allowed_mentions": {"parse": []},
    }
    if notification_text(reply):
        payload["content"] = notification_text(reply)
    if reply.chart is not None:
        attachment: dict[str, Any] = {"id": 0, "filename": chart_filename(reply)}
        if reply.chart.alt_text:
            attachment["description"] = _clip(reply.chart.alt_text, 1024)
        payload["attachments"] = [attachment]
    return payload


def _webhook_form(reply: Reply, payload: dict[str, Any]) -> aiohttp.FormData:
    # A fresh form per attempt: aiohttp consumes it when sending.
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("payload_json", json.dumps(payload), content_type="application/json")
    if reply.chart is not None:
        form.add_field(
            "files[0]", reply.chart.png, filename=chart_filename(reply), content_type="image/png"
        )
    return form


async def _json_or_none(response: aiohttp.ClientResponse) -> Any:
    try:
        return json.loads(await response.text())
    except ValueError:
        return None


def _retry_after(body: Any, headers: Mapping[str, str]) -> float:
    """Seconds to wait after a 429: the JSON ``retry_after``, else the Retry-After header."""
    for value in (
        (body or {}).get("retry_after") if isinstance(body, dict) else None,
        headers.get("Retry-After"),
    ):
        with suppress(TypeError, ValueError):
            if value is not None:
                return max(float(value), 0.0)
    return 1.0


def _webhook_error(hook: Webhook, status: int, body: Any) -> PlatformError:
    message = body.get("message", "") if isinstance(body, dict) else ""
    if status == 404:
        return PlatformError(
            f"discord: {hook} no longer exists ({message or 'Unknown Webhook'}); "
            f"create a new webhook and update {hook.env_var}",
            code="unknown_webhook",
        )
    if status in (401, 403):
        return PlatformError(
            f"discord: {hook} refused the post ({status} {message}); check {hook.env_var}",
            code="forbidden",
        )
    return PlatformError(f"discord: {hook} refused the post ({status} {message})", code=str(status))
