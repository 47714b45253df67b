"""Derived tables: the warehouse precomputed so that KPIs read less, and never differently.

``mrr_changes`` holds every customer's MRR timeline (one row per instant at which their
MRR changed, with the movement it makes), so that MRR movements and the retention KPIs are
a range scan of a window instead of a sort of all subscription history per query.

It can never make an answer wrong, because staleness is tracked by the database itself:
triggers on ``subscription_periods`` list every customer whose periods are inserted,
deleted or changed in ``mrr_pending``, whoever writes them. :func:`mrr_timeline` reads the
stored rows of every other customer and computes the listed customers' timelines from
``subscription_periods`` on the fly (with the very statement :func:`refresh_derived`
stores), in one statement, so a stale or never-built table costs time, not correctness.
:func:`refresh_derived` (the bot calls it after each sync) folds the pending customers in
and clears their marks, which keeps the fast path fast.

Why not a watermark (the largest ``updated_at`` the table was built from)? ``updated_at``
is the *source's* modification time, not the time we wrote the row: a late page, a
look-back window, a backfill or a hand-made fix writes rows older than the watermark, and a
deleted period leaves no ``updated_at`` at all. Each of those would be skipped silently.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Select,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    null,
    select,
    union_all,
)

from metrics.kpis.base import PAID_STATUSES
from metrics.schema import MrrChange, MrrPending, SubscriptionPeriod

# Below half a hundredth of a cent, an MRR is zero (sums of floats leave crumbs).
EPSILON = 0.005

_P = SubscriptionPeriod
_C = MrrChange.__table__
TIMELINE_COLUMNS = (
    "customer_id", "currency", "changed_at", "delta", "mrr_before", "mrr_after", "kind", "amount",
    "previous_at", "next_at",
)  # fmt: skip


def computed_timeline(customers: ColumnElement[bool]) -> Select[Any]:
    """The ``mrr_changes`` rows of the customers matching ``customers`` (a condition on
    ``subscription_periods``), computed from their paid periods.

    Each currency a customer pays in is a timeline of its own (money in two currencies does
    not add up without exchange rates): a customer moving from dollars to euros is new
    business in euros and churn in dollars, as it is when MRR is summed from the periods
    of one currency.

    A customer's MRR changes where one of their paid periods starts or ends; changes at the
    same instant are netted (a plan switch is one expansion, not a churn and a new). Moving
    from 0 is new business the first time and reactivation after; moving to 0 is churn, so
    a customer churns only when their last paid subscription ends; anything else is
    expansion or contraction. A change of less than EPSILON, or one between two zeros,
    keeps its row (it still borders the customer's stretches of MRR) but is no movement.
    """
    paid = (
        select(_P.customer_id, _P.currency, _P.valid_from, _P.valid_to, _P.mrr)
        .where(_P.status.in_(PAID_STATUSES), _P.mrr > EPSILON, customers)
        .cte("paid")
    )
    deltas = union_all(
        select(paid.c.customer_id.label("customer"), paid.c.currency,
               paid.c.valid_from.label("t"), paid.c.mrr.label("d")),
        select(paid.c.customer_id, paid.c.currency, paid.c.valid_to, -paid.c.mrr).where(
            paid.c.valid_to.is_not(None)
        ),
    ).cte("deltas")  # fmt: skip
    changes = (
        select(deltas.c.customer, deltas.c.currency, deltas.c.t, func.sum(deltas.c.d).label("d"))
        .group_by(deltas.c.customer, deltas.c.currency, deltas.c.t)
        .cte("changes")
    )
    by_customer: dict[str, Any] = {
        "partition_by": (changes.c.customer, changes.c.currency),
        "order_by": changes.c.t,
    }
    timeline = select(
        changes.c.customer,
        changes.c.currency,
        changes.c.t,
        changes.c.d,
        func.sum(changes.c.d).over(**by_customer, rows=(None, 0)).label("after"),
        # The first change of a customer is their first payment (periods have MRR > 0).
        func.row_number().over(**by_customer).label("nth"),
        func.lag(changes.c.t).over(**by_customer).label("previous_at"),
        func.lead(changes.c.t).over(**by_customer).label("next_at"),
    ).cte("timeline")
    after, d = timeline.c.after, timeline.c.d
    before = after - d
    kind = case(
        (func.abs(d) <= EPSILON, null()),
        ((before <= EPSILON) & (after <= EPSILON), null()),
        ((before <= EPSILON) & (timeline.c.nth == 1), "new"),
        (before <= EPSILON, "reactivation"),
        (after <= EPSILON, "churn"),
        (d > 0, "expansion"),
        else_="contraction",
    )
    amount = case(
        (before <= EPSILON, after), (after <= EPSILON, before), (d > 0, d), else_=-d
    )  # fmt: skip
    return select(
        timeline.c.customer.label("customer_id"),
        timeline.c.currency,
        timeline.c.t.label("changed_at"),
        d.label("delta"),
        before.label("mrr_before"),
        after.label("mrr_after"),
        kind.label("kind"),
        amount.label("amount"),
        timeline.c.previous_at,
        timeline.c.next_at,
    )


def mrr_timeline(conn: Connection) -> FromClause:
    """What KPIs read as ``mrr_changes``: the stored rows, except for customers whose
    periods changed since they were stored, whose rows are computed here instead."""
    if conn.execute(select(literal(1)).select_from(MrrPending).limit(1)).first() is None:
        return _C  # the usual case after a refresh: a plain range scan
    pending = select(MrrPending.customer_id)
    stored = select(*(_C.c[name] for name in TIMELINE_COLUMNS)).where(
        _C.c.customer_id.not_in(pending)
    )
    live = computed_timeline(_P.customer_id.in_(pending))
    return union_all(stored, live).subquery("mrr_timeline")


def refresh_derived(conn: Connection, *, batch: int = 500) -> int:
    """Bring ``mrr_changes`` up to date for the customers whose periods changed; returns
    how many were rebuilt.

    Runs in the caller's transaction and commits nothing: call it as
    ``with engine.begin() as conn: refresh_derived(conn)``, after a sync. Calling it is
    never needed for a right answer, only for a fast one (see the module docstring). A mark
    made while it runs has a new ``version`` and survives it, to be folded in next time.
    """
    marks = conn.execute(select(MrrPending.customer_id, MrrPending.version)).all()
    clear = delete(MrrPending).where(
        MrrPending.customer_id == bindparam("marked_customer"),
        MrrPending.version == bindparam("marked_version"),
    )
    for first in range(0, len(marks), batch):
        chunk = marks[first : first + batch]
        ids = [customer for customer, _ in chunk]
        conn.execute(delete(MrrChange).where(MrrChange.customer_id.in_(ids)))
        conn.execute(
            insert(MrrChange).from_select(
                list(TIMELINE_COLUMNS), computed_timeline(_P.customer_id.in_(ids))
            )
        )
        conn.execute(clear, [{"marked_customer": c, "marked_version": v} for c, v in chunk])
    return len(marks)
