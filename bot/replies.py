"""A platform-neutral reply: what commands, digests and alerts produce.

Each platform renders it in its own way (Block Kit, a Discord embed with an attachment,
terminal text plus a PNG file). Nothing here knows about any platform.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

ARROWS = ("▲", "▼", "= ")  # how a change starts: "▲ 3.1 pts", "= unchanged"


class Tone(StrEnum):
    """How a change reads for the KPI it belongs to: colour it, never guess it from the sign."""

    GOOD = "good"
    BAD = "bad"
    NEUTRAL = "neutral"


# A coloured emoji shows the same on light and dark themes, in Slack and Discord alike; the
# ▲/▼ beside it says the direction, the colour whether that is good for this KPI.
TONE_MARK = {Tone.GOOD: "🟢 ", Tone.BAD: "🔴 ", Tone.NEUTRAL: ""}


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
        """A readable plain-text rendering: the fallback text every platform needs.

        A digest's figures come before its sections (movers, comments), as on screen, so a
        notification's preview shows the KPIs.
        """
        lines = [self.title]
        if self.headline:
            lines.append(self.headline + (f"   {self.comparison}" if self.comparison else ""))
        elif self.comparison:
            lines.append(self.comparison)
        fields = [f"{f.label}: {f.value}" for f in self.fields]
        if self.kind == "digest" and self.text:
            lead, sections = text_sections(self.text)
            lines.extend(filter(None, [lead, *fields]))
            for title, body in sections:
                lines.append(f"{title}:")
                lines.extend(f"  {line}" for line in body.splitlines())
        else:
            lines.extend(filter(None, [self.text, *fields]))
        lines.extend(self.context)
        return "\n".join(lines)


def text_sections(text: str) -> tuple[str, list[tuple[str, str]]]:
    """``text`` as its leading lines and its titled sections.

    A section is a line ending in ":" followed by indented lines, as a digest writes
    "Top MRR movers:" and one "  Acme: +$300 (expansion)" line per customer. Platforms
    show a digest's sections after its figures and any other line (a warning) before.
    """
    lead: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    lines = text.splitlines()
    in_section = False
    for i, line in enumerate(lines):
        indented = line.startswith((" ", "\t"))
        if indented and in_section:
            sections[-1][1].append(line.strip())
        elif not indented and line.endswith(":") and lines[i + 1 : i + 2] != []:
            in_section = lines[i + 1].startswith((" ", "\t"))
            if in_section:
                sections.append((line[:-1].strip(), []))
            else:
                lead.append(line)
        else:
            in_section = False
            lead.append(line)
    return "\n".join(lead).strip(), [(title, "\n".join(body)) for title, body in sections]


def mark_change(value: str, mark: str) -> str:
    """``mark`` (a tone's colour) put before the change in ``value``, else before it all.

    "-16  ▼ 37" → "-16  🔴 ▼ 37": the colour belongs to the change, and the figures stay
    lined up down a column of fields whether or not they carry a colour.
    """
    if not mark:
        return value
    at = min((i for i in (value.find(a) for a in ARROWS) if i > 0), default=0)
    return value[:at] + mark + value[at:]
