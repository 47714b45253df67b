"""Stripe: MRR arithmetic (ChartMogul's rules) and the subscription period history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from integrations.runner import SyncRunner
from integrations.stripe import StripeConnector, subscription_mrr
from metrics.schema import SubscriptionPeriod
from tests.fakes.stripe import PRICES, FakeStripe, price_payload

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def sub(*items: tuple[dict[str, Any], int], **fields: Any) -> dict[str, Any]:
    return {
        "id": "sub_1",
        "object": "subscription",
        "status": "active",
        "items": {
            "data": [
                {"id": f"si_{n}", "price": price, "quantity": qty, "discounts": []}
                for n, (price, qty) in enumerate(items)
            ]
        },
        **fields,
    }


def discount(coupon: dict[str, Any], end: datetime | None = None) -> dict[str, Any]:
    return {
        "id": "di_1",
        "object": "discount",
        "source": {"type": "coupon", "coupon": {"id": "C", **coupon}},
        "end": int(end.timestamp()) if end else None,
    }


@pytest.mark.parametrize(
    ("price", "quantity", "mrr"),
    [
        ("price_month", 3, 6000.0),
        ("price_year", 1, 2000.0),  # 24000 a year ÷ 12
        ("price_quarter", 1, 3000.0),  # 9000 every 3 months ÷ 3
        ("price_week", 1, 5200.0),  # 1200 a week × 52 ÷ 12
        ("price_day", 1, round(100 * 365 / 12, 4)),
        ("price_metered", 10, 0.0),  # usage-based: not recurring revenue
        ("price_setup", 1, 0.0),  # one-time
    ],
)
def test_mrr_normalises_each_interval_to_a_month(price: str, quantity: int, mrr: float) -> None:
    assert subscription_mrr(sub((PRICES[price], quantity)), NOW) == mrr


def test_mrr_sums_items_and_leaves_one_time_and_metered_out() -> None:
    s = sub((PRICES["price_month"], 2), (PRICES["price_metered"], 500), (PRICES["price_setup"], 1))
    assert subscription_mrr(s, NOW) == 4000.0


def test_interval_count_divides() -> None:
    every_two_months = price_payload("p", unit_amount=4000, interval_count=2)
    assert subscription_mrr(sub((every_two_months, 1)), NOW) == 2000.0


def test_percent_and_amount_discounts_apply_while_they_last() -> None:
    monthly = sub((PRICES["price_month"], 1))
    assert subscription_mrr({**monthly, "discounts": [discount({"percent_off": 25})]}, NOW) == 1500
    assert subscription_mrr({**monthly, "discounts": [discount({"amount_off": 500})]}, NOW) == 1500
    annual = sub((PRICES["price_year"], 1))
    # 1200 off each annual invoice is 100 off a month.
    assert subscription_mrr({**annual, "discounts": [discount({"amount_off": 1200})]}, NOW) == 1900
    ended = discount({"percent_off": 50}, end=NOW - timedelta(days=1))
    assert subscription_mrr({**monthly, "discounts": [ended]}, NOW) == 2000
    once = discount({"percent_off": 50, "duration": "once"})
    assert subscription_mrr({**monthly, "discounts": [once]}, NOW) == 2000


def test_a_legacy_single_discount_with_its_coupon_counts() -> None:
    legacy = {"id": "di_9", "coupon": {"id": "OLD", "percent_off": 10, "duration": "forever"}}
    assert subscription_mrr({**sub((PRICES["price_month"], 1)), "discount": legacy}, NOW) == 1800


def test_tax_is_taken_out_of_tax_inclusive_prices() -> None:
    s = sub((PRICES["price_inclusive"], 1))
    s["items"]["data"][0]["tax_rates"] = [{"percentage": 20.0, "inclusive": True}]
    assert subscription_mrr(s, NOW) == 10000.0  # 12000 includes 20% VAT


def test_tiered_prices_follow_their_mode() -> None:
    tiers = [
        {"up_to": 10, "unit_amount": 1000, "flat_amount": None},
        {"up_to": None, "unit_amount": 500, "flat_amount": 2000},
    ]
    graduated = {
        **price_payload("t", unit_amount=None, billing_scheme="tiered", tiers_mode="graduated"),
        "tiers": tiers,
    }
    volume = {**graduated, "tiers_mode": "volume"}
    assert subscription_mrr(sub((graduated, 15)), NOW) == 10 * 1000 + 5 * 500 + 2000
    assert subscription_mrr(sub((volume, 15)), NOW) == 15 * 500 + 2000


def test_transform_quantity_rounds_as_the_price_says() -> None:
    packs = {**PRICES["price_month"], "transform_quantity": {"divide_by": 10, "round": "up"}}
    assert subscription_mrr(sub((packs, 11)), NOW) == 4000.0


# -- history ----------------------------------------------------------------------------------


def periods(engine: Engine, sid: str) -> list[tuple[str, float, datetime, datetime | None]]:
    t = SubscriptionPeriod.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.c.status, t.c.mrr, t.c.valid_from, t.c.valid_to)
            .where(t.c.subscription_id == sid)
            .order_by(t.c.valid_from)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


@pytest.fixture
def stripe() -> Any:
    fake = FakeStripe(api_key="sk_test_history01")
    fake.start()
    yield fake
    fake.stop()


def run(fake: FakeStripe, engine: Engine, **kwargs: Any) -> None:
    connector = StripeConnector(
        api_key="sk_test_history01",
        base_url=fake.url,
        clock=lambda: fake.now,
        sleep=lambda s: None,
    )
    try:
        reports = SyncRunner(engine).sync(connector, **kwargs)
    finally:
        connector.close()
    assert all(r.error is None for r in reports), reports


def test_a_trial_then_paid_history_and_a_change_opening_a_new_period(
    stripe: FakeStripe, engine: Engine
) -> None:
    t0 = stripe.now
    stripe.add_customer("cus_1")
    stripe.add_subscription("sub_1", customer="cus_1", items=[("price_month", 1)], trial_days=14)
    run(stripe, engine)
    assert periods(engine, "sub_1") == [("trialing", 2000.0, t0, None)]

    stripe.tick(14 * 86400)  # the trial ends; Stripe says so in an event
    trial_end = t0 + timedelta(days=14)
    stripe.update_subscription("sub_1", status="active")
    stripe.tick(3600)
    run(stripe, engine)
    assert periods(engine, "sub_1") == [
        ("trialing", 2000.0, t0, trial_end),
        ("active", 2000.0, trial_end, None),
    ]

    stripe.tick(86400)
    upgraded = stripe.now
    stripe.update_subscription("sub_1", items=[("price_month", 3)])
    stripe.tick(600)
    run(stripe, engine)
    run(stripe, engine)  # nothing new: nothing changes
    assert periods(engine, "sub_1")[1:] == [
        ("active", 2000.0, trial_end, upgraded),
        ("active", 6000.0, upgraded, None),
    ]

    stripe.tick(86400)
    ended = stripe.now
    stripe.update_subscription("sub_1", status="canceled")
    run(stripe, engine)
    assert periods(engine, "sub_1")[-1] == ("active", 6000.0, upgraded, ended)


def test_a_subscription_first_seen_canceled_gets_a_closed_paid_period(
    stripe: FakeStripe, engine: Engine
) -> None:
    t0 = stripe.now
    stripe.add_customer("cus_1")
    stripe.add_subscription("sub_1", customer="cus_1", items=[("price_year", 1)])
    stripe.tick(86400 * 40)
    stripe.update_subscription("sub_1", status="canceled")
    stripe.events.clear()  # older than Stripe keeps: only the list tells
    run(stripe, engine, streams=["subscriptions"])
    assert periods(engine, "sub_1") == [("active", 2000.0, t0, t0 + timedelta(days=40))]


def test_a_change_seen_only_by_a_full_sync_is_dated_when_it_was_seen(
    stripe: FakeStripe, engine: Engine
) -> None:
    t0 = stripe.now
    stripe.add_customer("cus_1")
    stripe.add_subscription("sub_1", customer="cus_1", items=[("price_month", 1)])
    run(stripe, engine, full=True)
    stripe.tick(7200)
    stripe.subscriptions["sub_1"]["items"]["data"][0]["quantity"] = 2  # no event
    run(stripe, engine, full=True)
    assert periods(engine, "sub_1") == [
        ("active", 2000.0, t0, stripe.now),
        ("active", 4000.0, stripe.now, None),
    ]


def test_a_coupon_deleted_after_it_was_applied_does_not_stop_the_sync(
    stripe: FakeStripe, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    stripe.add_coupon("KEPT", percent_off=20)
    stripe.add_customer("cus_1")
    stripe.add_subscription(
        "sub_1", customer="cus_1", items=[("price_month", 1)], coupons=("GONE",)
    )
    stripe.add_subscription(
        "sub_2", customer="cus_1", items=[("price_month", 1)], coupons=("KEPT",)
    )
    # Stripe keeps the discount, but GET /v1/coupons/GONE answers 404 once it is deleted.
    with caplog.at_level("WARNING", logger="integrations.stripe"):
        run(stripe, engine)
    assert any("GONE" in r.getMessage() for r in caplog.records)
    assert periods(engine, "sub_1")[-1][:2] == ("active", 2000.0)  # its terms are unknown
    assert periods(engine, "sub_2")[-1][:2] == ("active", 1600.0)
