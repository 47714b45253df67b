"""A synthetic source: believable customer data, offline, the same for a seed.

It is a connector like any other, synced through the same runner, so ``kpibot demo``
exercises the real pipeline. What it makes:

* customers signing up every couple of days since 2023, on monthly and annual plans,
  with trials, upgrades, downgrades, failed payments, churn and reactivation, recorded
  as the subscription periods MRR is computed from, plus invoices;
* tickets with lognormal first-reply and resolution times, more of them on weekdays and in
  working hours, replies after hours waiting for the next morning;
* NPS, CSAT and CES answers, and product usage events;
* a storyline in the last two weeks: an incident brings a wave of slowly answered tickets
  and unhappy survey answers, so that the demo's alerts have something to say.

**One world, served as it stands at ``end``.** Every record is drawn from a random
generator keyed by the seed and the record's own identity (the customer, the day) — never
by ``end`` — and has a timeline (a ticket is created, answered, solved, closed; a
subscription changes plan and ends). The source serves the state of that world at ``end``:
a ticket solved after ``end`` is served open, a reply, an answer or an invoice after
``end`` does not exist yet, a period that ends after ``end`` is open, and ``updated_at``
is the last change before ``end``. So the same seed and ``end`` give the same data, a
later ``end`` only adds what happened in between, and an incremental sync at T followed
by one at T+Δ leaves exactly what one sync at T+Δ does.

Two things depend on ``end``'s UTC day (the *world day*), and an incremental sync is told
about both through deletions:

* **Retention.** Tickets (with their CSAT answers) and NPS/CES answers are kept for 365
  days back from the start of the world day, invoices for 396, usage events for 120; what
  falls out of that window when the day changes is reported deleted.
* **The storyline** is a layer of extra records over the 14 days up to the world day,
  stronger towards it, so that whenever the demo runs, the last week is worse than the
  one before. It is redrawn when the day changes: the previous day's layer is reported
  deleted and the new one is served with ``updated_at`` no earlier than 00:00 UTC of the
  world day (when it appeared). Everything outside the layer never changes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar

from integrations.base import Page, RawRecord, Row, Stream
from metrics.schema import (
    Customer,
    Invoice,
    Subscription,
    SubscriptionItem,
    SubscriptionPeriod,
    SurveyResponse,
    Ticket,
    UsageEvent,
)

DAY = timedelta(days=1)

# The demo company's first customer signs up on this day; a new one every SIGNUP_DAYS.
ORIGIN = datetime(2023, 1, 1, tzinfo=UTC)
SIGNUP_DAYS = 2.2
# Days kept back from the start of the world day; older records are reported deleted.
KEEP_DAYS = {"tickets": 365, "survey_responses": 365, "invoices": 396, "usage_events": 120}
# Billing is simulated this far past ``end``: a cancellation is dated up to 10 days before
# the churn it announces, so a churn just after ``end`` can show before it.
LOOKAHEAD = timedelta(days=11)

# name → (monthly price in cents, annual price in cents)
PLANS: dict[str, tuple[int, int]] = {
    "starter": (4_900, 49_000),
    "growth": (19_900, 199_000),
    "business": (49_900, 499_000),
    "enterprise": (149_900, 1_499_000),
}
PLAN_ORDER = list(PLANS)
SEGMENT_OF_PLAN = {"starter": "smb", "growth": "smb", "business": "mid-market"}
CHANNELS = (("email", 0.45), ("chat", 0.25), ("web", 0.2), ("phone", 0.1))
GROUPS = (("Support", 0.6), ("Billing", 0.2), ("Technical", 0.2))
PRIORITIES = (("low", 0.2), ("normal", 0.55), ("high", 0.2), ("urgent", 0.05))
AGENTS = ("Ana", "Bartek", "Chloé", "Dev", "Emeka", "Fumiko", "Gosia", "Hugo")
# Median minutes to the first reply, by channel.
FRT_MEDIAN = {"chat": 25.0, "phone": 15.0, "web": 150.0, "email": 210.0}
FEATURES = ("dashboard_viewed", "report_exported", "integration_connected", "alert_created")
DETRACTOR_COMMENTS = (
    "Took two days to get a first answer.",
    "Support keeps asking for the same logs.",
    "The new billing page is confusing.",
    "Export to CSV has been broken for a week.",
    "Slow replies lately, we are considering alternatives.",
)
PROMOTER_COMMENTS = (
    "Great product, the team is very responsive.",
    "Saves us hours every week.",
    None,
    None,
)
INCIDENT_SUBJECTS = (
    "Exports fail since the last release",
    "Dashboards not loading",
    "Alerts arrive hours late",
    "Sync stuck at 0%",
)
# Weights of NPS answers 0..10: ≈ NPS 35 normally; the incident's answers ≈ NPS −75.
NPS_CALM = (1, 1, 1, 2, 2, 3, 5, 10, 18, 27, 30)
NPS_UPSET = (9, 9, 10, 11, 11, 12, 13, 10, 7, 4, 4)
CSAT_CALM = (4, 5, 8, 28, 55)
CSAT_SLOW = (12, 12, 16, 30, 30)  # when the first reply took more than a day
CSAT_UPSET = (40, 30, 15, 10, 5)
CES_CALM = (2, 3, 5, 10, 22, 33, 25)
CES_UPSET = (20, 22, 20, 15, 10, 8, 5)
WORK_START, WORK_END = 8, 18  # working hours, UTC, Monday to Friday
STORY_DAYS = 14
TICKETS_PER_ACCOUNT = 0.085  # a weekday's expected tickets per active account (weekends: ⅓)


@dataclass
class DemoData:
    customers: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    subscription_items: list[dict[str, Any]] = field(default_factory=list)
    subscription_periods: list[dict[str, Any]] = field(default_factory=list)
    invoices: list[dict[str, Any]] = field(default_factory=list)
    tickets: list[dict[str, Any]] = field(default_factory=list)
    survey_responses: list[dict[str, Any]] = field(default_factory=list)
    usage_events: list[dict[str, Any]] = field(default_factory=list)


def generate(seed: int, end: datetime, *, scale: float = 1.0) -> DemoData:
    """The demo world as it stands at ``end`` (aware): deterministic for (seed, end).
    Each stream's records are sorted by (``updated_at``, ``id``). ``scale`` multiplies
    the number of customers (and so of everything else); tests use a small world."""
    return _World(seed, end, scale).data()


def deleted_since(
    seed: int, since: datetime, end: datetime, *, scale: float = 1.0
) -> dict[str, list[str]]:
    """Ids that may have been served at some instant in [since, end) and are not at
    ``end``: records past retention, and earlier days' storyline layers. A superset is
    harmless (deleting what is not stored does nothing)."""
    return _World(seed, end, scale).deleted_since(since)


def _rng(seed: int, *key: object) -> random.Random:
    """A generator for one thing (a customer, a day…): the same whatever else is drawn."""
    return random.Random(":".join(str(k) for k in (seed, *key)))


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time(), UTC)


def _days(first: date, last: date) -> Iterator[date]:
    """Days from ``first`` up to and including ``last``."""
    d = first
    while d <= last:
        yield d
        d += DAY


# -- billing ------------------------------------------------------------------------------


@dataclass
class _Subscription:
    id: str
    customer_id: str
    annual: bool
    discount: float | None
    trial_end: datetime | None
    periods: list[tuple[datetime, str, str, int]]  # (from, status, plan, qty), ascending
    ended: datetime | None
    canceled_at: datetime | None

    @property
    def start(self) -> datetime:
        return self.periods[0][0]


def _simulate(
    rng: random.Random, cid: str, created: datetime, plan: str, until: datetime
) -> list[_Subscription]:
    """A customer's subscriptions from sign-up to ``until``. Draws are made in time order,
    so simulating further never changes what was drawn before."""
    annual = rng.random() < 0.25
    discount = 20.0 if rng.random() < 0.1 else None
    subs: list[_Subscription] = []
    t = created
    sub_no = 0
    while t < until:
        sub_no += 1
        trial_end = t + timedelta(days=14) if sub_no == 1 and rng.random() < 0.6 else None
        periods: list[tuple[datetime, str, str, int]] = []
        qty = rng.randint(1, 5) if plan == "business" else 1
        if trial_end:
            periods.append((t, "trialing", plan, qty))
        t_paid = trial_end or t
        periods.append((t_paid, "active", plan, qty))
        step = timedelta(days=365 if annual else 30)
        cursor = t_paid + step
        ended: datetime | None = None
        while cursor < until:
            roll = rng.random()
            churn_p = 0.12 if annual else 0.022
            if roll < churn_p:
                ended = _second(cursor + timedelta(hours=rng.uniform(0, 20)))
                break
            change = _second(cursor + timedelta(hours=rng.uniform(1, 20)))
            if roll < churn_p + 0.03 and plan != PLAN_ORDER[-1]:
                plan = PLAN_ORDER[PLAN_ORDER.index(plan) + 1]
                periods.append((change, "active", plan, qty))
            elif roll < churn_p + 0.045 and plan != PLAN_ORDER[0]:
                plan = PLAN_ORDER[PLAN_ORDER.index(plan) - 1]
                periods.append((change, "active", plan, qty))
            elif roll < churn_p + 0.06 and plan == "business":
                seats = max(1, qty + rng.choice((-1, 1, 2)))
                if seats != qty:  # one seat cannot go: no change, no new period
                    qty = seats
                    periods.append((change, "active", plan, qty))
            elif roll < churn_p + 0.07:
                # a failed payment: past due for a few days, still counted in MRR
                periods.append((cursor, "past_due", plan, qty))
                periods.append(
                    (_second(cursor + timedelta(days=rng.uniform(2, 6))), "active", plan, qty)
                )
            cursor += step
        canceled = _second(ended - timedelta(days=rng.uniform(0, 10))) if ended else None
        subs.append(
            _Subscription(
                id=f"sub_{cid[4:]}_{sub_no}",
                customer_id=cid,
                annual=annual,
                discount=discount,
                trial_end=trial_end,
                periods=[p for p in periods if ended is None or p[0] < ended],
                ended=ended,
                canceled_at=canceled,
            )
        )
        if ended is None:
            break
        # Churned: some come back weeks or months later on a fresh subscription.
        if rng.random() < 0.3:
            t = _second(ended + timedelta(days=rng.uniform(20, 150)))
        else:
            break
    return subs


# -- support ------------------------------------------------------------------------------


@dataclass
class _Ticket:
    """A ticket's whole life; :meth:`at` is what the helpdesk shows at a given instant."""

    id: str
    customer_id: str
    subject: str
    channel: str
    group_name: str
    priority: str
    assignee: str
    waiting_status: str  # between the first reply and the solve: open, pending or hold
    created: datetime
    replies: list[datetime]  # public agent replies, the first one first
    solved: datetime
    reopened: tuple[datetime, datetime] | None  # (first solve, reopened) before ``solved``
    csat: dict[str, Any] | None  # the answer to the satisfaction survey, if any

    def at(self, end: datetime) -> dict[str, Any] | None:
        if self.created >= end:
            return None
        changes = [self.created]
        replies = [r for r in self.replies if r < end]
        changes += replies
        first = replies[0] if replies else None
        solved_at: datetime | None = None
        reopens = 0
        if self.reopened is not None:
            first_solve, reopened = self.reopened
            if first_solve < end:
                changes.append(first_solve)
                solved_at = first_solve
            if reopened < end:
                changes.append(reopened)
                solved_at, reopens = None, 1
        if self.solved < end:
            changes.append(self.solved)
            solved_at = self.solved
        closed = self.solved + 4 * DAY
        if closed < end:
            changes.append(closed)
            status = "closed"
        elif solved_at is not None:
            status = "solved"
        elif first is not None:
            status = "open" if reopens else self.waiting_status
        else:
            status = "new"
        frt = (first - self.created).total_seconds() / 60 if first else None
        ttr = (solved_at - self.created).total_seconds() / 60 if solved_at else None
        return {
            "id": self.id,
            "source": "demo",
            "customer_id": self.customer_id,
            "subject": self.subject,
            "status": status,
            "channel": self.channel,
            "group_name": self.group_name,
            "priority": self.priority,
            "assignee": self.assignee if first else None,
            "created_at": self.created,
            "first_reply_at": first,
            "first_reply_minutes": round(frt, 2) if frt is not None else None,
            "first_reply_business_minutes": (
                round(_business_minutes(self.created, first), 2) if first else None
            ),
            "solved_at": solved_at,
            "full_resolution_minutes": round(ttr, 2) if ttr is not None else None,
            "full_resolution_business_minutes": (
                round(_business_minutes(self.created, solved_at), 2) if solved_at else None
            ),
            "replies": len(replies),
            "reopens": reopens,
            "updated_at": max(changes),
        }


