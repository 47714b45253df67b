"""Settings: secrets and the database URL from the environment, structure from TOML.

``load_settings()`` is called once at start-up. Anything wrong — a mistyped key, a wrong
type, an unknown time zone, a half-configured source — raises :class:`ConfigError` with
one message that names the key, says what was wrong and how to fix it. Unknown keys are
errors: a typo must never silently switch a feature off.

Secrets are ``SecretStr`` and never printed; :func:`secret_values` lists them for the log
redaction filter.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/kpibot.toml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TeamConfig(_Strict):
    name: str = "kpibot"
    timezone: str = "UTC"
    currency: str = "USD"
    # Report first response and resolution times in business hours (Zendesk's business
    # figures, from the schedule configured there) instead of calendar time.
    business_hours: bool = False

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as 'Europe/Warsaw'"
            ) from None
        return value

    @field_validator("currency")
    @classmethod
    def _currency_code(cls, value: str) -> str:
        if len(value) != 3 or not value.isalpha():
            raise ValueError(f"{value!r} is not an ISO 4217 code such as 'USD' or 'EUR'")
        return value.upper()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class BotConfig(_Strict):
    # Which chat platform `kpibot run` starts: auto picks Slack or Discord when their
    # tokens are in the environment, else the console.
    platform: Literal["auto", "console", "slack", "discord"] = "auto"
    chart_dir: str = "kpibot-charts"
    # Where a /kpi answer goes by default: only to the asker ("ephemeral") or the channel.
    answers: Literal["ephemeral", "channel"] = "ephemeral"
    alert_check_minutes: int = Field(default=5, ge=1, le=1440)
    # With several instances on one PostgreSQL database, a stand-by asks for the schedule
    # lock this often, so it takes over within seconds of the holder dying.
    lock_poll_seconds: float = Field(default=5.0, gt=0, le=300)
    # The delivery ledger: a failed digest or alert post is retried (never duplicated) up
    # to post_attempts times in all, first after retry_after_minutes, then twice as long
    # each time; a claim whose process went silent for claim_timeout_minutes is retried.
    post_attempts: int = Field(default=3, ge=1, le=20)
    retry_after_minutes: int = Field(default=5, ge=1, le=1440)
    claim_timeout_minutes: int = Field(default=10, ge=1, le=1440)


class SourceConfig(_Strict):
    interval_minutes: int = Field(default=30, ge=1, le=10080)
    lookback_minutes: int = Field(default=10, ge=0, le=10080)
    stale_after_minutes: int = Field(default=180, ge=1)


class DemoSourceConfig(SourceConfig):
    # The synthetic source: on by default only when no real source is configured.
    enabled: bool | None = None
    seed: int = 42


class ZendeskSourceConfig(SourceConfig):
    # Zendesk allows 10 incremental-export requests a minute, 30 with the High Volume API
    # add-on; kpibot paces its export requests to this instead of running into 429s.
    export_requests_per_minute: float = Field(default=10, gt=0)


class SourcesConfig(_Strict):
    demo: DemoSourceConfig = DemoSourceConfig()
    zendesk: ZendeskSourceConfig = ZendeskSourceConfig(interval_minutes=15)
    stripe: SourceConfig = SourceConfig(interval_minutes=60)
    delighted: SourceConfig = SourceConfig(interval_minutes=60)


class DigestConfig(_Strict):
    name: str
    channel: str  # "console:main", "slack:C0123ABC", "discord:123456789012345678"
    # Five-field cron, in the team's time zone: minute hour day month day-of-week.
    schedule: str = "0 9 * * mon-fri"
    kpis: list[str] = ["nps", "csat", "frt", "tickets", "backlog", "mrr"]
    window: str = "last 7d"
    # A digest missed by a short outage is sent late (once, saying so) within this grace;
    # later than that it is skipped and logged.
    grace_minutes: int = Field(default=120, ge=0, le=1440)
    # Top movers: customers with the largest MRR changes in the window (needs a revenue KPI
    # in the list and a channel allowed to see revenue); 0 for none.
    movers: int = Field(default=5, ge=0, le=20)
    # Newest NPS detractor comments in the window (needs a satisfaction KPI); 0 for none.
    detractor_comments: int = Field(default=3, ge=0, le=20)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from bot.schedule import standard_crontab

        try:
            standard_crontab(value)
        except ValueError as exc:
            raise ValueError(
                f"{value!r} is not a valid five-field cron expression such as "
                f"'0 9 * * mon-fri' ({exc})"
            ) from None
        return value


class AlertConfig(_Strict):
    """A threshold or relative-change rule on one KPI query."""

    name: str
    query: str  # a /kpi query without a grain, e.g. "frt p90 last 24h"
    channel: str
    above: float | None = None  # fire when the value is above this
    below: float | None = None  # … or below this
    drops_by: float | None = None  # fire when the value fell this much vs the comparison
    rises_by: float | None = None
    resolve_at: float | None = None  # hysteresis: resolve only past this value
    for_checks: int = Field(default=1, ge=1, le=100)  # consecutive breaching checks to fire
    # consecutive checks past the resolve level before it resolves (against flapping)
    resolve_checks: int = Field(default=1, ge=1, le=100)
    min_n: int = Field(default=1, ge=0)  # no alert on fewer observations
    repeat_every: str = "4h"  # reminders while firing; "0" for none
    by: str | None = None  # split by one dimension: one state per value
    mute: list[str] = []  # windows like "mon-fri 20:00-08:00", "sat-sun"

    @model_validator(mode="after")
    def _one_condition(self) -> AlertConfig:
        given = [
            k for k in ("above", "below", "drops_by", "rises_by") if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one condition: above, below, drops_by or rises_by"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.resolve_at is not None:
            # Hysteresis resolves on the safe side of the threshold, never beyond it.
            threshold = self.above if self.above is not None else self.below
            if self.above is not None and self.resolve_at > self.above:
                raise ValueError(
                    f"resolve_at ({self.resolve_at:g}) must be at most above ({threshold:g})"
                )
            if self.below is not None and self.resolve_at < self.below:
                raise ValueError(
                    f"resolve_at ({self.resolve_at:g}) must be at least below ({threshold:g})"
                )
            change = self.drops_by if self.drops_by is not None else self.rises_by
            if change is not None and not 0 <= self.resolve_at <= change:
                raise ValueError(
                    f"resolve_at ({self.resolve_at:g}) must be between 0 and {change:g}"
                )
        return self


class ChannelPermissions(_Strict):
    # KPI names, aliases or groups ("revenue", "support", "satisfaction", "product", "*").
    allow: list[str] = ["*"]
    deny: list[str] = []


class PermissionsConfig(_Strict):
    # Applies to channels without an entry of their own.
    default: ChannelPermissions = ChannelPermissions()
    channels: dict[str, ChannelPermissions] = {}


class SpendEntry(_Strict):
    month: str  # "2026-10"
    amount: float = Field(ge=0)

    @field_validator("month")
    @classmethod
    def _month(cls, value: str) -> str:
        try:
            date.fromisoformat(value + "-01")
        except ValueError:
            raise ValueError(f"{value!r} is not a month like '2026-10'") from None
        return value


class HealthWeights(_Strict):
    # The KPI engine's defaults (metrics/context.py, metrics/README.md).
    usage: float = Field(default=0.4, ge=0)
    satisfaction: float = Field(default=0.2, ge=0)
    tickets: float = Field(default=0.2, ge=0)
    payment: float = Field(default=0.2, ge=0)


class MetricsConfig(_Strict):
    gross_margin: float | None = Field(default=None, gt=0, le=1)  # CLV is margin-adjusted
    retention_spend: list[SpendEntry] = []
    health_weights: HealthWeights = HealthWeights()


class FileConfig(_Strict):
    team: TeamConfig = TeamConfig()
    bot: BotConfig = BotConfig()
    sources: SourcesConfig = SourcesConfig()
    metrics: MetricsConfig = MetricsConfig()
    permissions: PermissionsConfig = PermissionsConfig()
    digests: list[DigestConfig] = [DigestConfig(name="morning", channel="console:main")]
    alerts: list[AlertConfig] = []

    @model_validator(mode="after")
    def _unique_names(self) -> FileConfig:
        for kind, items in (("digests", self.digests), ("alerts", self.alerts)):
            seen: set[str] = set()
            for item in items:
                if item.name in seen:
                    raise ValueError(f"{kind}: the name {item.name!r} is used twice")
                seen.add(item.name)
        return self


# -- environment -----------------------------------------------------------------------


class SourceCredentials(BaseModel):
    model_config = ConfigDict(frozen=True)
    values: dict[str, SecretStr | str]
    base_url: str | None = None


# Every source and platform: (name, required env vars, optional env vars). Secrets are
# the variables whose names end in TOKEN, KEY or SECRET.
SOURCE_ENV: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "zendesk": (("ZENDESK_SUBDOMAIN", "ZENDESK_EMAIL", "ZENDESK_API_TOKEN"), ("ZENDESK_BASE_URL",)),
    "stripe": (("STRIPE_API_KEY",), ("STRIPE_BASE_URL",)),
    "delighted": (("DELIGHTED_API_KEY",), ("DELIGHTED_BASE_URL",)),
}
PLATFORM_ENV: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "slack": (("SLACK_BOT_TOKEN",), ("SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_API_URL")),
    "discord": (
        ("DISCORD_BOT_TOKEN",),
        ("DISCORD_API_URL", "DISCORD_GUILD_IDS", "DISCORD_WEBHOOK_URL"),
    ),
}
SECRET_SUFFIXES = ("TOKEN", "KEY", "SECRET", "WEBHOOK_URL")


def _is_secret(name: str) -> bool:
    return name.endswith(SECRET_SUFFIXES)


class Settings(BaseModel):
    """Everything a kpibot process needs, validated once."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    database_url: str
    config_path: Path | None  # None: built-in defaults
    config: FileConfig
    sources: dict[str, SourceCredentials]  # switched-on sources, by name
    platforms: dict[str, SourceCredentials]  # chat platforms with credentials
    log_level: str = "INFO"

    @property
    def tz(self) -> ZoneInfo:
        return self.config.team.tz

    def demo_enabled(self) -> bool:
        enabled = self.config.sources.demo.enabled
        return (not self.sources) if enabled is None else enabled

    def env(self, name: str) -> str | None:
        """A configured value (secret or not) by its environment variable name."""
        for group in (*self.sources.values(), *self.platforms.values()):
            if name in group.values:
                value = group.values[name]
                return value.get_secret_value() if isinstance(value, SecretStr) else value
        return None


