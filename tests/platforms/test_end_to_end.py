"""The whole path a user takes: a signed `/kpi` over HTTP into the real Slack adapter, the
real KpiService answering from a warehouse synced from the demo source (``warehouse``,
tests/conftest.py), and the answer with its chart arriving at the fake Slack Web API.
Nothing is stubbed but Slack itself. The same path on Discord: test_end_to_end_discord.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import Engine

from bot.commands import KpiService
from bot.platforms.slack import SlackPlatform
from bot.settings import load_settings
from bot.sources import stream_tables
from tests.conftest import DEMO_NOW as NOW
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
)


@pytest.fixture
async def slack(
    warehouse: Path, tmp_path: Path
) -> AsyncIterator[tuple[FakeSlackAPI, SlackPlatform]]:
    from bot.db import make_engine

    fake = await FakeSlackAPI().start()
    config = tmp_path / "kpibot.toml"
    config.write_text(
        '[permissions.default]\nallow = ["*"]\ndeny = ["revenue"]\n'
        '[permissions.channels.C0FINANCE]\nallow = ["*"]\n'
    )
    settings = load_settings(
        {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": fake.api_url,
            "KPIBOT_CONFIG": str(config),
        }
    )
    engine: Engine = make_engine(f"sqlite:///{warehouse}")
    service = KpiService(engine, settings, clock=lambda: NOW, stream_tables=stream_tables())
    platform = SlackPlatform(settings, mode="http", host="127.0.0.1", port=0)
    await platform.start(service.handle)
    yield fake, platform
    await platform.stop()
    await fake.close()
    engine.dispose()


async def _send(
    platform: SlackPlatform, fake: FakeSlackAPI, text: str, channel: str = "C0KPI"
) -> int:
    payload = slash_command(text, response_url=fake.response_url())
    payload["channel_id"] = channel
    body = form_body(payload)
    url = f"http://127.0.0.1:{platform.port}/slack/events"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=signed_headers(body)) as response,
    ):
        return response.status


async def test_nps_last_30d_here_arrives_with_its_figure_comparison_and_png(slack) -> None:  # type: ignore[no-untyped-def]
    fake, platform = slack
    assert await _send(platform, fake, "nps last 30d here") == 200
    (upload,) = await fake.wait_for("upload", timeout=30)
    await platform.drain()
    assert upload.body.startswith(PNG_SIGNATURE) and len(upload.body) > 10_000
    (message,) = fake.of("chat.postMessage")
    assert check_blocks(message.params["blocks"]) == []
    text = json.dumps(message.params["blocks"], ensure_ascii=False)
    assert "NPS" in text and "vs previous period" in text and "n=" in text
    (url_request,) = fake.of("files.getUploadURLExternal")
    assert "NPS" in url_request.params["alt_txt"]


async def test_a_malformed_query_gets_ephemeral_help_with_a_suggestion(slack) -> None:  # type: ignore[no-untyped-def]
    fake, platform = slack
    assert await _send(platform, fake, "npss lst 30d") == 200
    await fake.wait_for("response", timeout=30)
    await platform.drain()
    assert fake.of("chat.postMessage") == []
    replies = [c.params for c in fake.of("response")]
    shown = json.dumps(replies, ensure_ascii=False)
    assert "Did you mean “nps”?" in shown and "kpi help" in shown.lower()


async def test_revenue_is_refused_outside_its_channel_and_answered_inside(slack) -> None:  # type: ignore[no-untyped-def]
    fake, platform = slack
    assert await _send(platform, fake, "mrr vs previous here", channel="C0KPI") == 200
    await fake.wait_for("response", timeout=30)
    await platform.drain()
    assert fake.of("chat.postMessage") == []
    assert "not shown in this channel" in json.dumps([c.params for c in fake.of("response")])

    assert await _send(platform, fake, "mrr vs previous here", channel="C0FINANCE") == 200
    (message,) = await fake.wait_for("chat.postMessage", timeout=30)
    await platform.drain()
    assert message.params["channel"] == "C0FINANCE"
    assert "$" in json.dumps(message.params["blocks"], ensure_ascii=False)