def _ticket(
    rng: random.Random,
    tid: str,
    created: datetime,
    customer: str,
    *,
    incident: bool = False,
) -> _Ticket:
    channel = _pick(rng, CHANNELS)
    if incident:  # the queue is swamped: hours to a first answer, whatever the channel
        first = created + timedelta(minutes=min(rng.lognormvariate(math.log(600), 0.5), 4320))
    elif channel in ("chat", "phone"):  # answered live, even after hours
        median = FRT_MEDIAN[channel]
        first = created + timedelta(minutes=min(rng.lognormvariate(math.log(median), 0.7), 600))
    else:
        median = FRT_MEDIAN[channel]
        wait = min(rng.lognormvariate(math.log(median), 0.8), 4320)
        first = _next_working(created) + timedelta(minutes=wait)
    first = _second(first)
    solved = _second(first + timedelta(hours=min(rng.lognormvariate(math.log(14), 1.0), 240)))
    count = rng.choices((1, 2, 3, 4), weights=(55, 25, 13, 7))[0]
    replies = [first] + [_second(first + (solved - first) * (k / count)) for k in range(1, count)]
    reopened = None
    if rng.random() < 0.05:
        span = solved - first
        reopened = (_second(first + span * 0.4), _second(first + span * 0.6))
    waiting = rng.choice(("open", "open", "pending", "hold"))
    group, priority, agent = _pick(rng, GROUPS), _pick(rng, PRIORITIES), rng.choice(AGENTS)
    csat = None
    if rng.random() < (0.7 if incident else 0.35):
        at = _second(solved + timedelta(hours=rng.uniform(0.5, 30)))
        slow = first - created > DAY
        weights = CSAT_UPSET if incident else (CSAT_SLOW if slow else CSAT_CALM)
        csat = _survey(f"csat_{tid}", "csat", rng.choices((1, 2, 3, 4, 5), weights)[0], 5, at)
        csat.update(customer_id=customer, ticket_id=tid)
    subject = rng.choice(INCIDENT_SUBJECTS) if incident else f"Demo ticket {tid}"
    return _Ticket(
        id=tid,
        customer_id=customer,
        subject=subject,
        channel=channel,
        group_name=group,
        priority=priority,
        assignee=agent,
        waiting_status=waiting,
        created=created,
        replies=replies,
        solved=solved,
        reopened=reopened,
        csat=csat,
    )