def load_settings(
    environ: Mapping[str, str] | None = None, *, config_path: str | Path | None = None
) -> Settings:
    env = dict(os.environ if environ is None else environ)
    path, explicit = _config_path(env, config_path)
    config = _load_file(path, explicit)
    level = env.get("KPIBOT_LOG_LEVEL", "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(
            "KPIBOT_LOG_LEVEL",
            f"{level!r} is not a log level",
            "set it to DEBUG, INFO, WARNING or ERROR",
        )
    url = env.get("KPIBOT_DATABASE_URL") or "sqlite:///kpibot.db"
    if not url.startswith(("sqlite", "postgresql", "postgres://")):
        raise ConfigError(
            "KPIBOT_DATABASE_URL",
            "only SQLite and PostgreSQL URLs are supported",
            "use sqlite:///kpibot.db or postgresql://user@host/db",
        )
    return Settings(
        database_url=url,
        config_path=path if path and path.exists() else None,
        config=config,
        sources=_credentials(env, SOURCE_ENV),
        platforms=_platforms(env),
        log_level=level,
    )


def _config_path(env: Mapping[str, str], given: str | Path | None) -> tuple[Path, bool]:
    if given is not None:
        return Path(given), True
    if env.get("KPIBOT_CONFIG"):
        return Path(env["KPIBOT_CONFIG"]), True
    return DEFAULT_CONFIG_PATH, False


