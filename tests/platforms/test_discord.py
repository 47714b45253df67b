"""The Discord adapter, with the real discord.py against a fake Discord on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import discord.http
import pytest

from bot.errors import ConfigError, PlatformError
from bot.platforms.base import CommandRequest
from bot.platforms.discord import TONE_COLOURS, DiscordPlatform
from bot.replies import Chart, Field, Reply, Tone
from tests.fakes.discord_api import (
    APP_ID,
    CHANNEL_ID,
    GUILD_ID,
    USER_ID,
    FakeDiscord,
    point_gateway_at,
    slash_command_interaction,
)

WEBHOOK_ID = "1700000000000000007"
WEBHOOK_TOKEN = "wh-SeCrEt_token.123"
WEBHOOK_URL = f"https://discord.com/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"


def tiny_png() -> bytes:
    """A valid 1×1 PNG: enough for Discord to call it an image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x00\x9e\x73")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


PNG = tiny_png()

ANSWER = Reply(
    title="NPS · last 30 days",
    headline="NPS 42 ±6 (n=318)",
    comparison="▼ 9 vs previous 30 days",
    tone=Tone.BAD,
    fields=(Field("Promoters", "51%"), Field("Detractors", "9%", Tone.BAD)),
    context=("1 Dec – 30 Dec 2025", "data as of 09:00 UTC"),
    chart=Chart(png=PNG, alt_text="NPS by week, falling from 51 to 42"),
)
HELP = Reply(
    title="kpibot help",
    kind="help",
    text="I did not understand “nsp”. Did you mean nps? Try `/kpi nps last 30d`.",
    ephemeral=True,
)
REFUSAL = Reply(
    title="Not in this channel",
    kind="refusal",
    text="mrr is not shown in #support-kpis.",
    ephemeral=True,
)


class FakeHandler:
    """The command handler's stand-in: records requests, answers with a fixed Reply."""

    def __init__(self, reply: Reply | Exception = ANSWER) -> None:
        self.reply = reply
        self.requests: list[CommandRequest] = []

    async def __call__(self, request: CommandRequest) -> Reply:
        self.requests.append(request)
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


