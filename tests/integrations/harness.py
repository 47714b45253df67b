"""One harness per connector, so that one contract suite can drive them all.

A harness owns a fake API server, knows how to put records into it in the source's own
terms (seed, change, tie many records on one ``updated_at``, serve a late older version),
and can say what the warehouse should hold afterwards — computed from the fake's data,
not by the connector's mapping, so the suite checks the connector rather than itself.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from integrations.base import Connector
from integrations.delighted import DelightedConnector
from integrations.http import RetryPolicy
from integrations.stripe import StripeConnector
from integrations.zendesk import ZendeskConnector
from metrics.schema import (
    Customer,
    Invoice,
    Subscription,
    SubscriptionPeriod,
    SurveyResponse,
    Ticket,
)
from tests.fakes.delighted import FakeDelighted
from tests.fakes.server import FakeApi
from tests.fakes.stripe import FakeStripe
from tests.fakes.zendesk import T0, FakeZendesk

State = dict[str, dict[str, Any]]


class FakeTime:
    """A monotonic clock that only moves when slept on: backoff costs no real time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _epoch(value: int) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class Harness:
    name: str
    secrets: tuple[str, ...]
    # The path prefix of each stream's requests, in stream order.
    stream_paths: dict[str, str]
    fake: FakeApi

    def __init__(self) -> None:
        self.time = FakeTime()

    def connector(
        self, *, page_size: int = 3, policy: RetryPolicy | None = None, credentials_ok: bool = True
    ) -> Connector:
        raise NotImplementedError

    def seed(self, n: int) -> None:
        raise NotImplementedError

    def change(self) -> None:
        """Update some records, delete one, add one, all later than anything before."""
        raise NotImplementedError

    def tie(self, n: int) -> None:
        """Add ``n`` records sharing one ``updated_at``."""
        raise NotImplementedError

    def make_stale(self) -> None:
        """Arrange that the next full sync reads an older version of a stored record."""
        raise NotImplementedError

    def invalid(self) -> str:
        """Add a record the connector must skip; returns the id it should log."""
        raise NotImplementedError

    def expected(self) -> State:
        raise NotImplementedError

    def actual(self, engine: Engine) -> State:
        raise NotImplementedError

    def expected_cursors(self) -> dict[str, datetime]:
        raise NotImplementedError


def _rows(engine: Engine, table: Any, *columns: str) -> dict[str, Any]:
    with engine.connect() as conn:
        cols = [getattr(table, c) for c in columns]
        return {r[0]: tuple(r[1:]) for r in conn.execute(select(table.id, *cols))}


# -- Zendesk ---------------------------------------------------------------------------------


class ZendeskHarness(Harness):
    name = "zendesk"
    email = "agent@example.com"
    token = "zd-token-8c1f0e77b2"
    secrets = (token,)
    stream_paths = {  # noqa: RUF012
        "tickets": "/api/v2/incremental/",
        "satisfaction_ratings": "/api/v2/satisfaction_ratings",
    }

    def __init__(self) -> None:
        super().__init__()
        self.fake: FakeZendesk = FakeZendesk(email=self.email, token=self.token)
        self.next_id = 1
        self.stamp = T0
        self.now = T0 + timedelta(days=60)

    def connector(
        self, *, page_size: int = 3, policy: RetryPolicy | None = None, credentials_ok: bool = True
    ) -> Connector:
        return ZendeskConnector(
            email=self.email,
            api_token=self.token if credentials_ok else "wrong-token-000",
            base_url=self.fake.url,
            page_size=page_size,
            requests_per_minute=10,  # the real pace, on the fake clock
            policy=policy or RetryPolicy(),
            sleep=self.time.sleep,
            monotonic=self.time.monotonic,
            clock=lambda: self.now,
        )

    def _tick(self) -> datetime:
        self.stamp += timedelta(minutes=1)
        return self.stamp

    def seed(self, n: int) -> None:
        statuses = ("new", "open", "pending", "solved", "closed")
        for i in range(n):
            tid = self.next_id
            self.next_id += 1
            self.fake.put_ticket(
                tid,
                updated_at=self._tick(),
                status=statuses[i % 5],
                channel=("email", "web", "chat")[i % 3],
            )
            if i % 2 == 0:
                score = ("good", "bad_with_comment", "offered")[i % 3]
                self.fake.put_rating(
                    tid,
                    ticket_id=tid,
                    score=score,
                    updated_at=self.stamp,
                    comment="thanks" if "comment" in score else None,
                )

    def change(self) -> None:
        self.fake.put_ticket(2, updated_at=self._tick(), status="solved", replies=3)
        self.fake.put_ticket(3, updated_at=self._tick(), status="deleted")
        self.fake.put_rating(1, ticket_id=1, score="bad", updated_at=self._tick())
        self.seed(1)

    def tie(self, n: int) -> None:
        stamp = self._tick()
        for _ in range(n):
            tid = self.next_id
            self.next_id += 1
            self.fake.put_ticket(tid, updated_at=stamp, status="open")
            self.fake.put_rating(tid, ticket_id=tid, score="good", updated_at=stamp)

    def make_stale(self) -> None:
        self.fake.put_ticket(
            1, updated_at=T0 - timedelta(days=1), status="open", subject="an older version"
        )
        self.fake.put_rating(1, ticket_id=1, score="good", updated_at=T0 - timedelta(days=1))

    def invalid(self) -> str:
        tid = self.next_id
        self.next_id += 1
        self.fake.put_ticket(tid, updated_at=self._tick())
        del self.fake.tickets[tid]["created_at"]
        return str(tid)

    def expected(self) -> State:
        tickets = {
            str(t["id"]): (_iso(t["updated_at"]), t["status"])
            for t in self.fake.tickets.values()
            if t["status"] != "deleted"
        }
        ratings = {
            f"zendesk-{r['id']}": (
                _iso(r["updated_at"]),
                1.0 if r["score"].startswith("good") else 0.0,
            )
            for r in self.fake.ratings.values()
            if r["score"] not in ("offered", "unoffered")
        }
        return {"tickets": tickets, "survey_responses": ratings}

    def actual(self, engine: Engine) -> State:
        return {
            "tickets": _rows(engine, Ticket, "updated_at", "status"),
            "survey_responses": _rows(engine, SurveyResponse, "updated_at", "score"),
        }

    def expected_cursors(self) -> dict[str, datetime]:
        ratings = [
            _iso(r["updated_at"])
            for r in self.fake.ratings.values()
            if r["score"] not in ("offered", "unoffered")
        ]
        return {
            "tickets": max(_iso(t["updated_at"]) for t in self.fake.tickets.values()),
            "satisfaction_ratings": max(ratings),
        }


