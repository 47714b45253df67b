"""The same data on SQLite and PostgreSQL gives exactly the same answers, for every KPI."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from bot.db import make_engine
from metrics import KPIS, evaluate, parse_query
from metrics.schema import Base, Customer, SubscriptionPeriod, SurveyResponse, Ticket, UsageEvent
from tests.conftest import _PG_SKIP, postgres_schema_url
from tests.metrics.helpers import CTX, NOW
from tests.metrics.test_query import EXAMPLES

pytestmark = pytest.mark.postgres

QUERIES = [
    *EXAMPLES,
    *(k.example for k in KPIS),
    "frt p75 last 12w by week vs previous",
    "frt mean last 60d by channel",
    "ttr mean last 90d by month vs last year",
    "nps last 90d by week",
    "csat last 90d by plan",
    "mrr last 6m by week",
    "mrr movements last 6m by month",
    "net revenue churn last 6m by month",
    "nrr last 3m by month",
    "health by segment",
    "health top 5 where plan=pro",
    "tickets between 2026-10-20 and 2026-10-30 by day where priority=high",
    "backlog last 90d by week",
    "dau last 60d by week",
    "stickiness last 60d by month",
]


def _warehouse(seed: int = 7) -> dict[type, list[dict[str, Any]]]:
    rng = random.Random(seed)
    start = datetime(2026, 6, 1, tzinfo=UTC)

    def when() -> datetime:
        return start + timedelta(
            seconds=rng.randrange(0, 176 * 86400), microseconds=rng.randrange(10**6)
        )

    customers = [
        {
            "id": f"c{i}",
            "source": "t",
            "name": f"C{i}",
            "plan": rng.choice(["pro", "basic", None]),
            "segment": rng.choice(["smb", "ent"]),
            "created_at": start,
            "updated_at": start,
        }
        for i in range(25)
    ]
    tickets = []
    for i in range(400):
        created = when()
        solved = (
            created + timedelta(minutes=rng.randrange(1, 20000)) if rng.random() < 0.7 else None
        )
        tickets.append(
            {
                "id": f"t{i}",
                "source": "t",
                "customer_id": rng.choice([None, *[c["id"] for c in customers]]),
                "status": (
                    "solved"
                    if solved
                    else rng.choice(["new", "open", "pending", "hold", "deleted"])
                ),
                "channel": rng.choice(["email", "web", "chat", None]),
                "group_name": rng.choice(["l1", "l2"]),
                "priority": rng.choice(["low", "high"]),
                "created_at": created,
                "updated_at": created,
                "first_reply_minutes": rng.choice([None, round(rng.uniform(1, 600), 2), 30.0]),
                "first_reply_business_minutes": round(rng.uniform(1, 300), 2),
                "solved_at": solved,
                "full_resolution_minutes": rng.randrange(1, 20000) if solved else None,
                "replies": rng.randrange(0, 4),
                "reopens": rng.randrange(0, 2),
            }
        )
    surveys = []
    for i in range(400):
        kind, scale = rng.choice([("nps", 10), ("csat", 5), ("csat", 1), ("ces", 7), ("ces", 5)])
        at = when()
        surveys.append(
            {
                "id": f"s{i}",
                "source": "t",
                "kind": kind,
                "score": float(rng.randint(0, scale)),
                "scale_max": scale,
                "customer_id": rng.choice([None, *[c["id"] for c in customers]]),
                "responded_at": at,
                "updated_at": at,
            }
        )
    periods = []
    for c in customers:
        t = start - timedelta(days=rng.randrange(0, 200))
        for j in range(rng.randrange(1, 5)):
            end = t + timedelta(days=rng.randrange(5, 120)) if rng.random() < 0.6 else None
            periods.append(
                {
                    "id": f"{c['id']}-{j}",
                    "source": "t",
                    "subscription_id": f"{c['id']}-{j % 2}",
                    "customer_id": c["id"],
                    "status": rng.choice(["active", "active", "past_due", "trialing"]),
                    "mrr": round(rng.uniform(1000, 90000), 4),
                    "currency": "EUR",
                    "valid_from": t,
                    "valid_to": end,
                    "updated_at": t,
                }
            )
            if end is None:
                break
            t = end if rng.random() < 0.5 else end + timedelta(days=rng.randrange(1, 60))
    events = []
    for i in range(500):
        at = when()
        events.append(
            {
                "id": f"e{i}",
                "source": "t",
                "user_id": f"u{rng.randrange(40)}",
                "account_id": rng.choice([c["id"] for c in customers]),
                "event": rng.choice(["login", "export", "share"]),
                "occurred_at": at,
                "updated_at": at,
            }
        )
    return {
        Customer: customers,
        Ticket: tickets,
        SurveyResponse: surveys,
        SubscriptionPeriod: periods,
        UsageEvent: events,
    }


def _load(engine: Engine, data: dict[type, list[dict[str, Any]]]) -> None:
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        for model, rows in data.items():
            conn.execute(insert(model), rows)


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Engine]]:
    if _PG_SKIP:
        pytest.skip(_PG_SKIP)
    data = _warehouse()
    path: Path = tmp_path_factory.mktemp("agree") / "kpibot.db"
    sqlite = make_engine(f"sqlite:///{path}")
    urls = postgres_schema_url()
    postgres = make_engine(next(urls))
    _load(sqlite, data)
    _load(postgres, data)
    yield sqlite, postgres
    sqlite.dispose()
    postgres.dispose()
    next(urls, None)  # drops the schema


@pytest.mark.parametrize("text", QUERIES)
def test_sqlite_and_postgresql_give_identical_results(
    both: tuple[Engine, Engine], text: str
) -> None:
    query = parse_query(text)
    answers = []
    for engine in both:
        with engine.connect() as conn:
            answers.append(evaluate(conn, query, CTX, now=NOW))
    sqlite, postgres = answers
    assert sqlite == postgres
    assert sqlite.to_json() == postgres.to_json()


@pytest.mark.parametrize("kpi", ["mrr", "backlog"])
def test_a_balance_per_bucket_equals_the_balance_asked_at_the_buckets_end(
    tmp_path: Path, kpi: str
) -> None:
    # Series of balances are built from the opening balance plus each bucket's changes;
    # asking for the balance at each bucket's end directly must give the same numbers.
    engine = make_engine(f"sqlite:///{tmp_path / 'kpibot.db'}")
    _load(engine, _warehouse(seed=11))
    with engine.connect() as conn:
        result = evaluate(conn, parse_query(f"{kpi} last 6m by week"), CTX, now=NOW)
        assert len(result.series) == 28  # 26 whole weeks and two partial ones
        for point in result.series:
            assert point.end is not None
            direct = evaluate(conn, parse_query(kpi + " today"), CTX, now=point.end)
            assert direct.value == point.value, point.key
    engine.dispose()
