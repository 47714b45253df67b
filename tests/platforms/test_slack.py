"""The Slack adapter with the real slack-bolt and slack-sdk against a fake Slack on 127.0.0.1.

Slash commands arrive signed as Slack signs them, in-process (``AsyncApp.async_dispatch``),
over HTTP (the aiohttp app ``kpibot serve`` runs) and over a Socket Mode websocket.
Pacing and 429 waits run on an injected clock: nothing here sleeps.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import aiohttp
import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.errors import ConfigError, PlatformError
from bot.platforms.base import CommandRequest
from bot.platforms.slack import SlackPlatform
from bot.replies import Chart, Field, Reply, Tone
from bot.settings import Settings, load_settings
from tests.fakes.slack_api import (
    APP_TOKEN,
    BOT_TOKEN,
    PNG_SIGNATURE,
    SIGNING_SECRET,
    FakeSlackAPI,
    check_blocks,
    form_body,
    signed_headers,
    slash_command,
    tiny_png,
)

CHART = Chart(png=tiny_png(), alt_text="NPS by day over the last 30 days, falling from 51 to 42")
ANSWER = Reply(
    title="NPS, last 30 days",
    headline="NPS 42 ±6 (n=318)",
    comparison="▼ 9 vs previous 30 days",
    tone=Tone.BAD,
    fields=(Field("Promoters", "48%"), Field("Detractors", "6%", Tone.BAD)),
    context=("1 Oct – 30 Oct 2026", "data as of 09:12 UTC"),
    chart=CHART,
)
HELP = Reply(title="kpibot help", kind="help", text="Try `/kpi nps last 30d`.", ephemeral=True)
REFUSAL = Reply(
    title="Not here", kind="refusal", text="Revenue KPIs are not shared here.", ephemeral=True
)


class FakeTime:
    """A monotonic clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class StubHandler:
    """The platform-neutral command handler, stubbed: records requests, returns a Reply."""

    def __init__(self, reply: Reply | Callable[[CommandRequest], Reply]) -> None:
        self.reply = reply
        self.requests: list[CommandRequest] = []

    async def __call__(self, request: CommandRequest) -> Reply:
        self.requests.append(request)
        return self.reply(request) if callable(self.reply) else self.reply


def slack_settings(fake: FakeSlackAPI, **env: str) -> Settings:
    return load_settings(
        {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": fake.api_url,
            **env,
        }
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlackAPI]:
    api = await FakeSlackAPI().start()
    yield api
    await api.close()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


Started = Callable[..., Awaitable[SlackPlatform]]


@pytest.fixture
async def started(fake: FakeSlackAPI, fake_time: FakeTime) -> AsyncIterator[Started]:
    """Start a SlackPlatform (HTTP mode on an ephemeral port unless told) with a handler."""
    platforms: list[SlackPlatform] = []

    async def start(handler: StubHandler, *, mode: str = "http", **env: str) -> SlackPlatform:
        platform = SlackPlatform(
            slack_settings(fake, **env),
            mode=mode,  # type: ignore[arg-type]
            host="127.0.0.1",
            port=0,
            clock=fake_time.clock,
            sleep=fake_time.sleep,
        )
        platforms.append(platform)
        await platform.start(handler)
        return platform

    yield start
    for platform in platforms:
        await platform.stop()


async def send_kpi(
    platform: SlackPlatform, fake: FakeSlackAPI, text: str, *, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """POST a signed ``/kpi text`` to the running HTTP app; return (status, body)."""
    body = form_body(slash_command(text, response_url=fake.response_url()))
    url = f"http://127.0.0.1:{platform.port}/slack/events"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers or signed_headers(body)) as response,
    ):
        return response.status, await response.text()


# -- the round trip ----------------------------------------------------------------------


