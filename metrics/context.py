"""The team's settings a KPI needs besides the query: built by the bot from its TOML config.

A ``MetricContext`` is immutable and validated on construction, so a bad configuration fails
at start-up (``ContextError``) rather than in the middle of answering a query.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from metrics.errors import ContextError

# The inputs of the customer health score, in the order they are reported.
HEALTH_INPUTS = ("usage", "satisfaction", "tickets", "payment")
DEFAULT_HEALTH_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"usage": 0.4, "satisfaction": 0.2, "tickets": 0.2, "payment": 0.2}
)

# An ISO 4217 code, e.g. "USD".
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class RetentionSpend:
    """Money spent on keeping customers (CSM salaries, programmes), booked on a local date.

    ``amount`` is in major units of the reporting currency. Spend for a month is usually
    booked on its first day; it counts towards a window that contains that local day.
    """

    on: date
    amount: float
    label: str = ""


@dataclass(frozen=True)
class MetricContext:
    """Everything a KPI needs to know about the team, besides the query and the data.

    * ``timezone``: windows and buckets are calendar days in this zone.
    * ``currency``: the reporting currency; revenue KPIs sum only the subscription periods
      billed in it and report the customers left out (``excluded_currencies``).
    * ``business_hours``: read ``*_business_minutes`` instead of calendar minutes.
    * ``gross_margin``: a fraction in (0, 1]; CLV is multiplied by it when set.
    * ``retention_spend``: entries summed by ``cost_of_retention``.
    * ``health_weights``: weight per health input (``HEALTH_INPUTS``); zero drops an input.
    * ``active_events``: the events that make a user "active"; empty means any event.
    """

    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    currency: str = "USD"
    business_hours: bool = False
    gross_margin: float | None = None
    retention_spend: tuple[RetentionSpend, ...] = ()
    health_weights: Mapping[str, float] = field(default_factory=lambda: DEFAULT_HEALTH_WEIGHTS)
    active_events: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.timezone, ZoneInfo):
            raise ContextError(f"timezone must be a ZoneInfo, not {self.timezone!r}")
        if not _CURRENCY.match(self.currency):
            raise ContextError(f"currency must be an ISO 4217 code like USD, not {self.currency!r}")
        if self.gross_margin is not None and not 0 < self.gross_margin <= 1:
            raise ContextError(f"gross_margin must be in (0, 1], not {self.gross_margin!r}")
        for entry in self.retention_spend:
            if not math.isfinite(entry.amount) or entry.amount < 0:
                raise ContextError(f"retention spend must be a positive amount: {entry!r}")
        unknown = set(self.health_weights) - set(HEALTH_INPUTS)
        if unknown:
            raise ContextError(
                f"unknown health inputs {sorted(unknown)}; known: {', '.join(HEALTH_INPUTS)}"
            )
        weights = dict(self.health_weights)
        if any(not math.isfinite(w) or w < 0 for w in weights.values()):
            raise ContextError("health weights must be finite and not negative")
        if not any(weights.values()):
            raise ContextError("at least one health weight must be positive")
        # A read-only copy, so that a caller's dict cannot change a frozen context later.
        object.__setattr__(self, "health_weights", MappingProxyType(weights))
        object.__setattr__(self, "retention_spend", tuple(self.retention_spend))
        object.__setattr__(self, "active_events", tuple(self.active_events))

    @classmethod
    def for_zone(cls, name: str, **kwargs: object) -> MetricContext:
        """A context for an IANA zone name, e.g. ``MetricContext.for_zone("Europe/Warsaw")``."""
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ContextError(f"unknown time zone {name!r}") from exc
        return cls(timezone=zone, **kwargs)  # type: ignore[arg-type]
