"""Stripe: customers, subscriptions (with items and MRR history), invoices, and events.

Stripe objects carry no modification time, and its lists can only be filtered by
creation. So:

* ``updated_at`` of a Stripe row is the instant its version was known to be current: the
  fetch time for objects read from a list, the event's ``created`` for objects read from
  an event. A late response from an older fetch therefore never overwrites a newer one.
* A **full reconciliation** (``kpibot sync --full``, or the first sync) pages through every
  customer, subscription (``status=all``, discounts expanded) and invoice with
  ``starting_after`` until ``has_more`` is false.
* Between full reconciliations, an **incremental** sync reads the ``events`` stream
  (``GET /v1/events`` for customer, subscription and invoice events since the last one
  seen, at most the 30 days Stripe keeps) and lists only objects *created* since the last
  sync. Events are applied oldest first; a subscription event whose discounts are bare
  ids is refreshed with ``GET /v1/subscriptions/{id}`` so that MRR can be computed.
  Reconcile fully at least once every 30 days (the scheduler does it nightly), or
  changes older than Stripe's event retention are missed.

MRR of a subscription (ChartMogul's definition, in minor units per month):
Σ over recurring, licensed items of unit amount × quantity (tiers and
``transform_quantity`` applied) normalised to a month (year ÷ 12, N months ÷ N,
week × 52 ÷ 12, day × 365 ÷ 12); item discounts, then subscription discounts
(``percent_off``; ``amount_off`` per billing interval, normalised) still in force; tax
removed from tax-inclusive prices; metered and one-time prices excluded. It is computed
whatever the status; whether it counts (active, past_due) is the KPI's decision, from the
status kept beside it.

Every subscription observation is also folded into ``subscription_periods`` (see
``integrations/history.py``): a change of status, plan, quantity, MRR or currency closes
the open period and opens a new one, dated by the event when there is one.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

from integrations.base import (
    Deletion,
    MapResult,
    Page,
    RawRecord,
    ReplaceChildren,
    Row,
    Segment,
    Stream,
    Timeline,
)
from integrations.errors import FatalSyncError, InvalidRecord
from integrations.http import ApiClient, Hints, Monotonic, RetryPolicy, Sleep
from integrations.mapping import epoch, setting
from metrics.schema import Customer, Invoice, Subscription, SubscriptionItem, SubscriptionPeriod

log = logging.getLogger(__name__)

HINTS = Hints(
    unauthorized="Stripe did not accept STRIPE_API_KEY: use a secret (sk_…) or restricted "
    "(rk_…) key of the account, live or test as intended",
    forbidden="STRIPE_API_KEY may not read this: a restricted key needs read access to "
    "customers, subscriptions, invoices, events, coupons and prices",
    not_found="Stripe has no such resource: if STRIPE_BASE_URL is set, check it; a key of "
    "another account or mode (test/live) also gets this",
    unreachable="could not connect to Stripe: check STRIPE_BASE_URL if set, and the network",
)

EVENT_TYPES = (
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.pending_update_applied",
    "customer.subscription.pending_update_expired",
    "invoice.created",
    "invoice.updated",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "invoice.deleted",
)  # Stripe accepts up to 20 in types[]
EVENT_RETENTION = timedelta(days=30)
# Months per billing interval, to normalise an amount to a month.
MONTHS_PER = {"day": 12 / 365, "week": 12 / 52, "month": 1.0, "year": 12.0}
PERIOD_FIELDS = ("status", "plan", "quantity", "mrr", "currency")


class StripeConnector:
    name: ClassVar[str] = "stripe"
    streams: ClassVar[tuple[Stream, ...]] = (
        # Events first: they date changes exactly; the lists then only confirm them.
        Stream("events", Subscription, required=("id", "type", "created", "data")),
        Stream("customers", Customer, required=("id", "created")),
        Stream("subscriptions", Subscription, required=("id", "customer", "status", "items")),
        Stream("invoices", Invoice, required=("id", "customer", "created")),
    )

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        page_size: int = 100,
        policy: RetryPolicy = RetryPolicy(),
        sleep: Sleep | None = None,
        monotonic: Monotonic | None = None,
        clock: Any = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.client = ApiClient(
            base_url or "https://api.stripe.com",
            headers={"Authorization": f"Bearer {api_key}"},
            policy=policy,
            wall_clock=self.clock,
            transport=transport,
            sleep=sleep,
            monotonic=monotonic,
            hints=HINTS,
        )
        self.page_size = min(max(page_size, 1), 100)
        self._coupons: dict[str, dict[str, Any] | str] = {}  # a str: deleted, terms unknown
        self._prices: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> StripeConnector:
        creds = settings.sources["stripe"]
        return cls(
            api_key=setting(creds.values, "STRIPE_API_KEY"), base_url=creds.base_url, **kwargs
        )

    def close(self) -> None:
        self.client.close()

    # -- paging --------------------------------------------------------------------------

    def pages(
        self, stream: Stream, *, since: datetime | None, resume: str | None
    ) -> Iterator[Page]:
        if stream.name == "events":
            return self._events(since)
        path, expand = {
            "customers": ("/v1/customers", ()),
            "subscriptions": (
                "/v1/subscriptions",
                ("data.discounts", "data.items.data.discounts"),
            ),
            "invoices": ("/v1/invoices", ()),
        }[stream.name]
        extra = [("status", "all")] if stream.name == "subscriptions" else []
        return self._list(path, since, resume, extra, expand)

    def _list(
        self,
        path: str,
        since: datetime | None,
        resume: str | None,
        extra: list[tuple[str, str]],
        expand: tuple[str, ...],
    ) -> Iterator[Page]:
        # The token carries its own filter, so a resumed run pages the same list.
        if resume:
            token = json.loads(resume)
        else:
            token = {"after": None, "gte": int(since.timestamp()) if since else None}
        while True:
            params: list[tuple[str, Any]] = [("limit", self.page_size), *extra]
            params += [("expand[]", e) for e in expand]
            if token["gte"] is not None:
                params.append(("created[gte]", token["gte"]))
            if token["after"]:
                params.append(("starting_after", token["after"]))
            data = self._get_list(path, params)
            as_of = self.clock()
            records: list[dict[str, Any]] = data["data"]
            for obj in records:
                obj["_as_of"] = as_of
                if obj.get("object") == "subscription":
                    self._resolve(obj)
            more = bool(data["has_more"]) and bool(records)
            token = {"after": records[-1]["id"] if records else None, "gte": token["gte"]}
            yield Page(records=records, resume=json.dumps(token) if more else None)
            if not more:
                return

    def _events(self, since: datetime | None) -> Iterator[Page]:
        oldest = self.clock() - EVENT_RETENTION
        gte = max(since, oldest) if since else oldest
        events: list[dict[str, Any]] = []
        after: str | None = None
        while True:  # newest first, as Stripe lists them
            params: list[tuple[str, Any]] = [("limit", 100), ("created[gte]", int(gte.timestamp()))]
            params += [("types[]", t) for t in EVENT_TYPES]
            if after:
                params.append(("starting_after", after))
            data = self._get_list("/v1/events", params)
            events.extend(data["data"])
            if not data["has_more"] or not data["data"]:
                break
            after = data["data"][-1]["id"]
        events.reverse()  # oldest first; within one second, Stripe's own order
        events.sort(key=lambda e: e.get("created") or 0)  # stable
        # Pages carry no resume token: each ends at an event time, which becomes the
        # cursor, and a re-run starts from there (re-applying an event is harmless).
        for start in range(0, len(events), self.page_size):
            chunk = events[start : start + self.page_size]
            for event in chunk:
                self._prepare_event(event)
            yield Page(records=chunk, resume=None, cursor=epoch(chunk[-1].get("created")))

    def _prepare_event(self, event: dict[str, Any]) -> None:
        obj = (event.get("data") or {}).get("object")
        if not isinstance(obj, dict) or obj.get("object") != "subscription":
            return
        items = [i for i in (obj.get("items") or {}).get("data") or () if isinstance(i, dict)]
        unresolved = any(isinstance(d, str) for d in obj.get("discounts") or ()) or any(
            isinstance(d, str) for i in items for d in i.get("discounts") or ()
        )
        if unresolved:
            # Events cannot be expanded: read the subscription as it is now instead.
            fresh = self.client.get_json(
                f"/v1/subscriptions/{obj['id']}",
                [("expand[]", "discounts"), ("expand[]", "items.data.discounts")],
                expect=dict,
                require=("id", "status", "items"),
            )
            fresh["_as_of"] = self.clock()
            event["data"]["object"] = obj = fresh
        self._resolve(obj)

    def _get_list(self, path: str, params: list[tuple[str, Any]]) -> dict[str, Any]:
        return self.client.get_json(  # type: ignore[no-any-return]
            path, params, expect=dict, require=("data", "has_more"), check=_list_check
        )

    def _resolve(self, sub: dict[str, Any]) -> None:
        """Fill in what MRR needs and Stripe did not expand: coupons given by id, the tiers
        of tiered prices. Both are cached for the run."""
        for d in _discount_objects(sub):
            _set_coupon(d, self._coupon(_coupon_of(d)))
        for item in (sub.get("items") or {}).get("data") or ():
            for d in item.get("discounts") or ():
                if isinstance(d, dict):
                    _set_coupon(d, self._coupon(_coupon_of(d)))
            price = item.get("price")
            tiered = isinstance(price, dict) and price.get("billing_scheme") == "tiered"
            if tiered and not price.get("tiers"):
                price["tiers"] = self._price_tiers(price["id"])

    def _coupon(self, coupon: Any) -> Any:
        if not isinstance(coupon, str):
            return coupon
        if coupon not in self._coupons:
            try:
                self._coupons[coupon] = self.client.get_json(
                    f"/v1/coupons/{coupon}", expect=dict, require=("id",)
                )
            except FatalSyncError as exc:
                if exc.status != 404:
                    raise
                # Deleted after it was applied: Stripe keeps the discount but no longer
                # serves the coupon. Failing the stream would fail it on every run.
                log.warning(
                    "Stripe coupon %s no longer exists: its discounts are left out of MRR",
                    coupon,
                )
                self._coupons[coupon] = coupon  # an id, not terms: no discount counted
        return self._coupons[coupon]

    def _price_tiers(self, price_id: str) -> list[dict[str, Any]]:
        if price_id not in self._prices:
            self._prices[price_id] = self.client.get_json(
                f"/v1/prices/{price_id}", [("expand[]", "tiers")], expect=dict, require=("id",)
            )
        return list(self._prices[price_id].get("tiers") or ())

    # -- mapping -------------------------------------------------------------------------

    def map(self, stream: Stream, raw: RawRecord) -> list[MapResult]:
        if stream.name == "events":
            return self._map_event(raw)
        as_of: datetime = raw.get("_as_of") or self.clock()
        if stream.name == "customers":
            return [Row(Customer, self._customer(raw, as_of))]
        if stream.name == "subscriptions":
            return self._subscription(raw, as_of)
        return [Row(Invoice, self._invoice(raw, as_of))]

    def _map_event(self, event: RawRecord) -> list[MapResult]:
        kind: str = event["type"]
        at = epoch(event["created"])
        assert at is not None
        obj = (event.get("data") or {}).get("object")
        if not isinstance(obj, dict) or "id" not in obj:
            raise InvalidRecord("event without an object", event.get("id"))
        if kind.startswith("customer.subscription."):
            as_of = obj.get("_as_of") or at  # a refreshed subscription is as of its fetch
            return self._subscription(obj, as_of, changed_at=at)
        if kind == "customer.deleted":
            return [Row(Customer, {**self._customer(obj, at), "deleted_at": at})]
        if kind.startswith("customer."):
            return [Row(Customer, self._customer(obj, at))]
        if kind == "invoice.deleted":
            return [Deletion(Invoice, obj["id"], at=at)]
        if kind.startswith("invoice."):
            return [Row(Invoice, self._invoice(obj, at))]
        return []

    def _customer(self, c: RawRecord, as_of: datetime) -> dict[str, Any]:
        created = epoch(c.get("created"))
        if created is None:
            raise InvalidRecord("missing created", c.get("id"))
        metadata = c.get("metadata") or {}
        return {
            "id": c["id"],
            "source": self.name,
            "name": c.get("name") or c.get("description"),
            "email": c.get("email"),
            "plan": metadata.get("plan"),
            "segment": metadata.get("segment"),
            "country": (c.get("address") or {}).get("country"),
            "created_at": created,
            "updated_at": as_of,
            "deleted_at": None,
        }

    def _invoice(self, inv: RawRecord, as_of: datetime) -> dict[str, Any]:
        total = int(inv.get("total") or 0)
        if inv.get("tax") is not None:
            tax = int(inv["tax"])
        elif inv.get("total_excluding_tax") is not None:
            tax = total - int(inv["total_excluding_tax"])
        else:
            tax = sum(int(t.get("amount") or 0) for t in inv.get("total_taxes") or ())
        subscription = inv.get("subscription") or (
            ((inv.get("parent") or {}).get("subscription_details") or {}).get("subscription")
        )
        created = epoch(inv.get("created"))
        if created is None:
            raise InvalidRecord("missing created", inv.get("id"))
        return {
            "id": inv["id"],
            "source": self.name,
            "customer_id": _id(inv["customer"]),
            "subscription_id": _id(subscription) if subscription else None,
            "status": inv.get("status") or "draft",
            "currency": str(inv.get("currency") or "").upper(),
            "total": total,
            "tax": tax,
            "amount_paid": int(inv.get("amount_paid") or 0),
            "amount_due": int(inv.get("amount_due") or 0),
            "created_at": created,
            "paid_at": epoch((inv.get("status_transitions") or {}).get("paid_at")),
            "period_start": epoch(inv.get("period_start")),
            "period_end": epoch(inv.get("period_end")),
            "updated_at": as_of,
        }

    def _subscription(
        self, sub: RawRecord, as_of: datetime, changed_at: datetime | None = None
    ) -> list[MapResult]:
        sid = sub["id"]
        items = [i for i in (sub.get("items") or {}).get("data") or () if isinstance(i, dict)]
        currency = str(sub.get("currency") or "").upper()
        if not currency:
            raise InvalidRecord("missing currency", sid)
        customer = _id(sub["customer"])
        status = sub["status"]
        mrr = subscription_mrr(sub, as_of)
        percent, amount_off = _subscription_discount(sub, as_of)
        first_item = items[0] if items else {}
        created = epoch(sub.get("created")) or as_of
        out: list[MapResult] = [
            Row(
                Subscription,
                {
                    "id": sid,
                    "source": self.name,
                    "customer_id": customer,
                    "status": status,
                    "currency": currency,
                    "plan": _plan_name(first_item),
                    "created_at": created,
                    "started_at": epoch(sub.get("start_date")),
                    "trial_start": epoch(sub.get("trial_start")),
                    "trial_end": epoch(sub.get("trial_end")),
                    "current_period_start": epoch(
                        sub.get("current_period_start") or first_item.get("current_period_start")
                    ),
                    "current_period_end": epoch(
                        sub.get("current_period_end") or first_item.get("current_period_end")
                    ),
                    "cancel_at": epoch(sub.get("cancel_at")),
                    "canceled_at": epoch(sub.get("canceled_at")),
                    "ended_at": epoch(sub.get("ended_at")),
                    "discount_percent": percent,
                    "discount_amount_off": amount_off,
                    "updated_at": as_of,
                },
            )
        ]
        for item in items:
            price = item.get("price") or item.get("plan") or {}
            recurring = price.get("recurring") or {}
            interval = recurring.get("interval") or price.get("interval")
            out.append(
                Row(
                    SubscriptionItem,
                    {
                        "id": item["id"],
                        "source": self.name,
                        "subscription_id": sid,
                        "price_id": price.get("id"),
                        "product": _id(price.get("product")) if price.get("product") else None,
                        "quantity": int(item.get("quantity") or 0),
                        "unit_amount": _int_or_none(price.get("unit_amount")),
                        "currency": str(price.get("currency") or currency).upper(),
                        "interval": interval,
                        "interval_count": int(
                            recurring.get("interval_count") or price.get("interval_count") or 1
                        ),
                        "usage_type": recurring.get("usage_type")
                        or price.get("usage_type")
                        or "licensed",
                        "updated_at": as_of,
                    },
                )
            )
        out.append(
            ReplaceChildren(
                SubscriptionItem, "subscription_id", sid, frozenset(i["id"] for i in items)
            )
        )
        state = {
            "source": self.name,
            "customer_id": customer,
            "status": status,
            "plan": _plan_name(first_item),
            "quantity": sum(
                int(i.get("quantity") or 0) for i in items if _is_recurring_licensed(i)
            ),
            "mrr": mrr,
            "currency": currency,
        }
        segments, ended = _segments(sub, state, as_of)
        out.append(
            Timeline(
                SubscriptionPeriod,
                key_field="subscription_id",
                key=sid,
                segments=segments,
                as_of=as_of,
                compare=PERIOD_FIELDS,
                ended_at=ended,
                changed_at=changed_at,
            )
        )
        return out


# -- MRR ---------------------------------------------------------------------------------


def subscription_mrr(sub: RawRecord, as_of: datetime) -> float:
    """Monthly recurring revenue of a subscription, minor units, rounded to 4 decimals."""
    items = [i for i in (sub.get("items") or {}).get("data") or () if isinstance(i, dict)]
    total = 0.0
    interval_months: float | None = None
    for item in items:
        if not _is_recurring_licensed(item):
            continue
        price = item.get("price") or item.get("plan") or {}
        months = _months(price)
        interval_months = interval_months or months
        amount = _interval_amount(price, int(item.get("quantity") or 0))
        amount = _without_inclusive_tax(amount, price, item, sub)
        for d in _live_discounts(item.get("discounts") or (), as_of):
            amount = _apply(amount, d, per_month=False, months=months)
        total += amount / months
    for d in _live_discounts(_discount_objects(sub), as_of):
        total = _apply(total, d, per_month=True, months=interval_months or 1.0)
    return round(max(total, 0.0), 4)


def _is_recurring_licensed(item: dict[str, Any]) -> bool:
    price = item.get("price") or item.get("plan") or {}
    if price.get("type") == "one_time":
        return False
    recurring = price.get("recurring")
    interval = (recurring or {}).get("interval") or price.get("interval")
    usage = (recurring or {}).get("usage_type") or price.get("usage_type") or "licensed"
    return interval in MONTHS_PER and usage == "licensed"


def _months(price: dict[str, Any]) -> float:
    recurring = price.get("recurring") or {}
    interval = str(recurring.get("interval") or price.get("interval"))
    count = int(recurring.get("interval_count") or price.get("interval_count") or 1)
    return MONTHS_PER[interval] * count


def _interval_amount(price: dict[str, Any], quantity: int) -> float:
    """What one billing interval costs for ``quantity``, before discounts."""
    transform = price.get("transform_quantity")
    if transform and transform.get("divide_by"):
        divided = quantity / float(transform["divide_by"])
        quantity = math.ceil(divided) if transform.get("round") == "up" else math.floor(divided)
    if price.get("billing_scheme") == "tiered":
        return _tiered(price.get("tiers") or [], price.get("tiers_mode"), quantity)
    unit = price.get("unit_amount_decimal")
    if unit is None:
        unit = price.get("unit_amount") if "unit_amount" in price else price.get("amount")
    return float(unit or 0) * quantity


def _tiered(tiers: list[dict[str, Any]], mode: str | None, quantity: int) -> float:
    def unit(t: dict[str, Any]) -> float:
        return float(t.get("unit_amount_decimal") or t.get("unit_amount") or 0)

    def flat(t: dict[str, Any]) -> float:
        return float(t.get("flat_amount_decimal") or t.get("flat_amount") or 0)

    if mode == "volume":
        for t in tiers:
            if t.get("up_to") is None or quantity <= t["up_to"]:
                return unit(t) * quantity + flat(t)
        return 0.0
    total, below = 0.0, 0  # graduated: each tier prices the units that fall in it
    for t in tiers:
        top = quantity if t.get("up_to") is None else min(quantity, t["up_to"])
        if top > below:
            total += unit(t) * (top - below) + flat(t)
        below = max(below, top)
        if below >= quantity:
            break
    return total


def _without_inclusive_tax(
    amount: float, price: dict[str, Any], item: dict[str, Any], sub: RawRecord
) -> float:
    if price.get("tax_behavior") != "inclusive":
        return amount
    rates = item.get("tax_rates") or sub.get("default_tax_rates") or ()
    percent = sum(
        float(r.get("percentage") or 0) for r in rates if isinstance(r, dict) and r.get("inclusive")
    )
    return amount / (1 + percent / 100) if percent else amount


def _discount_objects(sub: RawRecord) -> list[dict[str, Any]]:
    found = [d for d in sub.get("discounts") or () if isinstance(d, dict)]
    legacy = sub.get("discount")  # older API versions: one discount object
    if isinstance(legacy, dict) and all(d.get("id") != legacy.get("id") for d in found):
        found.append(legacy)
    return found


def _coupon_of(discount: dict[str, Any]) -> Any:
    if discount.get("coupon") is not None:
        return discount["coupon"]
    return (discount.get("source") or {}).get("coupon")  # newer API versions


def _set_coupon(discount: dict[str, Any], coupon: Any) -> None:
    if discount.get("coupon") is not None or "source" not in discount:
        discount["coupon"] = coupon
    else:
        discount["source"]["coupon"] = coupon


def _live_discounts(discounts: Any, as_of: datetime) -> list[dict[str, Any]]:
    """Coupons in force at ``as_of`` that recur: a ``once`` coupon discounts one invoice,
    not the recurring revenue."""
    live = []
    for d in discounts:
        if not isinstance(d, dict):
            continue
        coupon = _coupon_of(d)
        if not isinstance(coupon, dict) or coupon.get("duration") == "once":
            continue
        end = epoch(d.get("end"))
        if end is not None and end <= as_of:
            continue
        live.append(coupon)
    return live


def _apply(amount: float, coupon: dict[str, Any], *, per_month: bool, months: float) -> float:
    """``amount`` less the coupon. ``amount_off`` comes off each invoice, i.e. once per
    ``months``-long billing interval: as is for an interval's amount, divided for a
    monthly one."""
    if coupon.get("percent_off"):
        return amount * (1 - float(coupon["percent_off"]) / 100)
    if coupon.get("amount_off"):
        off = float(coupon["amount_off"])
        return max(0.0, amount - (off / months if per_month else off))
    return amount


def _subscription_discount(sub: RawRecord, as_of: datetime) -> tuple[float | None, int | None]:
    coupons = _live_discounts(_discount_objects(sub), as_of)
    if not coupons:
        return None, None
    keep = 1.0
    amount = 0.0
    items = [i for i in (sub.get("items") or {}).get("data") or () if isinstance(i, dict)]
    months = next((_months(i.get("price") or {}) for i in items if _is_recurring_licensed(i)), 1.0)
    for c in coupons:
        if c.get("percent_off"):
            keep *= 1 - float(c["percent_off"]) / 100
        elif c.get("amount_off"):
            amount += float(c["amount_off"]) / months
    percent = round((1 - keep) * 100, 4) if keep < 1 else None
    return percent, (round(amount) if amount else None)


# -- history -----------------------------------------------------------------------------


def _segments(
    sub: RawRecord, state: dict[str, Any], as_of: datetime
) -> tuple[tuple[Segment, ...], datetime | None]:
    """The subscription's history as far as one snapshot tells it (used the first time a
    subscription is seen): a trial, then the paid stretch, then its current status."""
    status = state["status"]
    start = epoch(sub.get("start_date")) or epoch(sub.get("created")) or as_of
    trial_start, trial_end = epoch(sub.get("trial_start")), epoch(sub.get("trial_end"))
    ended = epoch(sub.get("ended_at")) if status in ("canceled", "incomplete_expired") else None
    active = {**state, "status": "active"}
    segs: list[Segment] = []
    paid_from = start
    if trial_start and trial_end and trial_end > trial_start and status != "incomplete":
        segs.append(Segment(trial_start, {**state, "status": "trialing"}))
        paid_from = trial_end
    if status == "trialing":
        return (Segment(trial_start or start, state),), None
    if status in ("incomplete", "incomplete_expired"):
        return (Segment(start, state),), ended
    if status == "canceled":
        if ended is not None and trial_end is not None and ended <= trial_end:
            return tuple(segs) or (Segment(start, {**state, "status": "trialing"}),), ended
        segs.append(Segment(paid_from, active))  # it was paid until it ended
        return tuple(segs), ended
    if status in ("past_due", "unpaid"):
        first_item = ((sub.get("items") or {}).get("data") or [{}])[0]
        since = epoch(sub.get("current_period_start") or first_item.get("current_period_start"))
        if since is not None and since > paid_from:
            segs.append(Segment(paid_from, active))
            paid_from = since
    segs.append(Segment(paid_from, state))
    return tuple(segs), None


# -- small helpers -----------------------------------------------------------------------


def _list_check(data: dict[str, Any]) -> str | None:
    return None if isinstance(data["data"], list) else "data is not a list"


def _id(value: Any) -> str:
    """An id whether Stripe gave the id or the expanded object."""
    return str(value["id"]) if isinstance(value, dict) else str(value)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _plan_name(item: dict[str, Any]) -> str | None:
    price = item.get("price") or item.get("plan") or {}
    product = price.get("product")
    name = price.get("nickname") or price.get("lookup_key")
    if not name and isinstance(product, dict):
        name = product.get("name")
    return (name or price.get("id") or None) if price else None
