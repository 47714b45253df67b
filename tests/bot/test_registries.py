"""Meta-tests: every adapter on disk is in its registry, and every registry entry loads."""

from __future__ import annotations

from pathlib import Path

from bot.platforms import PLATFORMS, platform_class

ROOT = Path(__file__).parents[2]
NOT_ADAPTERS = {"__init__", "base", "slack_blocks"}


def test_every_platform_module_is_registered() -> None:
    on_disk = {p.stem for p in (ROOT / "bot" / "platforms").glob("*.py")} - NOT_ADAPTERS
    assert on_disk == set(PLATFORMS)


def test_every_registered_platform_has_a_name_and_from_settings() -> None:
    for name in PLATFORMS:
        cls = platform_class(name)
        assert cls.name == name
        assert callable(getattr(cls, "from_settings", None)), name