def _survey(
    sid: str, kind: str, score: int, scale_max: int, at: datetime, comment: str | None = None
) -> dict[str, Any]:
    return {
        "id": sid,
        "source": "demo",
        "kind": kind,
        "score": float(score),
        "scale_max": scale_max,
        "comment": comment,
        "customer_id": None,
        "ticket_id": None,
        "responded_at": at,
        "updated_at": at,
    }


# -- the world ----------------------------------------------------------------------------


@dataclass
class _Day:
    """What one day brings, drawn from the day's own generators."""

    tickets: list[_Ticket] = field(default_factory=list)
    surveys: list[dict[str, Any]] = field(default_factory=list)  # NPS and CES


class _World:
    def __init__(self, seed: int, end: datetime, scale: float = 1.0) -> None:
        self.seed = seed
        self.signup_days = SIGNUP_DAYS / scale
        self.end = end.astimezone(UTC)
        self.today = self.end.date()  # the world day
        self.customers: list[dict[str, Any]] = []
        self.subscriptions: list[_Subscription] = []
        self.spans: dict[str, list[tuple[datetime, datetime | None]]] = {}
        self._active: dict[date, list[str]] = {}
        self._seats: dict[str, int] = {}
        self._billing()

    def keep_from(self, stream: str, world_day: date | None = None) -> date:
        """The first day ``stream`` keeps on ``world_day`` (default: this world's)."""
        return (world_day or self.today) - timedelta(days=KEEP_DAYS[stream])

    # -- customers and billing -----------------------------------------------------------

    def _billing(self) -> None:
        names = _company_names(_rng(self.seed, "names"), len(_FIRST) * len(_SECOND))
        k = 0
        while True:
            rng = _rng(self.seed, "customer", k)
            created = _second(ORIGIN + timedelta(days=(k + rng.random()) * self.signup_days))
            if created >= self.end:
                break
            cid = f"cus_demo{k:04d}"
            plan = rng.choices(PLAN_ORDER, weights=(40, 35, 18, 7))[0]
            lap = k // len(names)
            self.customers.append(
                {
                    "id": cid,
                    "source": "demo",
                    "name": names[k % len(names)] + (f" {lap + 1}" if lap else ""),
                    "email": f"billing@customer{k}.example",
                    "plan": plan,
                    "segment": SEGMENT_OF_PLAN.get(plan, "enterprise"),
                    "country": rng.choice(("US", "GB", "DE", "PL", "FR", "NL", "CA", "AU")),
                    "created_at": created,
                    "updated_at": created,
                    "deleted_at": None,
                }
            )
            subs = _simulate(rng, cid, created, plan, self.end + LOOKAHEAD)
            self.subscriptions += subs
            self.spans[cid] = [(s.start, s.ended) for s in subs]
            k += 1

    def active(self, day: date) -> list[str]:
        """Accounts with a subscription running at the start of ``day``."""
        if day not in self._active:
            t = _midnight(day)
            self._active[day] = [
                cid
                for cid, spans in self.spans.items()
                if any(a <= t and (b is None or t < b) for a, b in spans)
            ]
        return self._active[day]

    def _subscription_records(self, data: DemoData) -> None:
        end = self.end
        first_invoice = _midnight(self.keep_from("invoices"))
        for sub in self.subscriptions:
            periods = [p for p in sub.periods if p[0] < end]
            if not periods:
                continue
            ended = sub.ended if sub.ended is not None and sub.ended < end else None
            canceled = (
                sub.canceled_at if sub.canceled_at is not None and sub.canceled_at < end else None
            )
            # ``updated_at`` moves only when what a row shows changes: the subscription
            # shows status and plan, its item plan and quantity.
            shown = [p[0] for i, p in enumerate(periods) if i == 0 or p[1:3] != periods[i - 1][1:3]]
            updated = max(shown + [t for t in (ended, canceled) if t])
            item_changes = [
                p[0] for i, p in enumerate(periods) if i == 0 or p[2:] != periods[i - 1][2:]
            ]
            status, plan, qty = periods[-1][1:]
            unit = PLANS[plan][1 if sub.annual else 0]
            data.subscriptions.append(
                {
                    "id": sub.id,
                    "source": "demo",
                    "customer_id": sub.customer_id,
                    "status": "canceled" if ended else status,
                    "currency": "USD",
                    "plan": plan,
                    "created_at": sub.start,
                    "started_at": sub.start,
                    "trial_start": sub.start if sub.trial_end else None,
                    "trial_end": sub.trial_end,
                    "current_period_start": None,
                    "current_period_end": None,
                    "cancel_at": None,
                    "canceled_at": canceled,
                    "ended_at": ended,
                    "discount_percent": sub.discount,
                    "discount_amount_off": None,
                    "updated_at": updated,
                }
            )
            data.subscription_items.append(
                {
                    "id": f"si_{sub.id[4:]}",
                    "source": "demo",
                    "subscription_id": sub.id,
                    "price_id": f"price_{plan}_{'year' if sub.annual else 'month'}",
                    "product": plan.title(),
                    "quantity": qty,
                    "unit_amount": unit,
                    "currency": "USD",
                    "interval": "year" if sub.annual else "month",
                    "interval_count": 1,
                    "usage_type": "licensed",
                    "updated_at": max(item_changes),
                }
            )
            for idx, (frm, st, pl, q) in enumerate(sub.periods):
                if frm >= end:
                    break
                nxt = sub.periods[idx + 1][0] if idx + 1 < len(sub.periods) else sub.ended
                to = nxt if nxt is not None and nxt < end else None
                amount = PLANS[pl][1 if sub.annual else 0] * q
                monthly = amount / 12 if sub.annual else amount
                if sub.discount:
                    monthly *= 1 - sub.discount / 100
                data.subscription_periods.append(
                    {
                        "id": f"{sub.id}@{int(frm.timestamp())}",
                        "source": "demo",
                        "subscription_id": sub.id,
                        "customer_id": sub.customer_id,
                        "status": st,
                        "plan": pl,
                        "quantity": q,
                        "mrr": round(monthly, 4),
                        "currency": "USD",
                        "valid_from": frm,
                        "valid_to": to,
                        "updated_at": to or frm,
                    }
                )
                if st in ("active", "past_due"):
                    stop = min(nxt, end) if nxt is not None else end
                    data.invoices += self._invoices(sub, frm, stop, amount, first_invoice)

    def _invoices(
        self, sub: _Subscription, frm: datetime, stop: datetime, amount: int, first: datetime
    ) -> list[dict[str, Any]]:
        step = timedelta(days=365 if sub.annual else 30)
        out = []
        t = frm
        while t < stop:
            if t >= first:
                out.append(self._invoice(sub, t, step, amount))
            t += step
        return out

    def _invoice(
        self, sub: _Subscription, t: datetime, step: timedelta, amount: int
    ) -> dict[str, Any]:
        iid = f"in_{sub.id[4:]}_{int(t.timestamp())}"
        tax = round(amount * 0.2) if _rng(self.seed, "tax", iid).random() < 0.3 else 0
        paid = t + timedelta(minutes=5)
        is_paid = paid < self.end
        return {
            "id": iid,
            "source": "demo",
            "customer_id": sub.customer_id,
            "subscription_id": sub.id,
            "status": "paid" if is_paid else "open",
            "currency": "USD",
            "total": amount + tax,
            "tax": tax,
            "amount_paid": amount + tax if is_paid else 0,
            "amount_due": amount + tax,
            "created_at": t,
            "paid_at": paid if is_paid else None,
            "period_start": t,
            "period_end": t + step,
            "updated_at": paid if is_paid else t,
        }

    # -- one day ---------------------------------------------------------------------------

    def day(self, d: date) -> _Day:
        """Tickets, NPS and CES of an ordinary day ``d`` (no storyline)."""
        out = _Day()
        accounts = self.active(d)
        if not accounts:
            return out
        weekday = d.weekday() < 5
        rng = _rng(self.seed, "tickets", d)
        expected = TICKETS_PER_ACCOUNT * len(accounts) * (1 if weekday else 1 / 3)
        base = (d - ORIGIN.date()).days * 1000
        for i in range(_poisson(rng, expected)):
            created = _second(_midnight(d) + timedelta(hours=_ticket_hour(rng, weekday)))
            tid = str(100_000 + base + i)
            out.tickets.append(_ticket(rng, tid, created, rng.choice(accounts)))
        rng = _rng(self.seed, "surveys", d)
        for k in range(_poisson(rng, 7.0)):
            at = _second(_midnight(d) + timedelta(hours=rng.uniform(6, 22)))
            score = rng.choices(range(11), weights=NPS_CALM)[0]
            comments = DETRACTOR_COMMENTS if score <= 6 else PROMOTER_COMMENTS
            comment = rng.choice(comments) if rng.random() < 0.5 else None
            record = _survey(f"nps_{d:%Y%m%d}_{k}", "nps", score, 10, at, comment)
            record["customer_id"] = rng.choice(accounts)
            out.surveys.append(record)
        for k in range(_poisson(rng, 3.0)):
            at = _second(_midnight(d) + timedelta(hours=rng.uniform(6, 22)))
            score = rng.choices(range(1, 8), weights=CES_CALM)[0]
            record = _survey(f"ces_{d:%Y%m%d}_{k}", "ces", score, 7, at)
            record["customer_id"] = rng.choice(accounts)
            out.surveys.append(record)
        return out

    def incident(self, world_day: date) -> _Day:
        """The storyline layer of ``world_day``: extra tickets and answers over the 14 days
        up to it, stronger each day. Its ids name the world day, so that tomorrow's layer
        replaces it rather than updating it."""
        out = _Day()
        tag = f"{world_day:%Y%m%d}"
        for back in range(STORY_DAYS):
            d = world_day - timedelta(days=back)
            accounts = self.active(d)
            if not accounts:
                continue
            story = (STORY_DAYS - back) / STORY_DAYS  # 1/14 → 1 at the world day
            weekday = d.weekday() < 5
            rng = _rng(self.seed, "incident", tag, d)
            expected = TICKETS_PER_ACCOUNT * len(accounts) * story
            for i in range(_poisson(rng, expected if weekday else expected / 2)):
                created = _second(_midnight(d) + timedelta(hours=_ticket_hour(rng, weekday)))
                tid = f"inc{tag}-{d:%m%d}-{i}"
                out.tickets.append(_ticket(rng, tid, created, rng.choice(accounts), incident=True))
            for k in range(_poisson(rng, 25.0 * story**2)):
                at = _second(_midnight(d) + timedelta(hours=rng.uniform(6, 22)))
                score = rng.choices(range(11), weights=NPS_UPSET)[0]
                comment = rng.choice(DETRACTOR_COMMENTS) if rng.random() < 0.7 else None
                record = _survey(f"nps_inc{tag}_{d:%m%d}_{k}", "nps", score, 10, at, comment)
                record["customer_id"] = rng.choice(accounts)
                out.surveys.append(record)
            for k in range(_poisson(rng, 2.0 * story)):
                at = _second(_midnight(d) + timedelta(hours=rng.uniform(6, 22)))
                score = rng.choices(range(1, 8), weights=CES_UPSET)[0]
                record = _survey(f"ces_inc{tag}_{d:%m%d}_{k}", "ces", score, 7, at)
                record["customer_id"] = rng.choice(accounts)
                out.surveys.append(record)
        return out

    def usage(self, d: date) -> list[dict[str, Any]]:
        rng = _rng(self.seed, "usage", d)
        weekday = d.weekday() < 5
        out = []
        for cid in self.active(d):
            if cid not in self._seats:
                self._seats[cid] = _rng(self.seed, "seats", cid).randint(2, 12)
            for u in range(self._seats[cid]):
                if rng.random() >= (0.38 if weekday else 0.08):
                    continue
                at = _second(_midnight(d) + timedelta(hours=_ticket_hour(rng, weekday)))
                event = "login" if rng.random() < 0.55 else rng.choice(FEATURES)
                out.append(
                    {
                        "id": f"ev_{cid[8:]}_{u}_{d:%Y%m%d}",
                        "source": "demo",
                        "user_id": f"usr_{cid[8:]}_{u}",
                        "account_id": cid,
                        "event": event,
                        "occurred_at": at,
                        "updated_at": at,
                    }
                )
        return out

    # -- as it stands at ``end`` ---------------------------------------------------------

    def data(self) -> DemoData:
        end = self.end
        data = DemoData(customers=[c for c in self.customers if c["created_at"] < end])
        self._subscription_records(data)

        def served(days: _Day, floor: datetime | None = None) -> None:
            for ticket in days.tickets:
                record = ticket.at(end)
                if record is None:
                    continue
                data.tickets.append(_floor(record, floor))
                if ticket.csat is not None and ticket.csat["responded_at"] < end:
                    data.survey_responses.append(_floor(dict(ticket.csat), floor))
            for survey in days.surveys:
                if survey["responded_at"] < end:
                    data.survey_responses.append(_floor(dict(survey), floor))

        for d in _days(self.keep_from("tickets"), self.today):
            served(self.day(d))
        served(self.incident(self.today), floor=_midnight(self.today))
        for d in _days(self.keep_from("usage_events"), self.today):
            data.usage_events += [e for e in self.usage(d) if e["occurred_at"] < end]
        for name in DemoData.__dataclass_fields__:
            records: list[dict[str, Any]] = getattr(data, name)
            records.sort(key=lambda r: (r["updated_at"], r["id"]))
        return data

    def deleted_since(self, since: datetime) -> dict[str, list[str]]:
        """See :func:`deleted_since`."""
        first = max(since.astimezone(UTC).date(), ORIGIN.date())
        out: dict[str, list[str]] = {name: [] for name in DemoData.__dataclass_fields__}
        if first >= self.today:
            return out  # the same world day: nothing left the window, the same storyline

        def drop(days: _Day) -> None:
            out["tickets"] += [t.id for t in days.tickets]
            out["survey_responses"] += [t.csat["id"] for t in days.tickets if t.csat]
            out["survey_responses"] += [s["id"] for s in days.surveys]

        for world_day in _days(first, self.today - DAY):
            drop(self.incident(world_day))
        gone: Callable[[str], Iterator[date]] = lambda stream: _days(  # noqa: E731
            self.keep_from(stream, first), self.keep_from(stream) - DAY
        )
        for d in gone("tickets"):
            drop(self.day(d))
        for d in gone("usage_events"):
            out["usage_events"] += [e["id"] for e in self.usage(d)]
        lo = _midnight(self.keep_from("invoices", first))
        hi = _midnight(self.keep_from("invoices"))
        for sub in self.subscriptions:
            step = timedelta(days=365 if sub.annual else 30)
            for idx, (frm, st, _, _) in enumerate(sub.periods):
                if st not in ("active", "past_due") or frm >= hi:
                    continue
                nxt = sub.periods[idx + 1][0] if idx + 1 < len(sub.periods) else sub.ended
                t = frm
                while t < hi and (nxt is None or t < nxt):
                    if t >= lo:
                        out["invoices"].append(f"in_{sub.id[4:]}_{int(t.timestamp())}")
                    t += step
        return out