async def test_kpi_over_http_acks_at_once_then_posts_the_answer_and_its_png_chart(
    fake: FakeSlackAPI, started: Started
) -> None:
    handler = StubHandler(ANSWER)
    platform = await started(handler)

    status, ack = await send_kpi(platform, fake, "nps last 30d here")
    assert status == 200
    assert "Working on `/kpi nps last 30d here`" in ack

    (upload,) = await fake.wait_for("upload")
    await platform.drain()
    assert upload.body == CHART.png and upload.body.startswith(PNG_SIGNATURE)
    assert handler.requests == [
        CommandRequest(
            text="nps last 30d here",
            platform="slack",
            channel_id="C0KPI",
            user_id="U0ASKER",
            user_name="ada",
        )
    ]
    (message,) = fake.of("chat.postMessage")
    assert message.token == BOT_TOKEN
    assert message.params["channel"] == "C0KPI"
    assert check_blocks(message.params["blocks"]) == []
    header, figure, fields, context = message.params["blocks"]
    assert header["text"]["text"] == "NPS, last 30 days"
    assert figure["text"]["text"] == "*NPS 42 ±6 (n=318)*\n🔴 ▼ 9 vs previous 30 days"
    assert [f["text"] for f in fields["fields"]] == ["*Promoters*\n48%", "*Detractors*\n🔴 6%"]
    assert [e["text"] for e in context["elements"]] == [
        *ANSWER.context,
        "ada asked: /kpi nps last 30d here",
    ]
    (url_request,) = fake.of("files.getUploadURLExternal")
    assert url_request.params["alt_txt"] == CHART.alt_text
    (complete,) = fake.of("files.completeUploadExternal")
    assert complete.params["channel_id"] == "C0KPI"
    assert "thread_ts" not in complete.params  # a command's chart shows in the channel
    (cleanup,) = fake.of("response")
    assert cleanup.params["delete_original"] is True  # the "working on it" note goes


async def test_kpi_dispatched_in_process_acks_before_the_handler_answers(
    fake: FakeSlackAPI, started: Started
) -> None:
    handler = StubHandler(ANSWER)
    platform = await started(handler)
    body = form_body(slash_command("nps last 30d", response_url=fake.response_url()))

    response = await platform.app.async_dispatch(
        AsyncBoltRequest(body=body, headers=signed_headers(body))
    )

    assert response.status == 200
    assert "Working on `/kpi nps last 30d`" in response.body
    await fake.wait_for("upload")
    await platform.drain()
    assert [r.text for r in handler.requests] == ["nps last 30d"]


async def test_socket_mode_dispatches_the_same_listener(
    fake: FakeSlackAPI, started: Started
) -> None:
    handler = StubHandler(ANSWER)
    platform = await started(handler, mode="socket", SLACK_SIGNING_SECRET="")  # not needed
    (opened,) = fake.of("apps.connections.open")
    assert opened.token == APP_TOKEN

    ack = await fake.send_envelope(
        slash_command("nps last 30d here", response_url=fake.response_url())
    )

    assert "Working on" in ack["payload"]["text"]
    await fake.wait_for("upload")
    await platform.drain()
    assert [r.text for r in handler.requests] == ["nps last 30d here"]
    assert len(fake.of("chat.postMessage")) == 1


# -- signatures ----------------------------------------------------------------------------


def _forged(body: str) -> dict[str, dict[str, str]]:
    good = signed_headers(body)
    return {
        "wrong secret": signed_headers(body, secret="not-the-signing-secret"),
        "stale timestamp": signed_headers(body, timestamp=int(time.time()) - 6 * 60),
        "future timestamp": signed_headers(body, timestamp=int(time.time()) + 6 * 60),
        "no headers": {"Content-Type": "application/x-www-form-urlencoded"},
        "no signature": {k: v for k, v in good.items() if k != "X-Slack-Signature"},
        "no timestamp": {k: v for k, v in good.items() if k != "X-Slack-Request-Timestamp"},
        "malformed timestamp": {**good, "X-Slack-Request-Timestamp": "yesterday"},
        "tampered body": signed_headers(body.replace("nps", "mrr")),
    }


CASES = list(_forged(form_body(slash_command("nps last 30d", response_url="http://x/r"))))