def _load_file(path: Path, explicit: bool) -> FileConfig:
    if not path.exists():
        if explicit:
            raise ConfigError(
                "KPIBOT_CONFIG",
                f"the file {str(path)!r} does not exist",
                "point KPIBOT_CONFIG at a TOML file, e.g. a copy of config/kpibot.example.toml",
            )
        return FileConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML ({exc})", "fix the syntax there") from None
    try:
        return FileConfig.model_validate(data)
    except ValidationError as exc:
        raise _config_error(path, exc) from None


def _config_error(path: Path, exc: ValidationError) -> ConfigError:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
    key = _dotted(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        valid = _valid_keys(FileConfig, loc[:-1])
        close = difflib.get_close_matches(loc[-1], valid, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(valid)}"
        return ConfigError(f"{path}: {key}", "unknown key", f"remove it or fix the name ({hint})")
    message = str(err["msg"]).removeprefix("Value error, ")
    fix = "see config/kpibot.example.toml for the expected form"
    if kind == "missing":
        message, fix = "required but missing", f"add {loc[-1]} = … there"
    return ConfigError(f"{path}: {key}" if key else str(path), message, fix)


def _dotted(loc: list[str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def _valid_keys(model: type[BaseModel], loc: list[str]) -> list[str]:
    current: Any = model
    for part in loc:
        if part.isdigit() or current is None:
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            current = _model_in(field.annotation) if field else None
        else:
            current = None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _credentials(
    env: Mapping[str, str], spec: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]
) -> dict[str, SourceCredentials]:
    out: dict[str, SourceCredentials] = {}
    for name, (required, optional) in spec.items():
        present = [k for k in required if env.get(k)]
        if not present:
            continue
        missing = [k for k in required if not env.get(k)]
        if missing:
            raise ConfigError(
                missing[0],
                f"{name} is half-configured: {', '.join(present)} is set but "
                f"{', '.join(missing)} is missing",
                f"set {', '.join(missing)} too, or unset {', '.join(present)}",
            )
        values: dict[str, SecretStr | str] = {}
        for key in (*required, *optional):
            if env.get(key):
                values[key] = SecretStr(env[key]) if _is_secret(key) else env[key]
        base = next(
            (env[k] for k in optional if k.endswith(("_BASE_URL", "_API_URL")) and env.get(k)), None
        )
        if base is not None and not base.startswith(("http://", "https://")):
            key = next(k for k in optional if env.get(k) == base)
            raise ConfigError(key, f"{base!r} is not an http(s) URL", "use e.g. https://…")
        out[name] = SourceCredentials(values=values, base_url=base)
    return out


def _platforms(env: Mapping[str, str]) -> dict[str, SourceCredentials]:
    platforms = _credentials(env, PLATFORM_ENV)
    # Discord through a channel webhook alone: digests and alerts, no gateway, no /kpi.
    if "discord" not in platforms and env.get("DISCORD_WEBHOOK_URL"):
        values: dict[str, SecretStr | str] = {
            "DISCORD_WEBHOOK_URL": SecretStr(env["DISCORD_WEBHOOK_URL"])
        }
        if env.get("DISCORD_API_URL"):
            values["DISCORD_API_URL"] = env["DISCORD_API_URL"]
        platforms["discord"] = SourceCredentials(values=values, base_url=env.get("DISCORD_API_URL"))
    return platforms


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every secret in the environment, for the log redaction filter."""
    env = os.environ if environ is None else environ
    return [v for k, v in env.items() if _is_secret(k) and len(v) >= 6]


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant; a bare date or naive time is read as UTC."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
