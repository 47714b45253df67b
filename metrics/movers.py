"""What moved: the stories behind a digest's figures.

* :func:`mrr_movers` — the customers whose MRR changed most between two instants, read
  from the ``subscription_periods`` history with the same rule as the MRR KPI (MRR at t is
  the paid periods with ``valid_from < t <= valid_to``), each classified as new, expansion,
  contraction, churn or reactivation.
* :func:`detractor_comments` — the newest NPS detractor (0–6) comments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, case, func, or_, select

from metrics.kpis.base import PAID_STATUSES, money
from metrics.schema import Customer, SubscriptionPeriod, SurveyResponse


@dataclass(frozen=True)
class Comment:
    score: float
    comment: str
    customer_id: str | None
    responded_at: datetime


@dataclass(frozen=True)
class Mover:
    """One customer's MRR change over a window, in major units of the reporting currency."""

    customer_id: str
    name: str | None
    before: float
    after: float
    kind: str  # new, expansion, contraction, churn, reactivation

    @property
    def change(self) -> float:
        return self.after - self.before


def mrr_movers(
    conn: Connection, *, start: datetime, end: datetime, currency: str, limit: int = 5
) -> list[Mover]:
    """The ``limit`` customers with the largest MRR changes (either way) from ``start`` to
    ``end``; ties by customer id, so the list is the same on every database."""
    p = SubscriptionPeriod
    paid = p.status.in_(PAID_STATUSES)

    def alive(t: datetime):  # type: ignore[no-untyped-def]
        return and_(paid, p.valid_from < t, or_(p.valid_to.is_(None), p.valid_to >= t))

    before = func.sum(case((alive(start), p.mrr), else_=0))
    after = func.sum(case((alive(end), p.mrr), else_=0))
    rows = conn.execute(
        select(p.customer_id, before, after)
        .where(p.valid_from < end, or_(p.valid_to.is_(None), p.valid_to >= start))
        .group_by(p.customer_id)
    ).all()
    changes = [(cid, round(float(b or 0), 4), round(float(a or 0), 4)) for cid, b, a in rows]
    changes = [c for c in changes if c[1] != c[2]]
    changes.sort(key=lambda c: (-abs(c[2] - c[1]), c[0]))
    changes = changes[:limit]
    # A customer with no MRR at the start is new, unless they paid at some point before.
    starters = [cid for cid, b, _ in changes if b == 0]
    returning = set()
    if starters:
        returning = set(
            conn.execute(
                select(p.customer_id)
                .where(p.customer_id.in_(starters), paid, p.valid_from < start)
                .distinct()
            ).scalars()
        )
    top = []
    for cid, b, a in changes:
        if b == 0:
            kind = "reactivation" if cid in returning else "new"
        elif a == 0:
            kind = "churn"
        else:
            kind = "expansion" if a > b else "contraction"
        top.append((cid, money(b, currency), money(a, currency), kind))
    names: dict[str, str | None] = {}
    if top:
        found = conn.execute(
            select(Customer.id, Customer.name).where(Customer.id.in_([m[0] for m in top]))
        )
        names = {cid: name for cid, name in found}
    return [Mover(cid, names.get(cid), b, a, kind) for cid, b, a, kind in top]


def detractor_comments(
    conn: Connection,
    *,
    end: datetime,
    days: int = 7,
    limit: int = 3,
    start: datetime | None = None,
) -> list[Comment]:
    """The latest NPS detractor (0–6) comments in ``[start, end)`` (default: the ``days``
    before ``end``)."""
    since = start if start is not None else end - timedelta(days=days)
    stmt = (
        select(
            SurveyResponse.score,
            SurveyResponse.comment,
            SurveyResponse.customer_id,
            SurveyResponse.responded_at,
        )
        .where(
            SurveyResponse.kind == "nps",
            SurveyResponse.score <= 6,
            SurveyResponse.comment.is_not(None),
            SurveyResponse.comment != "",
            SurveyResponse.responded_at >= since,
            SurveyResponse.responded_at < end,
        )
        .order_by(SurveyResponse.responded_at.desc(), SurveyResponse.id)
        .limit(limit)
    )
    return [Comment(*row) for row in conn.execute(stmt).all()]
