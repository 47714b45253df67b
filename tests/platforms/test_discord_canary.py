"""Canaries: the discord.py internals kpibot relies on. A failure here means an upgrade of
discord.py changed them; re-check ``bot/platforms/discord.py`` before widening the pin."""

from __future__ import annotations

import discord
import discord.gateway
import discord.http
import discord.webhook.async_
import yarl

from bot.platforms.discord import point_rest_api_at
from tests.fakes.discord_api import point_gateway_at


def test_discord_py_is_the_minor_version_kpibot_was_checked_against() -> None:
    major, minor = discord.version_info.major, discord.version_info.minor
    assert (major, minor) == (2, 6), (
        f"discord.py {discord.__version__}: re-run these canaries and the Discord tests, "
        "then update the pin in pyproject.toml and this check"
    )


def test_rest_urls_are_built_from_the_route_base_at_request_time() -> None:
    previous = point_rest_api_at("http://127.0.0.1:1/api/v10/")
    try:
        route = discord.http.Route("GET", "/channels/{channel_id}", channel_id=123)
        assert route.url == "http://127.0.0.1:1/api/v10/channels/123"
    finally:
        point_rest_api_at(previous)
    assert discord.http.Route("GET", "/users/@me").url == previous + "/users/@me"


def test_interaction_callbacks_and_follow_ups_use_the_same_route_class() -> None:
    # Webhooks (interaction follow-ups) must follow DISCORD_API_URL too.
    assert discord.webhook.async_.Route is discord.http.Route


def test_the_gateway_url_is_a_class_attribute_tests_can_point_elsewhere() -> None:
    previous = point_gateway_at("ws://127.0.0.1:1/gateway")
    try:
        pointed = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        assert pointed == yarl.URL("ws://127.0.0.1:1/gateway")
    finally:
        point_gateway_at(previous)
    assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == previous