@pytest.mark.parametrize("case", CASES)
async def test_unverified_requests_get_401_and_the_handler_never_runs(
    fake: FakeSlackAPI, started: Started, case: str
) -> None:
    handler = StubHandler(ANSWER)
    platform = await started(handler)
    body = form_body(slash_command("nps last 30d", response_url=fake.response_url()))
    calls_at_start = len(fake.calls)

    url = f"http://127.0.0.1:{platform.port}/slack/events"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=_forged(body)[case]) as response,
    ):
        assert response.status == 401

    await platform.drain()
    assert handler.requests == []
    assert len(fake.calls) == calls_at_start  # no Web API call, no response_url


async def test_in_process_dispatch_verifies_signatures_too(
    fake: FakeSlackAPI, started: Started
) -> None:
    handler = StubHandler(ANSWER)
    platform = await started(handler)
    body = form_body(slash_command("nps last 30d", response_url=fake.response_url()))

    response = await platform.app.async_dispatch(
        AsyncBoltRequest(body=body, headers=_forged(body)["stale timestamp"])
    )

    assert response.status == 401
    await platform.drain()
    assert handler.requests == []


# -- ephemeral replies ----------------------------------------------------------------------


@pytest.mark.parametrize("reply", [HELP, REFUSAL], ids=["help", "refusal"])
async def test_ephemeral_replies_replace_the_working_note_privately(
    fake: FakeSlackAPI, started: Started, reply: Reply
) -> None:
    platform = await started(StubHandler(reply))

    await send_kpi(platform, fake, "help")
    (response,) = await fake.wait_for("response")
    await platform.drain()

    assert response.params["response_type"] == "ephemeral"
    assert response.params["replace_original"] is True
    assert response.params["blocks"][0]["text"]["text"] == reply.title
    assert check_blocks(response.params["blocks"]) == []
    assert fake.of("chat.postMessage") == []
    assert fake.of("files.getUploadURLExternal") == []


async def test_ephemeral_answer_with_a_chart_says_how_to_share_it(
    fake: FakeSlackAPI, started: Started
) -> None:
    platform = await started(StubHandler(replace(ANSWER, ephemeral=True)))

    await send_kpi(platform, fake, "nps last 30d")
    (response,) = await fake.wait_for("response")
    await platform.drain()

    context = response.params["blocks"][-1]["elements"]
    assert "/kpi nps last 30d here" in context[-1]["text"]
    assert fake.of("files.getUploadURLExternal") == []  # Slack has no ephemeral files


async def test_an_ephemeral_chart_after_here_gets_no_suggestion_to_add_here(
    fake: FakeSlackAPI, started: Started
) -> None:
    platform = await started(StubHandler(replace(ANSWER, ephemeral=True)))

    await send_kpi(platform, fake, "mrr last 30d here")
    (response,) = await fake.wait_for("response")
    await platform.drain()

    assert "here" not in str(response.params["blocks"][-1])


async def test_a_crashing_handler_gets_the_asker_an_ephemeral_error(
    fake: FakeSlackAPI, started: Started, caplog: pytest.LogCaptureFixture
) -> None:
    def crash(request: CommandRequest) -> Reply:
        raise RuntimeError("database is locked")

    platform = await started(StubHandler(crash))

    await send_kpi(platform, fake, "nps last 30d")
    (response,) = await fake.wait_for("response")
    await platform.drain()

    assert response.params["response_type"] == "ephemeral"
    assert "Something went wrong" in response.params["text"]
    assert "database is locked" in caplog.text


# -- refusals and rate limits ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("not_in_channel", "Invite me with /invite @kpibot"),
        ("channel_not_found", "in a direct message, ask without “here”"),
        ("invalid_auth", "check SLACK_BOT_TOKEN"),
    ],
)
async def test_a_refused_channel_answer_reaches_the_asker_privately_with_the_fix(
    fake: FakeSlackAPI, started: Started, caplog: pytest.LogCaptureFixture, code: str, hint: str
) -> None:
    platform = await started(StubHandler(ANSWER))
    fake.fail_next("chat.postMessage", code)

    await send_kpi(platform, fake, "nps last 30d here")
    (response,) = await fake.wait_for("response")
    await platform.drain()

    assert response.params["response_type"] == "ephemeral"
    shown = str(response.params["blocks"])
    assert "NPS 42 ±6 (n=318)" in shown and hint in shown
    assert check_blocks(response.params["blocks"]) == []
    assert fake.of("files.getUploadURLExternal") == []
    (logged,) = [r for r in caplog.records if code in r.getMessage()]
    assert logged.levelno >= logging.WARNING


