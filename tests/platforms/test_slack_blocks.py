"""Block Kit rendering and limits: every Reply renders to blocks Slack accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.platforms.slack_blocks import (
    MAX_FALLBACK_TEXT,
    fallback_text,
    fit_blocks,
    render_blocks,
    truncate,
)
from bot.replies import Field, Reply, Tone
from tests.fakes.slack_api import check_blocks

MANIFEST = Path(__file__).parents[2] / "config" / "slack-manifest.yml"


def test_an_answer_renders_header_figure_fields_and_small_print() -> None:
    reply = Reply(
        title="CSAT, last 7 days",
        headline="CSAT 91% (n=204)",
        comparison="▲ 3 pts vs previous 7 days",
        tone=Tone.GOOD,
        fields=(Field("Good", "186"), Field("Bad", "18", Tone.GOOD)),
        context=("24 – 30 Oct 2026",),
    )

    blocks = render_blocks(reply)

    assert check_blocks(blocks) == []
    figure = "*CSAT 91% (n=204)*\n🟢 ▲ 3 pts vs previous 7 days"
    assert blocks == [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": "CSAT, last 7 days", "emoji": True},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": figure}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": "*Good*\n186"},
                {"type": "mrkdwn", "text": "*Bad*\n🟢 18"},
            ],
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "24 – 30 Oct 2026"}]},
    ]


DIGEST = Reply(
    title="Acme · Morning digest",
    kind="digest",
    fields=(
        Field("NPS", "-16  ▼ 37", Tone.BAD),
        Field("Ticket volume", "276  ▲ 21"),
        Field("First contact resolution", "54.9%  ▲ 5.9 pts", Tone.GOOD),
    ),
    text=(
        "⚠ Figures marked stale come from a source that has not synced recently.\n"
        "Top MRR movers:\n  Acme: +$300 (expansion, $199 → $499)\n"
        "New detractor comments:\n  “Slow replies lately.” — NPS 5"
    ),
    context=("last 7d, vs the period before",),
)


def test_a_digest_shows_its_figures_before_its_movers_and_comments() -> None:
    blocks = render_blocks(DIGEST)

    assert check_blocks(blocks) == []
    assert [b["type"] for b in blocks] == ["header", *["section"] * 4, "context"]
    assert blocks[1]["text"]["text"].startswith("⚠ Figures marked stale")  # warnings first
    assert [f["text"] for f in blocks[2]["fields"]] == [
        "*NPS*\n-16  🔴 ▼ 37",  # the colour by the change, the figures lined up
        "*Ticket volume*\n276  ▲ 21",
        "*First contact resolution*\n54.9%  🟢 ▲ 5.9 pts",
    ]
    assert blocks[3]["text"]["text"] == "*Top MRR movers*\nAcme: +$300 (expansion, $199 → $499)"
    assert blocks[4]["text"]["text"].startswith("*New detractor comments*\n“Slow")


def test_a_digests_notification_text_starts_with_its_figures() -> None:
    lines = fallback_text(DIGEST).splitlines()

    assert lines[:3] == ["Acme · Morning digest", lines[1], "NPS: -16  ▼ 37"]
    assert lines[1].startswith("⚠")
    assert lines.index("Top MRR movers:") > lines.index(
        "First contact resolution: 54.9%  ▲ 5.9 pts"
    )
    assert "  Acme: +$300 (expansion, $199 → $499)" in lines


def test_a_neutral_comparison_has_no_colour_mark() -> None:
    blocks = render_blocks(Reply(title="Tickets", headline="412", comparison="▲ 3 vs last week"))
    assert blocks[1]["text"]["text"] == "*412*\n▲ 3 vs last week"


def test_user_text_cannot_become_mentions_or_links() -> None:
    reply = Reply(title="Did you mean?", text="unknown word <!channel> & <@U123>", ephemeral=True)
    (_, section) = render_blocks(reply)
    assert section["text"]["text"] == "unknown word &lt;!channel&gt; &amp; &lt;@U123&gt;"
    assert "<!channel>" not in fallback_text(reply)


def test_blank_text_adds_no_empty_section() -> None:
    assert [b["type"] for b in render_blocks(Reply(title="Digest", text="  "))] == ["header"]


def test_truncate_ends_in_an_ellipsis_within_the_limit() -> None:
    assert truncate("short", 10) == "short"
    cut = truncate("x" * 200, 150)
    assert len(cut) == 150 and cut.endswith("…")


def test_overlong_texts_are_truncated_not_refused() -> None:
    reply = Reply(
        title="T" * 400,
        headline="H" * 5000,
        text="x" * 9000,
        fields=(Field("label", "v" * 3000),),
        context=("c" * 4000,),
    )

    blocks = render_blocks(reply)

    assert check_blocks(blocks) == []
    assert len(blocks[0]["text"]["text"]) == 150
    assert all(b.get("text", {}).get("text", "").endswith("…") for b in blocks[:3])
    assert blocks[3]["fields"][0]["text"].endswith("…")


def test_more_than_ten_fields_become_several_sections() -> None:
    fields = tuple(Field(f"KPI {i}", str(i)) for i in range(25))

    blocks = render_blocks(Reply(title="Digest", fields=fields))

    assert check_blocks(blocks) == []
    assert [len(b["fields"]) for b in blocks[1:]] == [10, 10, 5]
    assert blocks[-1]["fields"][-1]["text"] == "*KPI 24*\n24"


def test_more_than_ten_context_lines_merge_into_the_tenth() -> None:
    blocks = render_blocks(Reply(title="Digest", context=tuple(f"line {i}" for i in range(13))))

    (context,) = blocks[1:]
    assert check_blocks(blocks) == []
    assert len(context["elements"]) == 10
    assert context["elements"][-1]["text"] == "line 9 · line 10 · line 11 · line 12"


def test_past_fifty_blocks_the_last_says_how_many_were_left_out() -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"#{i}"}} for i in range(60)]

    fitted = fit_blocks(blocks)

    assert check_blocks(fitted) == []
    assert len(fitted) == 50
    assert fitted[-1]["elements"][0]["text"] == "… 11 more not shown"


def test_the_fallback_text_stays_short_enough_for_notifications() -> None:
    reply = Reply(title="Alert", text="y" * 50_000)
    assert len(fallback_text(reply)) == MAX_FALLBACK_TEXT


def test_the_manifest_asks_for_exactly_the_scopes_kpibot_uses() -> None:
    yaml = pytest.importorskip("yaml")
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))

    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == [
        "chat:write",
        "commands",
        "files:write",
    ]
    (kpi,) = manifest["features"]["slash_commands"]
    assert kpi["command"] == "/kpi" and kpi["usage_hint"] and kpi["description"]
    assert manifest["settings"]["socket_mode_enabled"] is True