class Sleeps:
    """An injected sleep: records how long the code wanted to wait, waits no time."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord()
    await server.start()
    previous = point_gateway_at(server.gateway_url)
    yield server
    point_gateway_at(previous)
    await server.close()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def make_platform(
    fake: FakeDiscord, sleeps: Sleeps
) -> AsyncIterator[Callable[..., DiscordPlatform]]:
    made: list[DiscordPlatform] = []

    def make(**overrides: Any) -> DiscordPlatform:
        options: dict[str, Any] = {
            "token": "test-bot-token",
            "api_url": fake.api_url,
            "guild_ids": (GUILD_ID,),
            "webhooks": {"": WEBHOOK_URL},
            "kpi_names": lambda: ["nps", "csat", "frt", "first_response_time", "mrr"],
            "sleep": sleeps,
            "connect_timeout": 5.0,
        }
        options.update(overrides)
        platform = DiscordPlatform(**options)
        made.append(platform)
        return platform

    yield make
    for platform in made:
        await platform.stop()


async def started(
    make_platform: Callable[..., DiscordPlatform],
    handler: Callable[[CommandRequest], Awaitable[Reply]],
    **overrides: Any,
) -> DiscordPlatform:
    platform = make_platform(**overrides)
    await platform.start(handler)
    return platform


# -- logging in and the command ------------------------------------------------------------


async def test_start_logs_in_registers_kpi_in_the_guild_and_connects(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform]
) -> None:
    await started(make_platform, FakeHandler())

    assert fake.find("GET", "/users/@me")[0].headers["Authorization"] == "Bot test-bot-token"
    (sync,) = fake.find("PUT", f"/applications/{APP_ID}/guilds/{GUILD_ID}/commands")
    (command,) = sync.json
    assert command["name"] == "kpi"
    (option,) = command["options"]
    assert option["name"] == "query" and option["type"] == 3  # a string
    assert option["autocomplete"] is True and option["required"] is False
    assert command["contexts"] == [0]  # servers only, not DMs
    assert fake.identify is not None
    assert fake.identify["intents"] == 1  # GUILDS only: nothing privileged


async def test_without_guild_ids_the_command_is_registered_globally(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform]
) -> None:
    await started(make_platform, FakeHandler(), guild_ids=())

    assert [c["name"] for c in fake.find("PUT", f"/applications/{APP_ID}/commands")[0].json] == [
        "kpi"
    ]


async def test_kpi_is_deferred_then_answered_with_an_embed_and_the_chart(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform]
) -> None:
    handler = FakeHandler(ANSWER)
    await started(make_platform, handler)

    await fake.dispatch("INTERACTION_CREATE", slash_command_interaction("nps last 30d"))
    (followup,) = await fake.wait_for("POST", rf"/webhooks/{APP_ID}/[^/]+")

    (defer,) = fake.find("POST", r"/interactions/\d+/[^/]+/callback")
    assert fake.requests.index(defer) < fake.requests.index(followup)
    assert defer.json == {"type": 5, "data": {"flags": 64}}  # deferred, ephemeral by default
    assert handler.requests == [
        CommandRequest(
            text="nps last 30d",
            platform="discord",
            channel_id=str(CHANNEL_ID),
            user_id=str(USER_ID),
            user_name="ada",
        )
    ]
    (embed,) = followup.json["embeds"]
    assert embed["title"] == "NPS · last 30 days"
    assert embed["description"] == "**NPS 42 ±6 (n=318)**\n▼ 9 vs previous 30 days"
    assert embed["color"] == TONE_COLOURS[Tone.BAD]
    assert [(f["name"], f["value"]) for f in embed["fields"]] == [
        ("Promoters", "51%"),
        ("Detractors", "🔴 9%"),  # a field's own tone, as on Slack
    ]
    assert embed["footer"]["text"] == "1 Dec – 30 Dec 2025 · data as of 09:00 UTC"
    assert embed["image"]["url"] == "attachment://chart.png"
    (part,) = followup.files
    assert (part.filename, part.data) == ("chart.png", PNG)  # Discord sniffs the type
    (attachment,) = followup.json["attachments"]
    assert attachment["filename"] == "chart.png"
    assert attachment["description"] == "NPS by week, falling from 51 to 42"
    assert followup.json["allowed_mentions"] == {"parse": []}
    assert followup.query["wait"] == "1"


async def test_a_refusal_is_answered_only_to_the_asker(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform]
) -> None:
    await started(make_platform, FakeHandler(REFUSAL))

    await fake.dispatch("INTERACTION_CREATE", slash_command_interaction("mrr last 30d"))
    (followup,) = await fake.wait_for("POST", rf"/webhooks/{APP_ID}/[^/]+")

    assert followup.json["flags"] & 64  # ephemeral
    assert followup.json["embeds"][0]["description"] == "mrr is not shown in #support-kpis."
    assert followup.files == []


async def test_a_malformed_query_gets_ephemeral_help_even_when_answers_go_to_the_channel(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform]
) -> None:
    await started(make_platform, FakeHandler(HELP), answers_ephemeral=False)

    await fake.dispatch("INTERACTION_CREATE", slash_command_interaction("nsp last 30d"))
    (followup,) = await fake.wait_for("POST", rf"/webhooks/{APP_ID}/[^/]+")

    (defer,) = fake.find("POST", r"/interactions/\d+/[^/]+/callback")
    assert defer.json == {"type": 5}  # deferred in the channel: answers are public here
    # The public "thinking…" message goes, so the help can be shown to the asker alone.
    (deleted,) = fake.find("DELETE", rf"/webhooks/{APP_ID}/[^/]+/messages/@original")
    assert fake.requests.index(deleted) < fake.requests.index(followup)
    assert followup.json["flags"] & 64
    assert "Did you mean nps?" in followup.json["embeds"][0]["description"]


async def test_a_public_answer_replaces_the_public_deferral(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform]
) -> None:
    await started(make_platform, FakeHandler(ANSWER), answers_ephemeral=False)

    await fake.dispatch("INTERACTION_CREATE", slash_command_interaction("nps"))
    (followup,) = await fake.wait_for("POST", rf"/webhooks/{APP_ID}/[^/]+")

    assert not fake.find("DELETE", r".*/messages/@original")
    assert not followup.json.get("flags", 0) & 64


async def test_an_empty_query_reaches_the_handler_as_empty_text(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform]
) -> None:
    handler = FakeHandler(HELP)
    await started(make_platform, handler)

    await fake.dispatch("INTERACTION_CREATE", slash_command_interaction(None))
    await fake.wait_for("POST", rf"/webhooks/{APP_ID}/[^/]+")

    assert handler.requests[0].text == ""


async def test_a_failing_handler_still_answers_with_an_ephemeral_error(
    fake: FakeDiscord,
    make_platform: Callable[..., DiscordPlatform],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await started(make_platform, FakeHandler(RuntimeError("warehouse is down")))

    with caplog.at_level(logging.ERROR, logger="bot.platforms.discord"):
        await fake.dispatch("INTERACTION_CREATE", slash_command_interaction("nps"))
        (followup,) = await fake.wait_for("POST", rf"/webhooks/{APP_ID}/[^/]+")

    assert followup.json["flags"] & 64
    assert "went wrong" in followup.json["embeds"][0]["description"]
    assert any(r.exc_info and "warehouse is down" in str(r.exc_info[1]) for r in caplog.records)


async def test_a_handler_slower_than_the_limit_gets_a_too_long_answer(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform]
) -> None:
    async def slow(request: CommandRequest) -> Reply:
        await asyncio.Event().wait()  # never finishes
        raise AssertionError

    await started(make_platform, slow, handler_timeout=0.01)

    await fake.dispatch("INTERACTION_CREATE", slash_command_interaction("nps"))
    (followup,) = await fake.wait_for("POST", rf"/webhooks/{APP_ID}/[^/]+")

    assert "too long" in followup.json["embeds"][0]["description"]


async def test_autocomplete_suggests_kpi_names_for_the_first_word(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform]
) -> None:
    await started(make_platform, FakeHandler())

    await fake.dispatch("INTERACTION_CREATE", slash_command_interaction("r", autocomplete=True))
    (callback,) = await fake.wait_for("POST", r"/interactions/\d+/[^/]+/callback")

    assert callback.json["type"] == 8  # autocomplete result
    assert [c["value"] for c in callback.json["data"]["choices"]] == [
        "frt",
        "first_response_time",
        "mrr",
    ]


async def test_a_refused_token_is_a_configuration_error(
    make_platform: Callable[..., DiscordPlatform],
) -> None:
    platform = make_platform(token="not-the-token")

    with pytest.raises(ConfigError) as caught:
        await platform.start(FakeHandler())

    assert caught.value.key == "DISCORD_BOT_TOKEN"
    assert "not-the-token" not in str(caught.value)


async def test_a_gateway_that_refuses_the_session_fails_start(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform]
) -> None:
    fake.close_gateway_with = 4004  # Authentication failed

    with pytest.raises(PlatformError) as caught:
        await started(make_platform, FakeHandler())

    assert caught.value.code == "gateway"
    assert "4004" in str(caught.value)


async def test_stop_points_discord_py_back_at_discord(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform]
) -> None:
    platform = await started(make_platform, FakeHandler())
    while_running = discord.http.Route.BASE
    assert while_running == fake.api_url

    await platform.stop()
    await platform.stop()  # twice is harmless

    after = discord.http.Route.BASE
    assert after == "https://discord.com/api/v10"


# -- posting -------------------------------------------------------------------------------


async def test_a_digest_is_posted_to_a_channel_over_rest_without_the_gateway(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform]
) -> None:
    platform = make_platform()

    ref = await platform.post(f"discord:{CHANNEL_ID}", ANSWER)

    (sent,) = fake.find("POST", f"/channels/{CHANNEL_ID}/messages")
    assert sent.headers["Authorization"] == "Bot test-bot-token"
    assert sent.json["embeds"][0]["image"]["url"] == "attachment://chart.png"
    assert sent.json["allowed_mentions"]["parse"] == []
    assert sent.files[0].data == PNG
    assert ref is not None and ref.isdigit()
    assert fake.identify is None  # never connected to the gateway
    assert not fake.find("PUT", r"/applications/.*")  # nor registered commands


async def test_an_alert_reminder_replies_to_the_first_alert(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform]
) -> None:
    platform = make_platform()
    alert = Reply(title="FRT p90 above 4h", kind="alert", text="FRT p90 is 5h 10m", tone=Tone.BAD)

    first = await platform.post(str(CHANNEL_ID), alert)
    await platform.post(str(CHANNEL_ID), alert, thread_ref=first)

    opening, reminder = fake.find("POST", f"/channels/{CHANNEL_ID}/messages")
    assert "message_reference" not in opening.json
    assert opening.json["content"] == "🔔 FRT p90 above 4h"  # what a phone notification shows
    assert reminder.json["message_reference"]["message_id"] == int(first or 0)
    assert reminder.json["message_reference"]["fail_if_not_exists"] is False
    assert opening.files == []


async def test_a_channel_post_rate_limited_by_discord_is_retried(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform]
) -> None:
    platform = make_platform()
    fake.rate_limit("POST", f"/channels/{CHANNEL_ID}/messages", retry_after=0.005)

    ref = await platform.post(str(CHANNEL_ID), ANSWER)

    assert len(fake.find("POST", f"/channels/{CHANNEL_ID}/messages")) == 2
    assert ref is not None


async def test_a_channel_the_bot_may_not_post_in_is_a_platform_error(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform]
) -> None:
    platform = make_platform()
    fake.fail(
        "POST",
        "/channels/.*/messages",
        status=403,
        body={"message": "Missing Permissions", "code": 50013},
    )

    with pytest.raises(PlatformError) as caught:
        await platform.post(str(CHANNEL_ID), ANSWER)

    assert caught.value.code == "forbidden"
    assert "Missing Permissions" in str(caught.value)


async def test_a_digest_is_posted_through_the_channel_webhook(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform]
) -> None:
    platform = make_platform(token=None)  # a team that runs no bot

    ref = await platform.post("discord:webhook", ANSWER)

    (sent,) = fake.find("POST", f"/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}")
    assert sent.query == {"wait": "true"}
    assert "Authorization" not in sent.headers
    assert sent.json["embeds"][0]["title"] == "NPS · last 30 days"
    assert sent.json["attachments"] == [
        {"id": 0, "filename": "chart.png", "description": "NPS by week, falling from 51 to 42"}
    ]
    assert sent.files[0].data == PNG
    assert ref is not None and ref.isdigit()


async def test_a_named_webhook_posts_into_its_thread(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform]
) -> None:
    platform = make_platform(
        webhooks={"alerts": f"https://discord.com/api/webhooks/42/tok?thread_id={CHANNEL_ID}"}
    )

    await platform.post("webhook:alerts", REFUSAL)

    (sent,) = fake.find("POST", "/webhooks/42/tok")
    assert sent.query == {"wait": "true", "thread_id": str(CHANNEL_ID)}


async def test_a_rate_limited_webhook_waits_retry_after_then_posts(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform], sleeps: Sleeps
) -> None:
    platform = make_platform()
    fake.rate_limit("POST", "/webhooks/", retry_after=2.5)

    ref = await platform.post("webhook", ANSWER)

    assert sleeps.delays == [2.5]  # the JSON body's retry_after, not the rounded header
    sent = fake.find("POST", f"/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}")
    assert len(sent) == 2
    assert sent[1].files[0].data == PNG  # the chart is sent again in full
    assert ref is not None


async def test_a_webhook_rate_limited_for_long_gives_up_with_a_platform_error(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform], sleeps: Sleeps
) -> None:
    platform = make_platform()
    fake.rate_limit("POST", "/webhooks/", retry_after=3600)

    with pytest.raises(PlatformError) as caught:
        await platform.post("webhook", ANSWER)

    assert caught.value.code == "rate_limited"
    assert sleeps.delays == []


async def test_an_exhausted_webhook_bucket_delays_the_next_post(
    fake: FakeDiscord, make_platform: Callable[..., DiscordPlatform], sleeps: Sleeps
) -> None:
    platform = make_platform()
    fake.webhook_headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "1.5"}

    await platform.post("webhook", REFUSAL)

    assert sleeps.delays == [1.5]


async def test_a_webhook_url_never_reaches_logs_or_errors(
    fake: FakeDiscord,
    make_platform: Callable[..., DiscordPlatform],
    caplog: pytest.LogCaptureFixture,
) -> None:
    platform = make_platform()
    fake.rate_limit("POST", "/webhooks/", retry_after=0.5)
    fake.fail("POST", "/webhooks/", status=404, body={"message": "Unknown Webhook", "code": 10015})

    with caplog.at_level(logging.DEBUG), pytest.raises(PlatformError) as caught:
        await platform.post("webhook", ANSWER)

    assert caught.value.code == "unknown_webhook"
    assert "DISCORD_WEBHOOK_URL" in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    for text in (str(caught.value), repr(platform.webhooks), caplog.text):
        assert WEBHOOK_TOKEN not in text


async def test_an_unreachable_webhook_names_no_url(
    make_platform: Callable[..., DiscordPlatform], sleeps: Sleeps
) -> None:
    platform = make_platform(api_url="http://127.0.0.1:9/api/v10")  # the discard port

    with pytest.raises(PlatformError) as caught:
        await platform.post("webhook", REFUSAL)

    assert caught.value.code == "unreachable"
    assert WEBHOOK_TOKEN not in str(caught.value)
    assert len(sleeps.delays) == 4


@pytest.mark.parametrize(
    ("target", "key"),
    [
        ("webhook:alerts", "DISCORD_ALERTS_WEBHOOK_URL"),
        ("general", "channel"),
        ("slack:C0123", "channel"),
    ],
)
async def test_a_target_that_cannot_be_posted_to_is_a_configuration_error(
    make_platform: Callable[..., DiscordPlatform], target: str, key: str
) -> None:
    platform = make_platform()

    with pytest.raises(ConfigError) as caught:
        platform.validate_target(target)

    assert caught.value.key == key


async def test_a_channel_target_without_a_bot_token_is_a_configuration_error(
    make_platform: Callable[..., DiscordPlatform],
) -> None:
    with pytest.raises(ConfigError) as caught:
        await make_platform(token=None).post(str(CHANNEL_ID), ANSWER)

    assert caught.value.key == "DISCORD_BOT_TOKEN"
