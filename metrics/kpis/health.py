"""Customer health score: per paying customer, a weighted mean of normalised 0–100 inputs.

Inputs, each over the window and at its end (weights from ``MetricContext``):

* ``usage``: the share of the window's complete local days on which anyone at the account
  was active (partial days are left out, as for DAU; no complete day: left out);
* ``satisfaction``: the mean of the customer's NPS (score × 10) and CSAT answers (5-point:
  (score − 1) × 25; good/bad: × 100) in the window; left out when they gave none;
* ``tickets``: 100 − 25 per unsolved ticket at the window's end (0 from four on);
* ``payment``: 100 when every paid subscription is active, 0 when one is past due.

Score = Σ wᵢ·sᵢ ÷ Σ wᵢ over the inputs the customer has. Bands (Gainsight-style):
red < 50 ≤ yellow < 76 ≤ green. The KPI's value is the mean score of the paying customers
at the window's end; ``by plan`` averages per plan; ``bottom 10`` / ``top 10`` list customers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, and_, case, func, select

from metrics.kpis.base import (
    PAID_STATUSES,
    SOLVED_STATUSES,
    Cell,
    Computation,
    Request,
    dimension_series,
    filter_conditions,
    intervals_table,
    within,
)
from metrics.kpis.product import local_days, qualifying
from metrics.kpis.revenue import EPSILON, PERIODS
from metrics.result import Point
from metrics.schema import Customer, SubscriptionPeriod, SurveyResponse, Ticket, UsageEvent

RED_BELOW = 50.0
GREEN_FROM = 76.0
_P, _S, _T, _E = SubscriptionPeriod, SurveyResponse, Ticket, UsageEvent


def band(score: float) -> str:
    if score < RED_BELOW:
        return "red"
    return "yellow" if score < GREEN_FROM else "green"


@dataclass(frozen=True)
class CustomerHealth:
    customer: str
    name: str | None
    group: str | None  # the value of the query's dimension
    score: float
    inputs: Mapping[str, float | None]


def customer_health(conn: Connection, req: Request) -> Computation:
    scored = health_scores(conn, req)
    counts = {
        b: float(sum(1 for c in scored if band(c.score) == b)) for b in ("red", "yellow", "green")
    }
    total = Cell(_mean([c.score for c in scored]), len(scored), counts)
    if req.ranking is not None:
        descending = req.ranking.order == "top"
        ordered = sorted(scored, key=lambda c: (-c.score if descending else c.score, c.customer))
        series = tuple(
            Point(key=c.customer, label=c.name, value=c.score, n=1, extra=dict(c.inputs))
            for c in ordered[: req.ranking.count]
        )
        return Computation(total=total, series=series)
    if req.dimension:
        groups: dict[str, list[float]] = {}
        for c in scored:
            groups.setdefault(c.group or "(none)", []).append(c.score)
        return Computation(
            total=total,
            series=dimension_series({k: Cell(_mean(v), len(v)) for k, v in groups.items()}),
        )
    return Computation(total=total)


def health_scores(conn: Connection, req: Request) -> list[CustomerHealth]:
    """The health of every customer paying at the window's end (after the query's filters)."""
    start, end = req.window.start, req.window.end
    weights = {k: w for k, w in req.ctx.health_weights.items() if w > 0}

    # Who: paying at the end, and whether any of their paid subscriptions is past due.
    alive = (_P.valid_from < end) & (_P.valid_to.is_(None) | (_P.valid_to >= end))
    dim = Customer.plan if req.dimension is None else PERIODS.dimension(req.dimension)
    who = (
        select(
            _P.customer_id,
            func.max(case((_P.status == "past_due", 1), else_=0)),
            func.max(Customer.name),
            func.max(dim),
        )
        .select_from(_P)
        .outerjoin(Customer, Customer.id == _P.customer_id)
        .where(_P.status.in_(PAID_STATUSES), alive, *filter_conditions(req, PERIODS))
        .group_by(_P.customer_id)
        .having(func.sum(_P.mrr) > EPSILON)
    )
    customers = {row[0]: row[1:] for row in conn.execute(who)}
    if not customers:
        return []

    days = local_days(req.window)
    b = intervals_table(days)
    usage_stmt = (
        select(_E.account_id, func.count(func.distinct(b.c.idx)))
        .select_from(b)
        .join(_E, within(_E.occurred_at)(b))
        .where(_E.account_id.is_not(None), *qualifying(req))
        .group_by(_E.account_id)
    )
    active_days = {account: int(n) for account, n in conn.execute(usage_stmt)}

    normalised = case(
        ((_S.kind == "nps"), _S.score * 10),
        ((_S.scale_max == 5), (_S.score - 1) * 25),
        else_=_S.score * 100,
    )
    answers = (
        select(_S.customer_id, func.sum(normalised), func.count())
        .where(
            _S.responded_at >= start,
            _S.responded_at < end,
            _S.customer_id.is_not(None),
            ((_S.kind == "nps") & (_S.scale_max == 10))
            | ((_S.kind == "csat") & _S.scale_max.in_((5, 1))),
        )
        .group_by(_S.customer_id)
    )
    satisfaction = {c: float(total) / int(n) for c, total, n in conn.execute(answers)}

    solved_before = and_(
        _T.status.in_(SOLVED_STATUSES), func.coalesce(_T.solved_at, _T.created_at) < end
    )
    unsolved = (
        select(_T.customer_id, func.count())
        .where(_T.customer_id.is_not(None), _T.status != "deleted", _T.created_at < end,
               ~solved_before)
        .group_by(_T.customer_id)
    )  # fmt: skip
    open_tickets = {c: int(n) for c, n in conn.execute(unsolved)}

    out = []
    for customer, (past_due, name, group) in customers.items():
        inputs: dict[str, float | None] = {
            "usage": (min(100.0, 100 * active_days.get(customer, 0) / len(days)) if days else None),
            "satisfaction": satisfaction.get(customer),
            "tickets": max(0.0, 100 - 25 * open_tickets.get(customer, 0)),
            "payment": 0.0 if past_due else 100.0,
        }
        used = {k: w for k, w in weights.items() if inputs[k] is not None}
        if not used:
            continue
        score = sum(w * float(inputs[k] or 0) for k, w in used.items()) / sum(used.values())
        inputs["open_tickets"] = float(open_tickets.get(customer, 0))
        out.append(CustomerHealth(customer, name, group, round(score, 10), inputs))
    return out


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 10) if values else None
