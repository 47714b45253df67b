"""The KPI catalogue: every KPI is one declaration in ``KPIS``.

A declaration says what the KPI is called (name, aliases, title), how to read it (unit,
whether higher is better), how it can be asked for (statistics, grains, dimensions), which
warehouse tables it reads (so the bot can show how fresh the answer is) and which function
computes it. ``/kpi list``, ``/kpi help <kpi>`` and the query parser's allow-lists are all
generated from here. Adding a KPI is one function in ``metrics/kpis/`` plus one entry below
(and a hand-computed test: ``tests/metrics/test_catalogue.py`` fails without one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sqlalchemy import Connection

from metrics.errors import UnknownKPIError, did_you_mean
from metrics.kpis import health, product, revenue, satisfaction, support
from metrics.kpis.base import Computation, Request
from metrics.windows import GRAINS

Compute = Callable[[Connection, Request], Computation]

DURATION_STATISTICS = ("median", "mean", "count", "pNN")  # pNN: any of p1 … p99
TICKET_DIMENSIONS = ("channel", "group", "priority", "plan", "segment", "country")
CUSTOMER_DIMENSIONS = ("plan", "segment", "country")
CURRENCY = "currency"  # a declared unit meaning "the reporting currency's code"


@dataclass(frozen=True)
class KPI:
    name: str  # canonical, lower case, used in queries and results ("nps")
    title: str  # for people ("NPS")
    unit: str  # a Result unit, or CURRENCY
    higher_is_better: bool | None
    description: str  # one line, for /kpi list
    sources: tuple[str, ...]  # warehouse tables read
    compute: Compute
    aliases: tuple[str, ...] = ()
    default_statistic: str | None = None
    statistics: tuple[str, ...] = ()  # allowed besides the default
    dimensions: tuple[str, ...] = ()  # allowed in "by …"
    filters: tuple[str, ...] | None = None  # allowed in "where …=…"; None: the dimensions
    grains: tuple[str, ...] = GRAINS
    default_grain: str | None = None  # applied when a query has neither grain nor dimension
    rankable: bool = False  # "top N" / "bottom N" list entities (customers)
    requires: str | None = None  # a dimension the query must filter or split by
    # A level at the window's end (MRR, backlog, WAU, MAU), not a flow over the window: a
    # zero-length window still has one; a flow over no time has no value.
    snapshot: bool = False
    # Sums only the reporting currency's subscription periods, and says what it left out
    # (``excluded_currencies``): every revenue KPI.
    currency_scoped: bool = False
    example: str = ""

    @property
    def filter_keys(self) -> tuple[str, ...]:
        return self.dimensions if self.filters is None else self.filters

    def allows_statistic(self, statistic: str) -> bool:
        if statistic == self.default_statistic or statistic in self.statistics:
            return True
        return "pNN" in self.statistics and is_percentile(statistic)

    def unit_for(self, currency: str, statistic: str | None = None) -> str:
        """The unit of an answer: a count statistic counts observations (``frt count`` is
        a number of tickets, not minutes); a currency KPI is in the reporting currency."""
        if statistic == "count":
            return "count"
        return currency if self.unit == CURRENCY else self.unit


def is_percentile(statistic: str) -> bool:
    """``p1`` … ``p99`` (``p90``), written without leading zeros."""
    digits = statistic[1:]
    return (
        statistic.startswith("p")
        and digits.isascii()
        and digits.isdigit()
        and not digits.startswith("0")
        and 1 <= int(digits) <= 99
    )


KPIS: tuple[KPI, ...] = (
    KPI(
        name="nps",
        title="NPS",
        unit="score",
        higher_is_better=True,
        description="Net Promoter Score: % promoters (9–10) − % detractors (0–6), −100…100",
        sources=("survey_responses",),
        compute=satisfaction.net_promoter_score,
        aliases=("net_promoter_score",),
        dimensions=CUSTOMER_DIMENSIONS,
        example="nps last 30d",
    ),
    KPI(
        name="csat",
        title="CSAT",
        unit="percent",
        higher_is_better=True,
        description="Customer satisfaction: % satisfied answers (4–5 of 5, or Zendesk good)",
        sources=("survey_responses",),
        compute=satisfaction.customer_satisfaction,
        aliases=("satisfaction", "customer_satisfaction"),
        dimensions=CUSTOMER_DIMENSIONS,
        example="csat last 12w by week",
    ),
    KPI(
        name="ces",
        title="CES",
        unit="score",
        higher_is_better=True,
        description="Customer effort score: mean of the 1–7 “made it easy” answer (CES 2.0)",
        sources=("survey_responses",),
        compute=satisfaction.customer_effort_score,
        aliases=("effort", "customer_effort_score"),
        dimensions=CUSTOMER_DIMENSIONS,
        example="ces last quarter by month",
    ),
    KPI(
        name="frt",
        title="First response time",
        unit="minutes",
        higher_is_better=False,
        description="Creation → first public agent reply, tickets created in the window",
        sources=("tickets",),
        compute=support.first_response_time,
        aliases=(
            "first_response_time",
            "first_response",
            "first_reply_time",
            "first_reply",
            "response_time",
        ),
        default_statistic="median",
        statistics=DURATION_STATISTICS,
        dimensions=TICKET_DIMENSIONS,
        example="frt p90 this week by day",
    ),
    KPI(
        name="ttr",
        title="Time to resolution",
        unit="minutes",
        higher_is_better=False,
        description="Creation → latest solve, tickets solved in the window",
        sources=("tickets",),
        compute=support.time_to_resolution,
        aliases=("time_to_resolution", "resolution_time", "full_resolution_time"),
        default_statistic="median",
        statistics=DURATION_STATISTICS,
        dimensions=TICKET_DIMENSIONS,
        example="ttr p90 last month by week",
    ),
    KPI(
        name="fcr",
        title="First contact resolution",
        unit="percent",
        higher_is_better=True,
        description="% of tickets solved in the window with at most one reply and no reopen",
        sources=("tickets",),
        compute=support.first_contact_resolution,
        aliases=("first_contact_resolution", "one_touch"),
        dimensions=TICKET_DIMENSIONS,
        example="fcr last 30d by channel",
    ),
    KPI(
        name="backlog",
        title="Backlog",
        unit="count",
        higher_is_better=False,
        description="Unsolved tickets (new, open, pending, on hold): one value per day",
        sources=("tickets",),
        compute=support.backlog,
        aliases=("open_tickets", "unsolved"),
        dimensions=TICKET_DIMENSIONS,
        default_grain="day",
        snapshot=True,
        example="backlog since 2026-10-01",
    ),
    KPI(
        name="tickets",
        title="Ticket volume",
        unit="count",
        higher_is_better=None,
        description="Tickets created in the window",
        sources=("tickets",),
        compute=support.ticket_volume,
        aliases=("ticket_volume", "volume", "ticket"),
        dimensions=TICKET_DIMENSIONS,
        example="tickets yesterday by channel",
    ),
    KPI(
        name="mrr",
        title="MRR",
        unit=CURRENCY,
        higher_is_better=True,
        description="Monthly recurring revenue of paid subscriptions at the window's end",
        sources=("subscription_periods",),
        compute=revenue.monthly_recurring_revenue,
        aliases=("monthly_recurring_revenue", "revenue"),
        dimensions=CUSTOMER_DIMENSIONS,
        snapshot=True,
        currency_scoped=True,
        example="mrr vs previous",
    ),
)

REVENUE_RETENTION = dict(
    grains=GRAINS,
    filters=CUSTOMER_DIMENSIONS,
    sources=("subscription_periods",),
    currency_scoped=True,
)

KPIS += (
    KPI(
        name="mrr_movements",
        title="MRR movements",
        unit=CURRENCY,
        higher_is_better=True,
        description="Net new MRR = new + expansion + reactivation − contraction − churn",
        compute=revenue.mrr_movements,
        aliases=("movements", "net_new_mrr", "net_new"),
        example="mrr movements this month",
        **REVENUE_RETENTION,  # type: ignore[arg-type]
    ),
    KPI(
        name="churn",
        title="Customer churn rate",
        unit="percent",
        higher_is_better=False,
        description="% of the customers paying at the start who churned in the window",
        compute=revenue.customer_churn_rate,
        aliases=("customer_churn", "customer_churn_rate", "churn_rate", "logo_churn"),
        example="churn last 6m by month",
        **REVENUE_RETENTION,  # type: ignore[arg-type]
    ),
    KPI(
        name="gross_revenue_churn",
        title="Gross revenue churn",
        unit="percent",
        higher_is_better=False,
        description="(Churned + contraction MRR) ÷ MRR at the window's start",
        compute=revenue.gross_revenue_churn,
        aliases=("revenue_churn", "gross_mrr_churn", "mrr_churn"),
        example="revenue churn last quarter",
        **REVENUE_RETENTION,  # type: ignore[arg-type]
    ),
    KPI(
        name="net_revenue_churn",
        title="Net revenue churn",
        unit="percent",
        higher_is_better=False,
        description="(Churn + contraction − expansion − reactivation) ÷ MRR at start; may be < 0",
        compute=revenue.net_revenue_churn,
        aliases=("net_mrr_churn",),
        example="net revenue churn last 12m by month",
        **REVENUE_RETENTION,  # type: ignore[arg-type]
    ),
    KPI(
        name="nrr",
        title="Net revenue retention",
        unit="percent",
        higher_is_better=True,
        description="MRR at the end from customers paying at the start ÷ their MRR at start",
        compute=revenue.net_revenue_retention,
        aliases=("net_revenue_retention", "ndr", "net_dollar_retention"),
        example="nrr last 12m",
        **REVENUE_RETENTION,  # type: ignore[arg-type]
    ),
    KPI(
        name="grr",
        title="Gross revenue retention",
        unit="percent",
        higher_is_better=True,
        description="NRR without expansion: at most 100%",
        compute=revenue.gross_revenue_retention,
        aliases=("gross_revenue_retention",),
        example="grr last 12m",
        **REVENUE_RETENTION,  # type: ignore[arg-type]
    ),
    KPI(
        name="crr",
        title="Customer retention rate",
        unit="percent",
        higher_is_better=True,
        description="(Customers at end − new) ÷ customers at start",
        compute=revenue.customer_retention_rate,
        aliases=("customer_retention_rate", "retention", "customer_retention"),
        example="retention last quarter",
        **REVENUE_RETENTION,  # type: ignore[arg-type]
    ),
    KPI(
        name="clv",
        title="Customer lifetime value",
        unit=CURRENCY,
        higher_is_better=True,
        description="ARPA ÷ monthly customer churn rate (× gross margin when configured)",
        compute=revenue.customer_lifetime_value,
        aliases=("ltv", "lifetime_value", "customer_lifetime_value"),
        example="ltv last 12m",
        **REVENUE_RETENTION,  # type: ignore[arg-type]
    ),
    KPI(
        name="cost_of_retention",
        title="Cost of retention",
        unit=CURRENCY,
        higher_is_better=False,
        description="Configured retention spend in the window ÷ customers retained",
        compute=revenue.cost_of_retention,
        aliases=("retention_cost",),
        example="cost of retention last quarter",
        **REVENUE_RETENTION,  # type: ignore[arg-type]
    ),
    KPI(
        name="active_users",
        title="Active users",
        unit="users",
        higher_is_better=True,
        description="Distinct users with a qualifying event in the window",
        sources=("usage_events",),
        compute=product.active_users,
        aliases=("users", "actives"),
        filters=CUSTOMER_DIMENSIONS,
        example="active users last 30d by week",
    ),
    KPI(
        name="dau",
        title="DAU",
        unit="users",
        higher_is_better=True,
        description="Daily active users, averaged over the window's complete local days",
        sources=("usage_events",),
        compute=product.daily_active_users,
        aliases=("daily_active_users",),
        filters=CUSTOMER_DIMENSIONS,
        example="dau last 30d by week",
    ),
    KPI(
        name="wau",
        title="WAU",
        unit="users",
        higher_is_better=True,
        description="Weekly active users: distinct users in the 7 days to the window's end",
        sources=("usage_events",),
        compute=product.weekly_active_users,
        aliases=("weekly_active_users",),
        filters=CUSTOMER_DIMENSIONS,
        snapshot=True,
        example="wau this month by week",
    ),
    KPI(
        name="mau",
        title="MAU",
        unit="users",
        higher_is_better=True,
        description="Monthly active users: distinct users in the 30 days to the window's end",
        sources=("usage_events",),
        compute=product.monthly_active_users,
        aliases=("monthly_active_users",),
        filters=CUSTOMER_DIMENSIONS,
        snapshot=True,
        example="mau last 6m by month",
    ),
    KPI(
        name="stickiness",
        title="Stickiness (DAU/MAU)",
        unit="percent",
        higher_is_better=True,
        description="Mean DAU over the window ÷ MAU at its end",
        sources=("usage_events",),
        compute=product.stickiness,
        aliases=("dau_mau", "dau/mau"),
        filters=CUSTOMER_DIMENSIONS,
        example="stickiness last 30d",
    ),
    KPI(
        name="adoption",
        title="Adoption rate",
        unit="percent",
        higher_is_better=True,
        description="% of active users who used a feature (an event) in the window",
        sources=("usage_events",),
        compute=product.adoption_rate,
        aliases=("adoption_rate", "feature_adoption"),
        dimensions=("feature",),
        filters=("feature", *CUSTOMER_DIMENSIONS),
        requires="feature",
        example="adoption last 30d where feature=export",
    ),
    KPI(
        name="usage_rate",
        title="Product usage rate",
        unit="percent",
        higher_is_better=True,
        description="% of paying accounts with a qualifying event in the window",
        sources=("usage_events", "subscription_periods"),
        compute=product.product_usage_rate,
        aliases=("product_usage_rate", "usage", "account_usage"),
        filters=CUSTOMER_DIMENSIONS,
        example="usage rate last 30d",
    ),
    KPI(
        name="health",
        title="Customer health score",
        unit="score",
        higher_is_better=True,
        description="Weighted 0–100 score per paying customer: usage, satisfaction, tickets, "
        "payment",
        sources=("subscription_periods", "usage_events", "survey_responses", "tickets"),
        compute=health.customer_health,
        aliases=("health_score", "customer_health"),
        dimensions=CUSTOMER_DIMENSIONS,
        grains=(),
        rankable=True,
        example="health bottom 10",
    ),
)


def _index(kpis: tuple[KPI, ...]) -> Mapping[str, KPI]:
    by_name: dict[str, KPI] = {}
    for kpi in kpis:
        for word in (kpi.name, *kpi.aliases):
            if word in by_name:
                raise RuntimeError(f"{word!r} names both {by_name[word].name} and {kpi.name}")
            by_name[word] = kpi
    return MappingProxyType(by_name)


BY_NAME = _index(KPIS)  # names and aliases → KPI
# The most words a name or alias has ("first_response_time": 3): how far the parser looks.
MAX_NAME_WORDS = max(len(word.split("_")) for word in BY_NAME)


def get_kpi(name: str) -> KPI:
    """The KPI called ``name`` (or one of its aliases, any case, ``-`` or spaces as ``_``:
    ``first response time``)."""
    key = "_".join(name.split()).lower().replace("-", "_")
    try:
        return BY_NAME[key]
    except KeyError:
        suggestion = did_you_mean(key, BY_NAME)
        raise UnknownKPIError(f"There is no KPI called “{name}”.", suggestion) from None