def _floor(record: dict[str, Any], floor: datetime | None) -> dict[str, Any]:
    """A storyline record is known from the start of its world day, not before."""
    if floor is not None and record["updated_at"] < floor:
        record["updated_at"] = floor
    return record


def _second(t: datetime) -> datetime:
    return t.replace(microsecond=0)


class DemoConnector:
    """The synthetic source as a connector: pages of records in ``updated_at`` order."""

    name: ClassVar[str] = "demo"
    streams: ClassVar[tuple[Stream, ...]] = (
        Stream("customers", Customer),
        Stream("subscriptions", Subscription),
        Stream("subscription_items", SubscriptionItem),
        Stream("subscription_periods", SubscriptionPeriod),
        Stream("invoices", Invoice),
        Stream("tickets", Ticket),
        Stream("survey_responses", SurveyResponse),
        Stream("usage_events", UsageEvent),
    )

    def __init__(
        self,
        *,
        seed: int = 42,
        end: datetime | None = None,
        page_size: int = 5000,
        scale: float = 1.0,
    ):
        self.seed = seed
        self.end = end or datetime.now(UTC)
        self.page_size = page_size
        self.scale = scale
        self._world: _World | None = None
        self._data: DemoData | None = None

    @property
    def world(self) -> _World:
        if self._world is None:
            self._world = _World(self.seed, self.end, self.scale)
        return self._world

    @property
    def data(self) -> DemoData:
        if self._data is None:
            self._data = self.world.data()
        return self._data

    def pages(
        self, stream: Stream, *, since: datetime | None, resume: str | None
    ) -> Iterator[Page]:
        records: list[dict[str, Any]] = getattr(self.data, stream.name)
        if since is not None:
            records = [r for r in records if r["updated_at"] >= since]
        deleted = self.world.deleted_since(since)[stream.name] if since is not None else []
        # The resume token is the sort key of the last record committed: records changed
        # since then sort after it, so nothing is skipped whatever ``end`` is now.
        if resume:
            stamp, _, last_id = resume.partition("|")
            try:
                after = (datetime.fromisoformat(stamp), last_id)
            except ValueError:
                after = None
            if after is not None:
                records = [r for r in records if (r["updated_at"], r["id"]) > after]
        if not records:
            if deleted:
                yield Page(records=[], resume=None, deleted_ids=deleted)
            return
        for offset in range(0, len(records), self.page_size):
            chunk = records[offset : offset + self.page_size]
            more = offset + len(chunk) < len(records)
            last = chunk[-1]
            yield Page(
                records=chunk,
                resume=f"{last['updated_at'].isoformat()}|{last['id']}" if more else None,
                deleted_ids=deleted if offset == 0 else [],
            )

    def map(self, stream: Stream, raw: RawRecord) -> list[Row]:
        return [Row(stream.table, raw)]

    def close(self) -> None:
        pass


