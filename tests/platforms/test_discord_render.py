"""Rendering a Reply as a Discord embed, autocomplete, and reading the configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.platforms.discord import (
    DEFAULT_API_URL,
    TONE_COLOURS,
    DiscordPlatform,
    Webhook,
    chart_filename,
    invite_url,
    notification_text,
    parse_guild_ids,
    render_embed,
    suggest_queries,
    webhooks_from_env,
)
from bot.replies import Chart, Field, Reply, Tone
from bot.settings import load_settings

TOKEN = "Zx9-secret_Token.abc"


def _size(embed: dict) -> int:
    return (
        len(embed.get("title", ""))
        + len(embed.get("description", ""))
        + len(embed.get("footer", {}).get("text", ""))
        + sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    )


@pytest.mark.parametrize("tone", list(Tone))
def test_the_embed_colour_follows_the_tone_of_the_comparison(tone: Tone) -> None:
    assert (
        render_embed(Reply(title="NPS", comparison="▲ 3", tone=tone))["color"]
        == (TONE_COLOURS[tone])
    )


def test_good_and_bad_are_told_apart_without_red_green() -> None:
    # Okabe–Ito bluish green and vermillion: distinct for deuteranopes and protanopes.
    assert TONE_COLOURS[Tone.GOOD] == 0x009E73
    assert TONE_COLOURS[Tone.BAD] == 0xD55E00


def test_a_help_reply_is_its_text_without_image_fields_or_footer() -> None:
    embed = render_embed(Reply(title="Help", kind="help", text="Try `/kpi nps last 30d`."))

    assert embed == {
        "title": "Help",
        "color": TONE_COLOURS[Tone.NEUTRAL],
        "description": "Try `/kpi nps last 30d`.",
    }


def test_the_headline_comparison_and_text_stack_in_the_description() -> None:
    embed = render_embed(
        Reply(title="CSAT", headline="CSAT 91%", comparison="▲ 2 pts", text="Best week since May")
    )

    assert embed["description"] == "**CSAT 91%**\n▲ 2 pts\n\nBest week since May"


def test_long_values_are_shortened_to_discords_limits() -> None:
    reply = Reply(
        title="t" * 300,
        text="x" * 5000,
        fields=tuple(Field(f"field {i}", "v" * 2000) for i in range(40)),
        context=("c" * 3000,),
    )

    embed = render_embed(reply)

    assert len(embed["title"]) == 256 and embed["title"].endswith("…")
    assert len(embed["footer"]["text"]) == 2048
    assert len(embed["fields"]) <= 25
    assert all(len(f["value"]) <= 1024 for f in embed["fields"])
    assert embed["fields"][-1]["value"].startswith("and ")
    assert _size(embed) <= 6000


def test_more_than_25_fields_end_with_how_many_are_left_out() -> None:
    fields = tuple(Field(f"KPI {i}", str(i)) for i in range(30))

    embed = render_embed(Reply(title="Digest", fields=fields))

    assert len(embed["fields"]) == 25
    assert embed["fields"][24] == {"name": "…", "value": "and 6 more", "inline": False}


def test_the_chart_is_shown_from_its_attachment() -> None:
    reply = Reply(title="NPS", chart=Chart(png=b"png", alt_text="NPS", filename="nps by week"))

    assert chart_filename(reply) == "nps_by_week.png"
    assert render_embed(reply)["image"] == {"url": "attachment://nps_by_week.png"}


def test_only_alerts_carry_message_text_for_notifications() -> None:
    assert notification_text(Reply(title="FRT p90 above 4h", kind="alert")) == "🔔 FRT p90 above 4h"
    assert notification_text(Reply(title="Morning digest", kind="digest")) is None


@pytest.mark.parametrize(
    "title", ["🚨 Alert: frt-high", "🔔 Reminder: frt-high", "✅ Resolved: frt-high"]
)
def test_an_alert_title_with_its_own_sign_gets_no_second_one(title: str) -> None:
    assert notification_text(Reply(title=title, kind="alert")) == title


def test_a_digest_has_its_kpis_inline_then_movers_and_comments_as_wide_fields() -> None:
    reply = Reply(
        title="Acme · Morning digest",
        kind="digest",
        fields=(Field("NPS", "-16  ▼ 37", Tone.BAD), Field("Ticket volume", "276  ▲ 21")),
        text=(
            "⚠ Figures marked stale come from a source that has not synced recently.\n"
            "Top MRR movers:\n  Acme: +$300 (expansion)\n  Initech: −$199 (churn)\n"
            "New detractor comments:\n  “Slow replies lately.” — NPS 5"
        ),
    )

    embed = render_embed(reply)

    assert embed["description"].startswith("⚠ Figures marked stale")
    assert [(f["name"], f["value"], f["inline"]) for f in embed["fields"]] == [
        ("NPS", "-16  🔴 ▼ 37", True),
        ("Ticket volume", "276  ▲ 21", True),
        ("Top MRR movers", "Acme: +$300 (expansion)\nInitech: −$199 (churn)", False),
        ("New detractor comments", "“Slow replies lately.” — NPS 5", False),
    ]


def test_the_footer_is_plain_text_without_markdown_backticks() -> None:
    embed = render_embed(
        Reply(title="🚨 Alert: frt-high", kind="alert", context=("Rule `frt-high`",))
    )

    assert embed["footer"]["text"] == "Rule frt-high"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("np", ["nps"]),
        ("", ["nps", "csat", "first_response_time"]),  # "NPS" is "nps" again
        ("RESP", ["first_response_time"]),
        ("nps last", ["nps last"]),
        ("zzz", []),
    ],
)
def test_autocomplete_completes_the_kpi_word(typed: str, expected: list[str]) -> None:
    assert suggest_queries(typed, ["nps", "NPS", "csat", "first_response_time"]) == expected


def test_autocomplete_offers_at_most_25_choices_of_100_characters() -> None:
    names = [f"kpi_{i}_" + "x" * 120 for i in range(40)]

    choices = suggest_queries("kpi", names)

    assert len(choices) == 25 and all(len(c) == 100 for c in choices)


def test_guild_ids_are_read_from_a_comma_separated_list() -> None:
    assert parse_guild_ids("123, 456 123\n789") == (123, 456, 789)
    assert parse_guild_ids(None) == ()


def test_a_guild_id_that_is_not_a_number_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_guild_ids("123,my-server")

    assert caught.value.key == "DISCORD_GUILD_IDS"


def test_a_webhook_shows_its_name_never_its_token() -> None:
    hook = Webhook.parse(
        f"https://discord.com/api/webhooks/123/{TOKEN}",
        label="webhook:alerts",
        env_var="DISCORD_ALERTS_WEBHOOK_URL",
    )

    assert (hook.id, hook.token, hook.thread_id) == ("123", TOKEN, None)
    assert TOKEN not in repr(hook) and TOKEN not in str(hook) and TOKEN not in f"{hook}"


def test_a_wrong_webhook_url_is_refused_without_echoing_it() -> None:
    url = f"https://example.com/hooks/{TOKEN}"

    with pytest.raises(ConfigError) as caught:
        Webhook.parse(url, label="webhook", env_var="DISCORD_WEBHOOK_URL")

    assert caught.value.key == "DISCORD_WEBHOOK_URL"
    assert TOKEN not in str(caught.value)


def test_webhook_urls_are_found_by_name_in_the_environment() -> None:
    env = {
        "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1/a",
        "DISCORD_ALERTS_WEBHOOK_URL": "https://discord.com/api/webhooks/2/b",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/x",
        "DISCORD_BOT_TOKEN": "t",
    }

    assert webhooks_from_env(env) == {
        "": "https://discord.com/api/webhooks/1/a",
        "alerts": "https://discord.com/api/webhooks/2/b",
    }


def test_the_platform_is_built_from_settings_and_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "kpibot.toml"
    config.write_text('[bot]\nanswers = "channel"\n', encoding="utf-8")
    env = {
        "DISCORD_BOT_TOKEN": "bot-token-123",
        "DISCORD_API_URL": "http://127.0.0.1:9999/api/v10",
        "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1/a",
        "DISCORD_ALERTS_WEBHOOK_URL": "https://discord.com/api/webhooks/2/b",
        "DISCORD_GUILD_IDS": "111,222",
    }
    settings = load_settings(env, config_path=config)

    platform = DiscordPlatform.from_settings(settings, environ=env, kpi_names=lambda: ["nps"])

    assert platform.token == "bot-token-123"
    assert platform.api_url == "http://127.0.0.1:9999/api/v10"
    assert platform.guild_ids == (111, 222)
    assert sorted(platform.webhooks) == ["", "alerts"]
    assert platform.answers_ephemeral is False
    assert list(platform.kpi_names()) == ["nps"]


def test_without_overrides_the_platform_talks_to_discord() -> None:
    env = {"DISCORD_BOT_TOKEN": "bot-token-123"}

    platform = DiscordPlatform.from_settings(load_settings(env), environ=env)

    assert platform.api_url == DEFAULT_API_URL == "https://discord.com/api/v10"
    assert platform.guild_ids == () and platform.webhooks == {}
    assert platform.answers_ephemeral is True


def test_the_invite_link_in_discord_md_is_the_one_the_code_builds() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "discord.md").read_text("utf-8")
    link = invite_url("<APPLICATION_ID>")

    assert link.endswith("scope=bot+applications.commands&permissions=117760")
    assert link in doc
