"""The platform-neutral Reply: how its free text splits into sections, where a tone shows."""

from __future__ import annotations

import pytest

from bot.replies import mark_change, text_sections


def test_titled_indented_lines_are_sections_and_everything_else_leads() -> None:
    text = (
        "⏰ Sent 2h late: kpibot was down at the scheduled time.\n"
        "Top MRR movers:\n  Acme: +$300\n  Initech: −$199\n"
        "Note:\n"  # a colon without indented lines under it is not a title
        "New detractor comments:\n  “Slow replies.” — NPS 5\n"
        "⚠ Figures marked stale come from a source that has not synced recently."
    )

    lead, sections = text_sections(text)

    assert lead.splitlines() == [
        "⏰ Sent 2h late: kpibot was down at the scheduled time.",
        "Note:",
        "⚠ Figures marked stale come from a source that has not synced recently.",
    ]
    assert sections == [
        ("Top MRR movers", "Acme: +$300\nInitech: −$199"),
        ("New detractor comments", "“Slow replies.” — NPS 5"),
    ]


@pytest.mark.parametrize(
    ("value", "marked"),
    [
        ("-16  ▼ 37", "-16  🔴 ▼ 37"),  # by the change
        ("4h 45m", "🔴 4h 45m"),  # no change: before the value
        ("▼ 3 vs previous period", "🔴 ▼ 3 vs previous period"),
        ("88  = unchanged", "88  🔴 = unchanged"),
    ],
)
def test_a_tone_mark_goes_by_the_change(value: str, marked: str) -> None:
    assert mark_change(value, "🔴 ") == marked
    assert mark_change(value, "") == value