# -- Stripe ----------------------------------------------------------------------------------

# Monthly MRR per unit of each fake price, computed by hand from PRICES.
PRICE_MRR = {
    "price_month": 2000.0,
    "price_year": 2000.0,
    "price_quarter": 3000.0,
    "price_week": 1200 * 52 / 12,
    "price_metered": 0.0,
    "price_setup": 0.0,
}


class StripeHarness(Harness):
    name = "stripe"
    api_key = "sk_test_51Hc0ntract5uite"
    secrets = (api_key,)
    stream_paths = {  # noqa: RUF012
        "events": "/v1/events",
        "customers": "/v1/customers",
        "subscriptions": "/v1/subscriptions",
        "invoices": "/v1/invoices",
    }

    def __init__(self) -> None:
        super().__init__()
        self.fake: FakeStripe = FakeStripe(api_key=self.api_key)
        self.fake.add_coupon("TWENTY", percent_off=20)
        self.next_id = 1
        self.deleted_customers: set[str] = set()
        self.rewind: datetime | None = None

    def clock(self) -> datetime:
        return self.rewind or self.fake.now

    def connector(
        self, *, page_size: int = 3, policy: RetryPolicy | None = None, credentials_ok: bool = True
    ) -> Connector:
        return StripeConnector(
            api_key=self.api_key if credentials_ok else "sk_test_wrongwrongwrong",
            base_url=self.fake.url,
            page_size=page_size,
            policy=policy or RetryPolicy(),
            sleep=self.time.sleep,
            monotonic=self.time.monotonic,
            clock=self.clock,
        )

    def _one(self, *, tick: bool = True) -> None:
        i = self.next_id
        self.next_id += 1
        cid, sid = f"cus_{i:04d}", f"sub_{i:04d}"
        price = ("price_month", "price_year", "price_quarter", "price_week")[i % 4]
        self.fake.add_customer(cid)
        self.fake.add_subscription(
            sid,
            customer=cid,
            items=[(price, 1 + i % 3)] + ([("price_metered", 1)] if i % 5 == 0 else []),
            trial_days=14 if i % 6 == 0 else None,
            coupons=("TWENTY",) if i % 4 == 1 else (),
        )
        self.fake.add_invoice(f"in_{i:04d}", customer=cid, subscription=sid, total=2400, tax=400)
        if tick:
            self.fake.tick()

    def seed(self, n: int) -> None:
        for _ in range(n):
            self._one()

    def change(self) -> None:
        self.fake.tick(3600)
        self.fake.update_subscription("sub_0002", items=[("price_month", 7)])
        self.fake.tick(60)
        self.fake.update_subscription("sub_0003", status="canceled")
        self.fake.delete_customer("cus_0004")
        self.deleted_customers.add("cus_0004")
        self.fake.delete_invoice("in_0005")
        self.fake.tick(60)
        self._one()
        self.fake.tick(600)

    def tie(self, n: int) -> None:
        self.fake.tick(60)
        for _ in range(n):
            self._one(tick=False)
        self.fake.tick(60)

    def make_stale(self) -> None:
        # A response from a fetch that started an hour ago arrives now: Stripe read it
        # before the last sync did, so it must lose. (No event: it is the same change.)
        sub = self.fake.subscriptions["sub_0001"]
        sub["items"]["data"][0]["quantity"] = 99
        self.rewind = self.fake.now - timedelta(hours=1)

    def invalid(self) -> str:
        self._one()
        sid = f"sub_{self.next_id - 1:04d}"
        self.fake.subscriptions[sid]["currency"] = None
        return sid

    def expected(self) -> State:
        f = self.fake
        customers = {c: (False,) for c in f.customers} | {
            c: (True,) for c in self.deleted_customers
        }
        subs, periods = {}, {}
        for sid, s in f.subscriptions.items():
            qty = sum(
                i["quantity"] for i in s["items"]["data"] if i["price"]["id"] != "price_metered"
            )
            subs[sid] = (s["status"], qty)
            mrr = sum(PRICE_MRR[i["price"]["id"]] * i["quantity"] for i in s["items"]["data"])
            if s["discounts"]:
                mrr *= 0.8
            status = "active" if s["status"] == "canceled" else s["status"]
            periods[sid] = (status, round(mrr, 4), s["status"] == "canceled")
        invoices = {i: (inv["status"],) for i, inv in f.invoices.items()}
        return {
            "customers": customers,
            "subscriptions": subs,
            "invoices": invoices,
            "periods": periods,
        }

    def actual(self, engine: Engine) -> State:
        customers = {
            k: (v[0] is not None,) for k, v in _rows(engine, Customer, "deleted_at").items()
        }
        latest: dict[str, Any] = {}  # each subscription's newest period
        with engine.connect() as conn:
            table = SubscriptionPeriod.__table__
            for p in conn.execute(select(table).order_by(table.c.valid_from)):
                latest[p.subscription_id] = p
        subs = {
            sid: (status, latest[sid].quantity if sid in latest else None)
            for sid, (status,) in _rows(engine, Subscription, "status").items()
        }
        periods = {sid: (p.status, p.mrr, p.valid_to is not None) for sid, p in latest.items()}
        return {
            "customers": customers,
            "subscriptions": subs,
            "invoices": _rows(engine, Invoice, "status"),
            "periods": periods,
        }

    def expected_cursors(self) -> dict[str, datetime]:
        now = self.clock()
        return {
            "events": _epoch(self.fake.events[-1]["created"]),
            "customers": now,
            "subscriptions": now,
            "invoices": now,
        }


