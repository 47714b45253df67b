"""A fake Stripe API: customers, subscriptions, invoices, events, coupons and prices.

Lists behave as Stripe's do: newest first, ``limit``/``starting_after``/``has_more``,
``created[gte]``, ``status=all`` needed for canceled subscriptions, ``expand[]`` for
discounts (otherwise bare ``di_…`` ids). Every change made through the helpers records an
event whose ``data.object`` is the object as it then was (discounts unexpanded, as in real
events). The fake has its own clock (``now``), moved by :meth:`tick`.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.server import FakeApi, Request, Response, first

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def price_payload(
    price_id: str,
    *,
    unit_amount: int | None,
    interval: str | None = "month",
    interval_count: int = 1,
    usage_type: str = "licensed",
    currency: str = "usd",
    nickname: str | None = None,
    tax_behavior: str = "unspecified",
    billing_scheme: str = "per_unit",
    tiers_mode: str | None = None,
) -> dict[str, Any]:
    recurring = (
        None
        if interval is None
        else {
            "interval": interval,
            "interval_count": interval_count,
            "meter": None,
            "usage_type": usage_type,
            "trial_period_days": None,
        }
    )
    return {
        "id": price_id,
        "object": "price",
        "active": True,
        "billing_scheme": billing_scheme,
        "created": 1721948530,
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": nickname,
        "product": f"prod_{price_id}",
        "recurring": recurring,
        "tax_behavior": tax_behavior,
        "tiers_mode": tiers_mode,
        "transform_quantity": None,
        "type": "one_time" if interval is None else "recurring",
        "unit_amount": unit_amount,
        "unit_amount_decimal": None if unit_amount is None else str(unit_amount),
    }


PRICES = {
    "price_month": price_payload("price_month", unit_amount=2000, nickname="growth"),
    "price_year": price_payload(
        "price_year", unit_amount=24000, interval="year", nickname="annual"
    ),
    "price_quarter": price_payload("price_quarter", unit_amount=9000, interval_count=3),
    "price_week": price_payload("price_week", unit_amount=1200, interval="week"),
    "price_day": price_payload("price_day", unit_amount=100, interval="day"),
    "price_metered": price_payload("price_metered", unit_amount=5, usage_type="metered"),
    "price_setup": price_payload("price_setup", unit_amount=50000, interval=None),
    "price_inclusive": price_payload(
        "price_inclusive", unit_amount=12000, tax_behavior="inclusive"
    ),
}


class FakeStripe(FakeApi):
    def __init__(self, *, api_key: str, now: datetime = T0) -> None:
        super().__init__()
        self.api_key = api_key
        self.now = now
        self.prices: dict[str, dict[str, Any]] = copy.deepcopy(PRICES)
        self.coupons: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.discounts: dict[str, dict[str, Any]] = {}  # di_… → discount object
        self.events: list[dict[str, Any]] = []
        self.max_limit = 100  # Stripe's own cap on ``limit``; lower it for short pages
        self._seq = 0

    def tick(self, seconds: float = 1) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    @property
    def ts(self) -> int:
        return int(self.now.timestamp())

    # -- the source's data ---------------------------------------------------------------

    def add_coupon(
        self,
        coupon_id: str,
        *,
        percent_off: float | None = None,
        amount_off: int | None = None,
        duration: str = "forever",
    ) -> None:
        self.coupons[coupon_id] = {
            "id": coupon_id,
            "object": "coupon",
            "percent_off": percent_off,
            "amount_off": amount_off,
            "currency": "usd" if amount_off else None,
            "duration": duration,
            "duration_in_months": None,
            "valid": True,
        }

    def add_customer(self, cid: str, *, name: str | None = None, country: str = "PL") -> None:
        with self._lock:
            self.customers[cid] = {
                "id": cid,
                "object": "customer",
                "address": {
                    "city": None,
                    "country": country,
                    "line1": None,
                    "line2": None,
                    "postal_code": None,
                    "state": None,
                },
                "balance": 0,
                "created": self.ts,
                "currency": "usd",
                "delinquent": False,
                "description": None,
                "discount": None,
                "email": f"billing@{cid}.example",
                "invoice_prefix": "7FE1103",
                "livemode": False,
                "metadata": {},
                "name": name or f"Customer {cid}",
                "phone": None,
                "preferred_locales": [],
                "tax_exempt": "none",
                "test_clock": None,
            }
            self._event("customer.created", self.customers[cid])

    def delete_customer(self, cid: str) -> None:
        with self._lock:
            gone = self.customers.pop(cid)
            self._event("customer.deleted", gone)

    def add_subscription(
        self,
        sid: str,
        *,
        customer: str,
        items: list[tuple[str, int]],
        status: str = "active",
        trial_days: int | None = None,
        coupons: tuple[str, ...] = (),
    ) -> None:
        with self._lock:
            start = self.ts
            trial_end = start + trial_days * 86400 if trial_days else None
            sub = {
                "id": sid,
                "object": "subscription",
                "application": None,
                "automatic_tax": {"enabled": False, "liability": None, "disabled_reason": None},
                "billing_cycle_anchor": start,
                "cancel_at": None,
                "cancel_at_period_end": False,
                "canceled_at": None,
                "collection_method": "charge_automatically",
                "created": start,
                "currency": "usd",
                "customer": customer,
                "default_tax_rates": [],
                "description": None,
                "discounts": [],
                "ended_at": None,
                "items": {
                    "object": "list",
                    "data": [],
                    "has_more": False,
                    "url": f"/v1/subscription_items?subscription={sid}",
                },
                "latest_invoice": None,
                "livemode": False,
                "metadata": {},
                "start_date": start,
                "status": "trialing" if trial_days else status,
                "trial_end": trial_end,
                "trial_start": start if trial_days else None,
            }
            self.subscriptions[sid] = sub
            self._set_items(sub, items)
            for coupon in coupons:
                self._seq += 1
                di = f"di_{self._seq:06d}"
                self.discounts[di] = {
                    "id": di,
                    "object": "discount",
                    "coupon": None,
                    "source": {"coupon": coupon, "type": "coupon"},  # an id: needs lookup
                    "customer": customer,
                    "end": None,
                    "start": start,
                    "subscription": sid,
                }
                sub["discounts"].append(di)
            self._event("customer.subscription.created", sub)

    def update_subscription(
        self,
        sid: str,
        *,
        items: list[tuple[str, int]] | None = None,
        status: str | None = None,
    ) -> None:
        with self._lock:
            sub = self.subscriptions[sid]
            if items is not None:
                self._set_items(sub, items)
            if status is not None:
                sub["status"] = status
                if status == "canceled":
                    sub["canceled_at"] = sub["ended_at"] = self.ts
            kind = "deleted" if status == "canceled" else "updated"
            self._event(f"customer.subscription.{kind}", sub)

    def add_invoice(
        self,
        iid: str,
        *,
        customer: str,
        subscription: str | None,
        total: int,
        tax: int = 0,
        status: str = "paid",
    ) -> None:
        with self._lock:
            self.invoices[iid] = {
                "id": iid,
                "object": "invoice",
                "amount_due": total,
                "amount_paid": total if status == "paid" else 0,
                "amount_remaining": 0 if status == "paid" else total,
                "billing_reason": "subscription_cycle",
                "created": self.ts,
                "currency": "usd",
                "customer": customer,
                "discounts": [],
                "lines": {"object": "list", "data": [], "has_more": False, "url": ""},
                "livemode": False,
                "parent": {
                    "type": "subscription_details",
                    "subscription_details": {"subscription": subscription},
                },
                "period_end": self.ts,
                "period_start": self.ts - 30 * 86400,
                "status": status,
                "status_transitions": {
                    "finalized_at": self.ts,
                    "paid_at": self.ts if status == "paid" else None,
                    "voided_at": None,
                    "marked_uncollectible_at": None,
                },
                "subtotal": total - tax,
                "total": total,
                "total_excluding_tax": total - tax,
                "total_taxes": [{"amount": tax}] if tax else [],
            }
            self._event("invoice.created", self.invoices[iid])

    def delete_invoice(self, iid: str) -> None:
        with self._lock:
            gone = self.invoices.pop(iid)
            self._event("invoice.deleted", gone)

    def _set_items(self, sub: dict[str, Any], items: list[tuple[str, int]]) -> None:
        data = []
        for n, (price_id, quantity) in enumerate(items):
            data.append(
                {
                    "id": f"si_{sub['id']}_{n}",
                    "object": "subscription_item",
                    "created": sub["created"],
                    "discounts": [],
                    "metadata": {},
                    "price": copy.deepcopy(self.prices[price_id]),
                    "quantity": quantity,
                    "subscription": sub["id"],
                    "tax_rates": [],
                    "current_period_start": sub["created"],
                    "current_period_end": sub["created"] + 30 * 86400,
                }
            )
        sub["items"]["data"] = data

    def _event(self, kind: str, obj: dict[str, Any]) -> None:
        self._seq += 1
        self.events.append(
            {
                "id": f"evt_{self._seq:08d}",
                "object": "event",
                "api_version": "2025-03-31.basil",
                "created": self.ts,
                "data": {"object": copy.deepcopy(obj)},
                "livemode": False,
                "pending_webhooks": 0,
                "request": {"id": None, "idempotency_key": None},
                "type": kind,
            }
        )

    # -- routes --------------------------------------------------------------------------

    def route(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Response(
                401,
                {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}},
            )
        path, q = request.path, request.query
        expand = set(q.get("expand[]", []))
        with self._lock:
            if path == "/v1/customers":
                return self._list(path, list(self.customers.values()), request)
            if path == "/v1/invoices":
                return self._list(path, list(self.invoices.values()), request)
            if path == "/v1/subscriptions":
                subs = list(self.subscriptions.values())
                if first(q, "status") != "all":
                    subs = [s for s in subs if s["status"] != "canceled"]
                subs = [self._expanded(s, "data.discounts" in expand) for s in subs]
                return self._list(path, subs, request)
            if path == "/v1/events":
                types = set(q.get("types[]", []))
                events = [e for e in self.events if not types or e["type"] in types]
                return self._list(path, events, request)
            for prefix, table in (
                ("/v1/subscriptions/", self.subscriptions),
                ("/v1/coupons/", self.coupons),
                ("/v1/prices/", self.prices),
            ):
                if path.startswith(prefix) and path[len(prefix) :] in table:
                    obj = table[path[len(prefix) :]]
                    if prefix == "/v1/subscriptions/":
                        obj = self._expanded(obj, "discounts" in expand)
                    return Response(200, copy.deepcopy(obj))
        return Response(
            404, {"error": {"type": "invalid_request_error", "message": "No such resource"}}
        )

    def _expanded(self, sub: dict[str, Any], expand: bool) -> dict[str, Any]:
        if not expand:
            return sub
        out = copy.deepcopy(sub)
        out["discounts"] = [copy.deepcopy(self.discounts[d]) for d in sub["discounts"]]
        return out

    def _list(self, path: str, objects: list[dict[str, Any]], request: Request) -> Response:
        q = request.query
        limit = min(int(first(q, "limit", "10") or 10), self.max_limit)
        gte = first(q, "created[gte]")
        if gte is not None:
            objects = [o for o in objects if o["created"] >= int(gte)]
        # Newest first; insertion order breaks ties, newest insert first.
        objects = list(reversed(objects))
        objects.sort(key=lambda o: -o["created"])
        after = first(q, "starting_after")
        if after is not None:
            ids = [o["id"] for o in objects]
            objects = objects[ids.index(after) + 1 :] if after in ids else []
        page = objects[:limit]
        return Response(
            200,
            {
                "object": "list",
                "data": copy.deepcopy(page),
                "has_more": len(objects) > limit,
                "url": path,
            },
        )