async def test_an_expired_response_url_falls_back_to_chat_post_ephemeral(
    fake: FakeSlackAPI, started: Started
) -> None:
    fake.expired.add("cmd1")
    platform = await started(StubHandler(HELP))

    await send_kpi(platform, fake, "help")
    (ephemeral,) = await fake.wait_for("chat.postEphemeral")
    await platform.drain()

    assert ephemeral.params["channel"] == "C0KPI"
    assert ephemeral.params["user"] == "U0ASKER"
    assert ephemeral.params["blocks"][0]["text"]["text"] == "kpibot help"


async def test_a_refused_chart_upload_tells_the_asker_why(
    fake: FakeSlackAPI, started: Started
) -> None:
    fake.fail_next("files.completeUploadExternal", "not_in_channel")
    platform = await started(StubHandler(ANSWER))

    await send_kpi(platform, fake, "nps last 30d here")
    (response,) = await fake.wait_for("response")
    await platform.drain()

    assert len(fake.of("chat.postMessage")) == 1
    assert "/invite @kpibot" in response.params["text"]


async def test_a_429_is_retried_after_retry_after(
    fake: FakeSlackAPI, started: Started, fake_time: FakeTime
) -> None:
    fake.rate_limit_next("chat.postMessage", retry_after=2)
    platform = await started(StubHandler(ANSWER))

    ts = await platform.post("C0DIGEST", Reply(title="Morning digest", text="All quiet."))

    assert ts is not None
    assert len(fake.of("chat.postMessage")) == 2
    (waited,) = fake_time.slept
    assert 2 <= waited < 3  # Retry-After plus the SDK's jitter


async def test_a_429_that_persists_becomes_a_platform_error(
    fake: FakeSlackAPI, started: Started
) -> None:
    fake.rate_limit_next("chat.postMessage", times=10)
    platform = await started(StubHandler(ANSWER))

    with pytest.raises(PlatformError) as refused:
        await platform.post("C0DIGEST", Reply(title="Morning digest"))
    assert refused.value.code == "ratelimited"
    assert len(fake.of("chat.postMessage")) == 4  # the first try and three retries


async def test_posts_are_paced_to_one_per_second_per_channel(
    fake: FakeSlackAPI, started: Started, fake_time: FakeTime
) -> None:
    platform = await started(StubHandler(ANSWER))
    reply = Reply(title="Alert: backlog above 200")

    for channel in ("C0ONE", "C0ONE", "C0TWO", "C0ONE"):
        await platform.post(channel, reply)

    assert fake_time.slept == [1.0, 1.0]  # only the 2nd and 3rd post to C0ONE waited
    assert len(fake.of("chat.postMessage")) == 4


