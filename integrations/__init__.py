"""Data sources and the shared sync runner. ``integrations.SOURCES`` lists every source."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy, so that importing one connector's module does not import them all.
    if name == "SOURCES":
        from integrations.registry import SOURCES

        return SOURCES
    raise AttributeError(name)