# -- Delighted -------------------------------------------------------------------------------


class DelightedHarness(Harness):
    name = "delighted"
    api_key = "dl-key-5e0c31a9f4"
    secrets = (api_key,)
    stream_paths = {"survey_responses": "/v1/survey_responses"}  # noqa: RUF012
    kept = ("nps", "csat", "ces7")

    def __init__(self) -> None:
        super().__init__()
        self.fake: FakeDelighted = FakeDelighted(api_key=self.api_key)
        self.next_id = 1
        self.stamp = T0

    def connector(
        self, *, page_size: int = 3, policy: RetryPolicy | None = None, credentials_ok: bool = True
    ) -> Connector:
        return DelightedConnector(
            api_key=self.api_key if credentials_ok else "wrong-key",
            base_url=self.fake.url,
            per_page=page_size,
            policy=policy or RetryPolicy(),
            sleep=self.time.sleep,
            monotonic=self.time.monotonic,
            clock=lambda: T0 + timedelta(days=60),
        )

    def _tick(self) -> datetime:
        self.stamp += timedelta(minutes=1)
        return self.stamp

    def seed(self, n: int) -> None:
        kinds = (("nps", 9), ("nps", 3), ("csat", 4), ("ces7", 6), ("enps", 8))
        for i in range(n):
            kind, score = kinds[i % len(kinds)]
            self.fake.put_response(
                self.next_id, survey_type=kind, score=score, updated_at=self._tick()
            )
            self.next_id += 1

    def change(self) -> None:
        self.fake.put_response(
            2,
            survey_type="nps",
            score=10,
            updated_at=self._tick(),
            created_at=T0,
            comment="changed my mind",
        )
        self.seed(1)

    def tie(self, n: int) -> None:
        stamp = self._tick()
        for _ in range(n):
            self.fake.put_response(self.next_id, survey_type="nps", score=7, updated_at=stamp)
            self.next_id += 1

    def make_stale(self) -> None:
        self.fake.put_response(1, survey_type="nps", score=0, updated_at=T0 - timedelta(days=1))

    def invalid(self) -> str:
        rid = self.next_id
        self.next_id += 1
        self.fake.put_response(rid, survey_type="ces", score=4, updated_at=self._tick())
        return f"delighted-{rid}"

    def _kept(self) -> list[dict[str, Any]]:
        return [r for r in self.fake.responses.values() if r["survey_type"] in self.kept]

    def expected(self) -> State:
        return {
            "survey_responses": {
                f"delighted-{r['id']}": (_epoch(r["updated_at"]), float(r["score"]))
                for r in self._kept()
            }
        }

    def actual(self, engine: Engine) -> State:
        return {"survey_responses": _rows(engine, SurveyResponse, "updated_at", "score")}

    def expected_cursors(self) -> dict[str, datetime]:
        return {"survey_responses": max(_epoch(r["updated_at"]) for r in self._kept())}


HARNESSES: dict[str, Callable[[], Harness]] = {
    "zendesk": ZendeskHarness,
    "stripe": StripeHarness,
    "delighted": DelightedHarness,
}
