"""A synthetic source: a year of believable customer data, offline, the same for a seed.

It is a connector like any other, synced through the same runner, so ``kpibot demo``
exercises the real pipeline. What it makes, for about 500 customers:

* subscriptions on monthly and annual plans, with trials, upgrades, downgrades, churn and
  reactivation, recorded as the subscription periods MRR is computed from, plus invoices;
* tickets with lognormal first-reply and resolution times, more of them on weekdays and in
  working hours, replies after hours waiting for the next morning;
* NPS, CSAT and CES answers, and product usage events for the last 120 days;
* a storyline in the last two weeks: first response time slipping and NPS dropping, so
  that the demo's alerts have something to say.

Data is a function of (seed, the UTC day of ``end``): records later than ``end`` are left
out, so two runs on the same day with the same seed produce the same rows up to the
earlier of their ends.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
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
# Median minutes to the first reply, by channel, before the storyline slows things down.
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
# Weights of NPS answers 0..10: ≈ NPS 35 normally, ≈ −30 at the end of the storyline.
NPS_CALM = (1, 1, 1, 2, 2, 3, 5, 10, 18, 27, 30)
NPS_UPSET = (4, 4, 5, 6, 7, 9, 10, 13, 14, 12, 10)
WORK_START, WORK_END = 8, 18  # working hours, UTC, Monday to Friday
STORY_DAYS = 14


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


def generate(seed: int, end: datetime) -> DemoData:
    """All demo records up to ``end`` (aware), deterministic for (seed, end's UTC day)."""
    day_end = datetime.combine(end.astimezone(UTC).date() + DAY, time(), UTC)
    gen = _Generator(seed=seed, day_end=day_end)
    data = gen.run()
    for name in DemoData.__dataclass_fields__:
        records: list[dict[str, Any]] = getattr(data, name)
        kept = [r for r in records if r["_at"] < end]
        for r in kept:
            del r["_at"]
        kept.sort(key=lambda r: (r["updated_at"], r["id"]))
        setattr(data, name, kept)
    return data


class _Generator:
    def __init__(self, *, seed: int, day_end: datetime) -> None:
        self.rng = random.Random(seed)
        self.day_end = day_end
        self.start = day_end - timedelta(days=365)
        self.data = DemoData()
        self.active_accounts: dict[str, list[tuple[datetime, datetime]]] = {}

    def run(self) -> DemoData:
        self._customers_and_billing()
        self._tickets_and_csat()
        self._nps_and_ces()
        self._usage()
        return self.data

    # -- billing -------------------------------------------------------------------------

    def _customers_and_billing(self) -> None:
        rng = self.rng
        names = _company_names(rng, 500)
        for i in range(500):
            cid = f"cus_demo{i:04d}"
            if i < 340:  # customers from before the year shown
                created = self.day_end - timedelta(days=rng.uniform(380, 1100))
            else:
                created = self.start + timedelta(days=rng.uniform(0, 358))
            created = created.replace(microsecond=0)
            plan = rng.choices(PLAN_ORDER, weights=(40, 35, 18, 7))[0]
            country = rng.choice(("US", "GB", "DE", "PL", "FR", "NL", "CA", "AU"))
            self._emit(
                "customers",
                created,
                id=cid,
                source="demo",
                name=names[i],
                email=f"billing@customer{i}.example",
                plan=plan,
                segment=SEGMENT_OF_PLAN.get(plan, "enterprise"),
                country=country,
                created_at=created,
                updated_at=created,
                deleted_at=None,
            )
            self._simulate_subscriptions(cid, created, plan)

    def _simulate_subscriptions(self, cid: str, created: datetime, plan: str) -> None:
        rng = self.rng
        annual = rng.random() < 0.25
        discount = 20.0 if rng.random() < 0.1 else None
        spans: list[tuple[datetime, datetime]] = []
        t = created
        sub_no = 0
        while t < self.day_end:
            sub_no += 1
            sid = f"sub_{cid[4:]}_{sub_no}"
            trial_end = t + timedelta(days=14) if sub_no == 1 and rng.random() < 0.6 else None
            periods: list[tuple[datetime, str, str, int]] = []  # (from, status, plan, qty)
            qty = rng.randint(1, 5) if plan == "business" else 1
            if trial_end:
                periods.append((t, "trialing", plan, qty))
            t_paid = trial_end or t
            periods.append((t_paid, "active", plan, qty))
            step = timedelta(days=365 if annual else 30)
            cursor = t_paid + step
            ended: datetime | None = None
            while cursor < self.day_end:
                roll = rng.random()
                churn_p = 0.12 if annual else 0.022
                if roll < churn_p:
                    ended = cursor + timedelta(hours=rng.uniform(0, 20))
                    break
                if roll < churn_p + 0.03 and plan != PLAN_ORDER[-1]:
                    plan = PLAN_ORDER[PLAN_ORDER.index(plan) + 1]
                    periods.append(
                        (cursor + timedelta(hours=rng.uniform(1, 20)), "active", plan, qty)
                    )
                elif roll < churn_p + 0.045 and plan != PLAN_ORDER[0]:
                    plan = PLAN_ORDER[PLAN_ORDER.index(plan) - 1]
                    periods.append(
                        (cursor + timedelta(hours=rng.uniform(1, 20)), "active", plan, qty)
                    )
                elif roll < churn_p + 0.06 and plan == "business":
                    qty = max(1, qty + rng.choice((-1, 1, 2)))
                    periods.append(
                        (cursor + timedelta(hours=rng.uniform(1, 20)), "active", plan, qty)
                    )
                elif roll < churn_p + 0.07:
                    # a failed payment: past due for a few days, still counted in MRR
                    periods.append((cursor, "past_due", plan, qty))
                    periods.append(
                        (cursor + timedelta(days=rng.uniform(2, 6)), "active", plan, qty)
                    )
                cursor += step
            self._emit_subscription(cid, sid, periods, ended, annual, discount, trial_end)
            spans.append((t, ended or self.day_end))
            if ended is None:
                break
            # Churned: some come back weeks or months later on a fresh subscription.
            if rng.random() < 0.3:
                t = ended + timedelta(days=rng.uniform(20, 150))
            else:
                break
        self.active_accounts[cid] = spans

    def _emit_subscription(
        self,
        cid: str,
        sid: str,
        periods: list[tuple[datetime, str, str, int]],
        ended: datetime | None,
        annual: bool,
        discount: float | None,
        trial_end: datetime | None,
    ) -> None:
        rng = self.rng
        periods = [p for p in periods if p[0] < (ended or self.day_end)]
        status, plan, qty = periods[-1][1], periods[-1][2], periods[-1][3]
        price = PLANS[plan][1 if annual else 0]
        start = periods[0][0]
        last_change = ended or periods[-1][0]
        for idx, (frm, st, pl, q) in enumerate(periods):
            to = periods[idx + 1][0] if idx + 1 < len(periods) else ended
            amount = PLANS[pl][1 if annual else 0] * q
            monthly = amount / 12 if annual else amount
            if discount:
                monthly *= 1 - discount / 100
            self._emit(
                "subscription_periods",
                frm,
                id=f"{sid}@{int(frm.timestamp())}",
                source="demo",
                subscription_id=sid,
                customer_id=cid,
                status=st,
                plan=pl,
                quantity=q,
                mrr=round(monthly, 4),
                currency="USD",
                valid_from=frm,
                valid_to=to,
                updated_at=to or frm,
            )
            if st in ("active", "past_due"):
                self._invoices(cid, sid, frm, to or self.day_end, amount, annual)
        self._emit(
            "subscriptions",
            start,
            id=sid,
            source="demo",
            customer_id=cid,
            status="canceled" if ended else status,
            currency="USD",
            plan=plan,
            created_at=start,
            started_at=start,
            trial_start=start if trial_end else None,
            trial_end=trial_end,
            current_period_start=None,
            current_period_end=None,
            cancel_at=None,
            canceled_at=ended - timedelta(days=rng.uniform(0, 10)) if ended else None,
            ended_at=ended,
            discount_percent=discount,
            discount_amount_off=None,
            updated_at=last_change,
        )
        self._emit(
            "subscription_items",
            start,
            id=f"si_{sid[4:]}",
            source="demo",
            subscription_id=sid,
            price_id=f"price_{plan}_{'year' if annual else 'month'}",
            product=plan.title(),
            quantity=qty,
            unit_amount=price,
            currency="USD",
            interval="year" if annual else "month",
            interval_count=1,
            usage_type="licensed",
            updated_at=last_change,
        )

    def _invoices(
        self, cid: str, sid: str, frm: datetime, to: datetime, amount: int, annual: bool
    ) -> None:
        step = timedelta(days=365 if annual else 30)
        t = frm
        while t < min(to, self.day_end):
            if t >= self.start - timedelta(days=31):
                tax = round(amount * 0.2) if self.rng.random() < 0.3 else 0
                self._emit(
                    "invoices",
                    t,
                    id=f"in_{sid[4:]}_{int(t.timestamp())}",
                    source="demo",
                    customer_id=cid,
                    subscription_id=sid,
                    status="paid",
                    currency="USD",
                    total=amount + tax,
                    tax=tax,
                    amount_paid=amount + tax,
                    amount_due=amount + tax,
                    created_at=t,
                    paid_at=t + timedelta(minutes=5),
                    period_start=t,
                    period_end=t + step,
                    updated_at=t + timedelta(minutes=5),
                )
            t += step

    # -- support -------------------------------------------------------------------------

    def _tickets_and_csat(self) -> None:
        rng = self.rng
        customers = [c["id"] for c in self.data.customers]
        n = 0
        day = self.start
        while day < self.day_end:
            days_left = (self.day_end - day) / DAY
            story = max(0.0, 1 - days_left / STORY_DAYS)  # 0 → 1 over the last two weeks
            weekday = day.weekday() < 5
            growth = 1 + 0.3 * (1 - days_left / 365)
            expected = (34 if weekday else 11) * growth * (1 + 0.25 * story)
            for _ in range(_poisson(rng, expected)):
                n += 1
                created = day + timedelta(hours=_ticket_hour(rng, weekday))
                created = created.replace(microsecond=0)
                self._ticket(n, created, rng.choice(customers), story)
            day += DAY

    def _ticket(self, n: int, created: datetime, customer: str, story: float) -> None:
        rng = self.rng
        channel = _pick(rng, CHANNELS)
        median = FRT_MEDIAN[channel] * (1 + 3.0 * story)
        reply_at: datetime | None = _next_working(created) + timedelta(
            minutes=rng.lognormvariate(math.log(median), 0.8)
        )
        if channel in ("chat", "phone"):  # answered live, even after hours
            reply_at = created + timedelta(minutes=rng.lognormvariate(math.log(median), 0.7))
        assert reply_at is not None
        reply_at = reply_at.replace(microsecond=0)
        if reply_at >= self.day_end or (self.day_end - created < DAY * 2 and rng.random() < 0.1):
            reply_at = None
        age = self.day_end - created
        solved_at: datetime | None = None
        if reply_at is not None:
            solved_at = reply_at + timedelta(hours=rng.lognormvariate(math.log(14), 1.0))
            solved_at = solved_at.replace(microsecond=0)
            if solved_at >= self.day_end or (age < DAY * 3 and rng.random() < 0.4):
                solved_at = None
        if solved_at is not None:
            status = "closed" if self.day_end - solved_at > DAY * 4 else "solved"
        elif reply_at is None:
            status = "new"
        else:
            status = rng.choice(("open", "open", "pending", "hold"))
        replies = 0 if reply_at is None else rng.choices((1, 2, 3, 4), weights=(55, 25, 13, 7))[0]
        reopens = 1 if solved_at is not None and rng.random() < 0.05 else 0
        frt = (reply_at - created).total_seconds() / 60 if reply_at else None
        ttr = (solved_at - created).total_seconds() / 60 if solved_at else None
        updated = solved_at or reply_at or created
        tid = str(10_000 + n)
        self._emit(
            "tickets",
            created,
            id=tid,
            source="demo",
            customer_id=customer,
            subject=f"Demo ticket {tid}",
            status=status,
            channel=channel,
            group_name=_pick(rng, GROUPS),
            priority=_pick(rng, PRIORITIES),
            assignee=rng.choice(AGENTS) if reply_at else None,
            created_at=created,
            first_reply_at=reply_at,
            first_reply_minutes=round(frt, 2) if frt is not None else None,
            first_reply_business_minutes=(
                round(_business_minutes(created, reply_at), 2) if reply_at else None
            ),
            solved_at=solved_at,
            full_resolution_minutes=round(ttr, 2) if ttr is not None else None,
            full_resolution_business_minutes=(
                round(_business_minutes(created, solved_at), 2) if solved_at else None
            ),
            replies=replies,
            reopens=reopens,
            updated_at=updated,
        )
        if solved_at is not None and rng.random() < 0.35:
            at = solved_at + timedelta(hours=rng.uniform(0.5, 30))
            slow = frt is not None and frt > 1440
            weights = (4, 5, 8, 28, 55) if not slow else (12, 12, 16, 30, 30)
            score = rng.choices((1, 2, 3, 4, 5), weights=weights)[0]
            self._emit(
                "survey_responses",
                at,
                id=f"csat_{tid}",
                source="demo",
                kind="csat",
                score=float(score),
                scale_max=5,
                comment=None,
                customer_id=customer,
                ticket_id=tid,
                responded_at=at.replace(microsecond=0),
                updated_at=at.replace(microsecond=0),
            )

    # -- surveys and usage ---------------------------------------------------------------

    def _nps_and_ces(self) -> None:
        rng = self.rng
        customers = [c["id"] for c in self.data.customers]
        day = self.start
        k = 0
        while day < self.day_end:
            days_left = (self.day_end - day) / DAY
            # 0 → 1 over the last two weeks, so the last week is clearly worse than the one
            # before it (the demo's week-over-week NPS alert depends on that, not on luck).
            story = max(0.0, 1 - days_left / STORY_DAYS)
            weights = [
                (1 - story) * calm + story * upset
                for calm, upset in zip(NPS_CALM, NPS_UPSET, strict=True)
            ]
            for _ in range(_poisson(rng, 7.0)):
                k += 1
                at = (day + timedelta(hours=rng.uniform(6, 22))).replace(microsecond=0)
                score = rng.choices(range(11), weights=weights)[0]
                comments = DETRACTOR_COMMENTS if score <= 6 else PROMOTER_COMMENTS
                self._emit(
                    "survey_responses",
                    at,
                    id=f"nps_{k}",
                    source="demo",
                    kind="nps",
                    score=float(score),
                    scale_max=10,
                    comment=rng.choice(comments) if rng.random() < 0.5 else None,
                    customer_id=rng.choice(customers),
                    ticket_id=None,
                    responded_at=at,
                    updated_at=at,
                )
            for _ in range(_poisson(rng, 3.0)):
                k += 1
                at = (day + timedelta(hours=rng.uniform(6, 22))).replace(microsecond=0)
                score = rng.choices(range(1, 8), weights=(2, 3, 5, 10, 22, 33, 25))[0]
                self._emit(
                    "survey_responses",
                    at,
                    id=f"ces_{k}",
                    source="demo",
                    kind="ces",
                    score=float(score),
                    scale_max=7,
                    comment=None,
                    customer_id=rng.choice(customers),
                    ticket_id=None,
                    responded_at=at,
                    updated_at=at,
                )
            day += DAY

    def _usage(self) -> None:
        rng = self.rng
        first = self.day_end - timedelta(days=120)
        seats = {cid: rng.randint(2, 12) for cid in self.active_accounts}
        day = first
        while day < self.day_end:
            weekday = day.weekday() < 5
            for cid, spans in self.active_accounts.items():
                if not any(a <= day < b for a, b in spans):
                    continue
                for u in range(seats[cid]):
                    if rng.random() >= (0.38 if weekday else 0.08):
                        continue
                    at = (day + timedelta(hours=_ticket_hour(rng, weekday))).replace(microsecond=0)
                    event = "login" if rng.random() < 0.55 else rng.choice(FEATURES)
                    self._emit(
                        "usage_events",
                        at,
                        id=f"ev_{cid[7:]}_{u}_{day:%Y%m%d}",
                        source="demo",
                        user_id=f"usr_{cid[7:]}_{u}",
                        account_id=cid,
                        event=event,
                        occurred_at=at,
                        updated_at=at,
                    )
            day += DAY

    def _emit(self, stream: str, at: datetime, **values: Any) -> None:
        values["_at"] = at
        getattr(self.data, stream).append(values)


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

    def __init__(self, *, seed: int = 42, end: datetime | None = None, page_size: int = 5000):
        self.seed = seed
        self.end = end or datetime.now(UTC)
        self.page_size = page_size
        self._data: DemoData | None = None

    @property
    def data(self) -> DemoData:
        if self._data is None:
            self._data = generate(self.seed, self.end)
        return self._data

    def pages(
        self, stream: Stream, *, since: datetime | None, resume: str | None
    ) -> Iterator[Page]:
        records: list[dict[str, Any]] = getattr(self.data, stream.name)
        if since is not None:
            records = [r for r in records if r["updated_at"] >= since]
        # The resume token names the data it indexes into, so a token from another day's
        # data is ignored (re-reading from ``since`` is harmless).
        tag = f"{self.seed}:{self.end.date().isoformat()}:"
        offset = int(resume[len(tag) :]) if resume and resume.startswith(tag) else 0
        while offset < len(records):
            chunk = records[offset : offset + self.page_size]
            offset += len(chunk)
            yield Page(records=chunk, resume=f"{tag}{offset}" if offset < len(records) else None)

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