# -- helpers ---------------------------------------------------------------------------


def _pick(rng: random.Random, options: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method is fine for the small rates used here.
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _ticket_hour(rng: random.Random, weekday: bool) -> float:
    if rng.random() < (0.8 if weekday else 0.5):
        return rng.uniform(WORK_START, WORK_END)
    return rng.uniform(0, 24)


def _is_working(t: datetime) -> bool:
    return t.weekday() < 5 and WORK_START <= t.hour < WORK_END


def _next_working(t: datetime) -> datetime:
    """``t`` if within working hours, else the start of the next working period."""
    if _is_working(t):
        return t
    day = t if t.hour < WORK_START else t + DAY
    day = day.replace(hour=WORK_START, minute=0, second=0, microsecond=0)
    while day.weekday() >= 5:
        day += DAY
    return day


def _business_minutes(a: datetime, b: datetime) -> float:
    """Minutes between a and b that fall in working hours (Mon–Fri, 08–18 UTC)."""
    total = 0.0
    day = a.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < b:
        if day.weekday() < 5:
            lo = max(a, day.replace(hour=WORK_START))
            hi = min(b, day.replace(hour=WORK_END))
            if hi > lo:
                total += (hi - lo).total_seconds() / 60
        day += DAY
    return total


_FIRST = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Soylent",
    "Cyberdyne",
    "Aperture",
    "Pied Piper",
    "Dunder",
    "Massive",
    "Oscorp",
    "Gringotts",
    "Monarch",
    "Nakatomi",
    "Prestige",
    "Sterling",
    "Virtucon",
    "Zorg",
    "Bluth",
)
_SECOND = (
    "Labs",
    "Corp",
    "Systems",
    "Analytics",
    "Logistics",
    "Studio",
    "Health",
    "Foods",
    "Media",
    "Robotics",
    "Energy",
    "Capital",
    "Travel",
    "Textiles",
    "Software",
    "Partners",
    "Outdoors",
    "Pharma",
    "Freight",
    "Games",
)


def _company_names(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct believable company names (25 × 20 combinations)."""
    combos = [f"{a} {b}" for a in _FIRST for b in _SECOND]
    return rng.sample(combos, count)
