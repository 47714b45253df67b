"""Chat platform adapters, listed explicitly: ``PLATFORMS`` maps a name to its class.

Only ``bot/platforms/<name>.py`` imports a chat SDK; classes are imported when used
(:func:`platform_class`), so the console works without Slack or Discord installed or
configured. Every adapter has ``from_settings(settings, **kwargs)``.
"""

from __future__ import annotations

import importlib

PLATFORMS: dict[str, str] = {
    "console": "bot.platforms.console:ConsolePlatform",
    "discord": "bot.platforms.discord:DiscordPlatform",
    "slack": "bot.platforms.slack:SlackPlatform",
}


def platform_class(name: str) -> type:
    module, _, cls = PLATFORMS[name].partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]
