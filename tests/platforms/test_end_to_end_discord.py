"""The whole path on Discord: an INTERACTION_CREATE for ``/kpi`` over the fake gateway into
the real DiscordPlatform (discord.py), the real KpiService answering from a warehouse synced
from the demo source, and the deferral, then the follow-up with its embed and PNG, arriving
at the fake Discord REST API. Nothing is stubbed but Discord itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from bot.commands import KpiService
from bot.platforms.discord import TONE_COLOURS, DiscordPlatform
from bot.settings import load_settings
from bot.sources import stream_tables
from metrics import KPIS
from tests.conftest import DEMO_NOW as NOW
from tests.fakes.discord_api import (
    APP_ID,
    CHANNEL_ID,
    FakeDiscord,
    Recorded,
    point_gateway_at,
    slash_command_interaction,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FINANCE_CHANNEL_ID = 1300000000000000099
FOLLOW_UP = rf"/webhooks/{APP_ID}/[^/]+"  # interaction follow-ups go to the app's webhook
CALLBACK = r"/interactions/\d+/[^/]+/callback"


@pytest.fixture
async def discord_bot(
    warehouse: Path, tmp_path: Path
) -> AsyncIterator[tuple[FakeDiscord, DiscordPlatform]]:
    from bot.db import make_engine

    fake = FakeDiscord()
    await fake.start()
    previous_gateway = point_gateway_at(fake.gateway_url)
    config = tmp_path / "kpibot.toml"
    config.write_text(
        '[permissions.default]\nallow = ["*"]\ndeny = ["revenue"]\n'
        f'[permissions.channels."{FINANCE_CHANNEL_ID}"]\nallow = ["*"]\n'
    )
    environ = {
        "DISCORD_BOT_TOKEN": fake.token,
        "DISCORD_API_URL": fake.api_url,
        "KPIBOT_CONFIG": str(config),
    }
    settings = load_settings(environ)
    engine: Engine = make_engine(f"sqlite:///{warehouse}")
    service = KpiService(engine, settings, clock=lambda: NOW, stream_tables=stream_tables())
    kpi_names = lambda: [k.name for k in KPIS]  # noqa: E731
    platform = DiscordPlatform.from_settings(settings, kpi_names=kpi_names, environ=environ)
    await platform.start(service.handle)
    yield fake, platform
    await platform.stop()
    point_gateway_at(previous_gateway)
    await fake.close()
    engine.dispose()


def in_channel(query: str, channel_id: int) -> dict[str, Any]:
    interaction = slash_command_interaction(query)
    interaction["channel_id"] = interaction["channel"]["id"] = str(channel_id)
    return interaction


async def ask(fake: FakeDiscord, interaction: dict[str, Any], *, count: int = 1) -> Recorded:
    await fake.dispatch("INTERACTION_CREATE", interaction)
    *_, follow_up = await fake.wait_for("POST", FOLLOW_UP, count=count, timeout=30)
    return follow_up


async def test_nps_last_30d_is_deferred_then_answered_with_embed_and_png(discord_bot) -> None:  # type: ignore[no-untyped-def]
    fake, _ = discord_bot

    follow_up = await ask(fake, slash_command_interaction("nps last 30d"))

    (defer,) = fake.find("POST", CALLBACK)
    assert defer.json == {"type": 5, "data": {"flags": 64}}  # "thinking…", to the asker only
    assert fake.requests.index(defer) < fake.requests.index(follow_up)
    assert follow_up.json["flags"] & 64  # answers are ephemeral by default
    (embed,) = follow_up.json["embeds"]
    assert embed["title"] == "NPS"
    headline, comparison = embed["description"].split("\n")[:2]
    assert headline.startswith("**") and "n=" in headline  # the figure, bold, with its n
    assert "vs previous period" in comparison and comparison[0] in "▲▼="
    assert embed["color"] in TONE_COLOURS.values()
    assert [f["name"] for f in embed["fields"]][:3] == ["Promoters", "Passives", "Detractors"]
    assert "Demo synced" in embed["footer"]["text"]
    (part,) = follow_up.files
    assert part.filename.endswith(".png")  # discord.py sends no type: Discord sniffs it
    assert part.data.startswith(PNG_SIGNATURE) and len(part.data) > 10_000
    assert embed["image"]["url"] == f"attachment://{part.filename}"  # the chart in the embed
    (attachment,) = follow_up.json["attachments"]
    assert "NPS" in attachment["description"]  # the alt text screen readers get


async def test_a_malformed_query_gets_ephemeral_help_with_a_suggestion(discord_bot) -> None:  # type: ignore[no-untyped-def]
    fake, _ = discord_bot

    follow_up = await ask(fake, slash_command_interaction("npss lst 30d"))

    assert follow_up.json["flags"] & 64
    assert follow_up.files == []
    (embed,) = follow_up.json["embeds"]
    assert embed["title"] == "I could not read that query"
    assert "Did you mean “nps”?" in embed["description"]
    assert "/kpi help" in embed["description"]


async def test_revenue_is_refused_where_denied_and_answered_where_allowed(discord_bot) -> None:  # type: ignore[no-untyped-def]
    fake, _ = discord_bot

    refused = await ask(fake, in_channel("mrr vs previous", CHANNEL_ID))

    assert refused.json["flags"] & 64
    assert refused.files == []
    (embed,) = refused.json["embeds"]
    assert "not shown in this channel" in embed["title"]
    assert "$" not in str(embed)

    answered = await ask(fake, in_channel("mrr vs previous here", FINANCE_CHANNEL_ID), count=2)

    assert not answered.json.get("flags", 0) & 64  # "here": for the whole channel
    # The deferral was ephemeral, so its "thinking…" message went before the public answer.
    assert fake.find("DELETE", rf"{FOLLOW_UP}/messages/@original")
    (embed,) = answered.json["embeds"]
    assert embed["title"] == "MRR" and "$" in embed["description"]
    assert answered.files and answered.files[0].data.startswith(PNG_SIGNATURE)
