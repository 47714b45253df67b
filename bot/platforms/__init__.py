"""Chat platform adapters, listed explicitly: ``PLATFORMS`` maps a name to its module.

Only ``bot/platforms/<name>.py`` imports a chat SDK; modules are imported when used, so the
console works without Slack or Discord being configured.
"""

from __future__ import annotations

PLATFORMS: dict[str, str] = {
    "console": "bot.platforms.console",
}
