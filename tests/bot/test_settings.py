from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.settings import load_settings, secret_values


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kpibot.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file_and_switch_the_demo_on(tmp_path: Path) -> None:
    settings = (
        load_settings({}, config_path=tmp_path / "absent.toml") if False else load_settings({})
    )
    assert settings.database_url == "sqlite:///kpibot.db"
    assert settings.config.team.timezone == "UTC"
    assert settings.demo_enabled()
    assert settings.sources == {}


def test_an_unknown_key_is_an_error_naming_it_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, '[team]\ntimezon = "Europe/Warsaw"\n')
    with pytest.raises(ConfigError) as info:
        load_settings({}, config_path=path)
    message = str(info.value)
    assert "team.timezon" in message
    assert "unknown key" in message
    assert "'timezone'" in message


def test_a_wrong_type_names_the_key_inside_a_list(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[digests]]\nname = "m"\nchannel = "console:main"\ngrace_minutes = "soon"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_settings({}, config_path=path)
    assert "digests[0].grace_minutes" in str(info.value)


def test_an_unknown_time_zone_says_what_a_valid_one_looks_like(tmp_path: Path) -> None:
    path = write(tmp_path, '[team]\ntimezone = "Europe/Warsow"\n')
    with pytest.raises(
        ConfigError, match=r"team.timezone: unknown time zone 'Europe/Warsow'.*IANA"
    ):
        load_settings({}, config_path=path)


def test_an_alert_needs_exactly_one_condition(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[alerts]]\nname = "a"\nquery = "nps last 7d"\nchannel = "c"\nabove = 1\nbelow = 0\n',
    )
    with pytest.raises(ConfigError, match=r"alerts\[0\].*exactly one condition.*above, below"):
        load_settings({}, config_path=path)


def test_invalid_toml_is_reported_with_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[team\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({}, config_path=path)


def test_a_missing_config_file_named_by_the_environment_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"KPIBOT_CONFIG.*does not exist"):
        load_settings({"KPIBOT_CONFIG": str(tmp_path / "nope.toml")})


def test_a_half_configured_source_names_the_missing_variable() -> None:
    env = {"ZENDESK_SUBDOMAIN": "acme", "ZENDESK_EMAIL": "a@b.c"}
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert info.value.key == "ZENDESK_API_TOKEN"
    assert "half-configured" in str(info.value)


def test_credentials_switch_a_source_on_and_the_demo_off() -> None:
    env = {"STRIPE_API_KEY": "sk_test_abcdef123456", "STRIPE_BASE_URL": "http://127.0.0.1:9"}
    settings = load_settings(env)
    assert "stripe" in settings.sources
    assert settings.sources["stripe"].base_url == "http://127.0.0.1:9"
    assert not settings.demo_enabled()
    assert settings.env("STRIPE_API_KEY") == "sk_test_abcdef123456"
    # the secret is not in the model's repr
    assert "sk_test_abcdef123456" not in repr(settings)


def test_a_base_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match="STRIPE_BASE_URL"):
        load_settings({"STRIPE_API_KEY": "sk_test_x", "STRIPE_BASE_URL": "127.0.0.1:9"})


def test_an_unsupported_database_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="KPIBOT_DATABASE_URL"):
        load_settings({"KPIBOT_DATABASE_URL": "mysql://x"})


def test_the_example_config_is_valid() -> None:
    example = Path(__file__).parents[2] / "config" / "kpibot.example.toml"
    settings = load_settings({}, config_path=example)
    assert settings.config.digests and settings.config.alerts


def test_secret_values_lists_only_secrets() -> None:
    env = {"SLACK_BOT_TOKEN": "xoxb-1234567", "ZENDESK_SUBDOMAIN": "acme", "X_API_KEY": "abc"}
    assert secret_values(env) == ["xoxb-1234567"]


def test_config_is_checked_against_the_kpi_catalogue(tmp_path: Path) -> None:
    from bot.commands import validate_config

    path = write(
        tmp_path, '[[digests]]\nname = "m"\nchannel = "console:main"\nkpis = ["nps", "nsp"]\n'
    )
    with pytest.raises(ConfigError, match=r"digests\[0\]\.kpis\[1\]"):
        validate_config(load_settings({}, config_path=path))
    path = write(
        tmp_path,
        '[[alerts]]\nname = "a"\nquery = "nps lats 7d"\nchannel = "console:main"\nabove = 1\n',
    )
    with pytest.raises(ConfigError, match=r"alerts\[0\]\.query"):
        validate_config(load_settings({}, config_path=path))
    example = Path(__file__).parents[2] / "config" / "kpibot.example.toml"
    validate_config(load_settings({}, config_path=example))


def test_the_example_config_documents_every_schedule_digest_and_alert_key() -> None:
    from bot.settings import AlertConfig, BotConfig, DigestConfig

    example = (Path(__file__).parents[2] / "config" / "kpibot.example.toml").read_text()
    for model in (BotConfig, DigestConfig, AlertConfig):
        for key in model.model_fields:
            assert key in example, f"{model.__name__}.{key} is not in kpibot.example.toml"


@pytest.mark.parametrize(
    "condition",
    [
        "above = 240\nresolve_at = 300",
        "below = 30\nresolve_at = 20",
        "drops_by = 10\nresolve_at = 12",
    ],
)
def test_hysteresis_must_resolve_on_the_safe_side(tmp_path: Path, condition: str) -> None:
    path = write(
        tmp_path,
        f'[[alerts]]\nname = "a"\nquery = "nps last 7d"\nchannel = "c"\n{condition}\n',
    )
    with pytest.raises(ConfigError, match=r"alerts\[0\].*resolve_at"):
        load_settings({}, config_path=path)


def test_a_digest_kpi_its_channel_may_not_show_is_a_config_error(tmp_path: Path) -> None:
    from bot.commands import validate_config

    path = write(
        tmp_path,
        '[permissions.default]\ndeny = ["revenue"]\n'
        '[[digests]]\nname = "m"\nchannel = "slack:C1"\nkpis = ["nps", "mrr"]\n',
    )
    with pytest.raises(ConfigError, match=r"digests\[0\]\.kpis\[1\].*mrr may not be shown"):
        validate_config(load_settings({}, config_path=path))


def test_general_help_lists_the_bot_commands_too(tmp_path: Path, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    from bot.commands import KpiService
    from bot.platforms.base import CommandRequest

    service = KpiService(sqlite_engine, load_settings({}), charts=False)
    reply = service.reply_for(CommandRequest(text="help", platform="console", channel_id="main"))
    assert reply.ephemeral and reply.kind == "help"
    for words in ("frt p90 this week by day", "/kpi alerts", "/kpi mute", "here"):
        assert words in (reply.text or "")