async def test_invalid_auth_at_start_is_a_clear_platform_error_without_the_token(
    fake: FakeSlackAPI, started: Started, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_next("auth.test", "invalid_auth")

    with pytest.raises(PlatformError) as refused:
        await started(StubHandler(ANSWER))

    assert refused.value.code == "invalid_auth"
    assert "SLACK_BOT_TOKEN" in caplog.text
    assert BOT_TOKEN not in caplog.text and BOT_TOKEN not in str(refused.value)


async def test_the_bot_token_never_reaches_a_log_record(
    fake: FakeSlackAPI, started: Started, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot")
    fake.not_member.add("C0KPI")
    platform = await started(StubHandler(ANSWER))

    await send_kpi(platform, fake, "nps last 30d here")
    await fake.wait_for("response")
    await platform.drain()

    ours = [r.getMessage() for r in caplog.records if r.name.startswith("bot")]
    assert ours and not any(BOT_TOKEN in m or APP_TOKEN in m for m in ours)


# -- digests and alerts -----------------------------------------------------------------


async def test_a_digest_goes_out_with_valid_blocks_and_its_chart_in_the_thread(
    fake: FakeSlackAPI, started: Started
) -> None:
    platform = await started(StubHandler(ANSWER))
    digest = Reply(
        title="Morning digest · support",
        kind="digest",
        fields=tuple(Field(f"KPI {i}", f"{i * 7}%", Tone.GOOD) for i in range(14)),
        context=("Last 7 days", "data as of 08:55 UTC (Zendesk synced 4 min ago)"),
        chart=CHART,
    )

    ts = await platform.post("slack:C0DIGEST", digest)

    (message,) = fake.of("chat.postMessage")
    assert message.params["channel"] == "C0DIGEST"
    assert ts == "1700000000.000001"
    blocks = message.params["blocks"]
    assert check_blocks(blocks) == []
    assert [b["type"] for b in blocks] == ["header", "section", "section", "context"]
    assert "data as of 08:55 UTC" in blocks[-1]["elements"][1]["text"]
    (complete,) = fake.of("files.completeUploadExternal")
    assert complete.params["thread_ts"] == ts
    (uploaded,) = json.loads(complete.params["files"])
    assert fake.uploads[uploaded["id"]] == CHART.png


async def test_a_reminder_posted_in_a_thread_returns_that_thread(
    fake: FakeSlackAPI, started: Started
) -> None:
    platform = await started(StubHandler(ANSWER))

    ts = await platform.post(
        "C0ALERTS", Reply(title="Still firing"), thread_ref="1700000000.000042"
    )

    assert ts == "1700000000.000042"
    assert fake.of("chat.postMessage")[0].params["thread_ts"] == "1700000000.000042"


async def test_a_post_slack_refuses_raises_a_platform_error_with_the_fix(
    fake: FakeSlackAPI, started: Started
) -> None:
    fake.not_member.add("C0PRIVATE")
    platform = await started(StubHandler(ANSWER))

    with pytest.raises(PlatformError) as refused:
        await platform.post("C0PRIVATE", Reply(title="Morning digest"))

    assert refused.value.code == "not_in_channel"
    assert "/invite @kpibot" in str(refused.value)


async def test_a_refused_chart_does_not_lose_the_posted_digest(
    fake: FakeSlackAPI, started: Started
) -> None:
    fake.fail_next("files.completeUploadExternal", "not_in_channel")
    platform = await started(StubHandler(ANSWER))

    ts = await platform.post("C0DIGEST", ANSWER)

    assert ts == "1700000000.000001"
    assert len(fake.of("files.completeUploadExternal")) == 1


# -- HTTP mode extras and configuration ----------------------------------------------------


async def test_healthz_answers_ok_once_started(fake: FakeSlackAPI, started: Started) -> None:
    platform = await started(StubHandler(ANSWER))
    url = f"http://127.0.0.1:{platform.port}/healthz"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok", "platform": "slack", "mode": "http"}


def test_socket_mode_without_an_app_token_is_a_config_error(fake: FakeSlackAPI) -> None:
    settings = slack_settings(fake, SLACK_APP_TOKEN="")
    with pytest.raises(ConfigError) as wrong:
        SlackPlatform(settings)
    assert wrong.value.key == "SLACK_APP_TOKEN"


def test_http_mode_without_a_signing_secret_is_a_config_error(fake: FakeSlackAPI) -> None:
    settings = slack_settings(fake, SLACK_SIGNING_SECRET="")
    with pytest.raises(ConfigError) as wrong:
        SlackPlatform(settings, mode="http")
    assert wrong.value.key == "SLACK_SIGNING_SECRET"


def test_the_web_api_base_defaults_to_slack_and_follows_slack_api_url(fake: FakeSlackAPI) -> None:
    default = load_settings({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN})
    assert SlackPlatform(default).client.base_url == "https://slack.com/api/"
    proxied = slack_settings(fake, SLACK_API_URL="http://proxy.internal:8080/slack/api")
    assert SlackPlatform(proxied).client.base_url == "http://proxy.internal:8080/slack/api/"
