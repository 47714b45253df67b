"""A platform-neutral reply: what commands, digests and alerts produce.

Each platform renders it in its own way (Block Kit, a Discord embed with an attachment,
terminal text plus a PNG file). Nothing here knows about any platform.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Tone(StrEnum):
    """How a change reads for the KPI it belongs to: colour it, never guess it from the sign."""

    GOOD = "good"
    BAD = "bad"
    NEUTRAL = "neutral"


@dataclass(frozen=True)
class Field:
    label: str
    value: str
    tone: Tone = Tone.NEUTRAL


@dataclass(frozen=True)
class Chart:
    png: bytes
    alt_text: str
    filename: str = "chart.png"


@dataclass(frozen=True)
class Reply:
    """``kind`` is one of answer, help, error, refusal, digest, alert."""

    title: str
    kind: str = "answer"
    headline: str | None = None  # "NPS 42 ±6 (n=318)"
    comparison: str | None = None  # "▼ 9 vs previous 30 days"
    tone: Tone = Tone.NEUTRAL  # of the comparison
    fields: tuple[Field, ...] = ()
    text: str | None = None  # free text: help, errors, the body of an alert
    context: tuple[str, ...] = ()  # small print: window in words, freshness
    chart: Chart | None = None
    ephemeral: bool = False

    def plain_text(self) -> str:
        """A readable plain-text rendering: the fallback text every platform needs."""
        lines = [self.title]
        if self.headline:
            lines.append(self.headline + (f"   {self.comparison}" if self.comparison else ""))
        elif self.comparison:
            lines.append(self.comparison)
        if self.text:
            lines.append(self.text)
        lines.extend(f"{f.label}: {f.value}" for f in self.fields)
        lines.extend(self.context)
        return "\n".join(lines)
