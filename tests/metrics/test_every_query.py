"""Every query the parser accepts evaluates: each KPI × each statistic it allows × (no
grouping, by day, by each of its dimensions) × (plain, vs previous), on a small warehouse
with data in both windows, on SQLite and PostgreSQL.

With data, every answer has a value (a null is reserved for an empty window, DESIGN.md);
on an empty warehouse, every answer is null. Where the data leaves a figure undefined by
its definition (CLV without churn, cost of retention without spend), the warehouse and the
context below supply churn and spend, so that "null" can only mean "no data".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine

from bot.db import make_engine
from metrics import KPI, KPIS, MetricContext, RetentionSpend
from metrics.schema import Base
from tests import conftest
from tests.metrics.helpers import WARSAW, ask, customers, events, periods, surveys, tickets

CTX = MetricContext(
    timezone=WARSAW,
    currency="EUR",
    retention_spend=(
        RetentionSpend(date(2026, 10, 1), 300.0),
        RetentionSpend(date(2026, 11, 1), 300.0),
    ),
)
# "last 30d" at the helpers' NOW (24 November 10:00) and the 30 days before it.
FIRST_DAY = date(2026, 9, 1)
DAYS = (date(2026, 11, 24) - FIRST_DAY).days + 1


def _seed(engine: Engine) -> None:
    customers(
        engine,
        {"id": "A", "plan": "pro", "segment": "smb", "country": "PL"},
        {"id": "B", "plan": "enterprise", "segment": "ent", "country": "DE"},
        {"id": "C", "plan": "pro", "segment": "smb", "country": "DE"},
        {"id": "D", "plan": "basic", "segment": "smb", "country": "FR"},
        {"id": "E", "plan": "pro", "segment": "ent", "country": "PL"},
        {"id": "H", "plan": "pro", "segment": "smb", "country": "PL"},
    )
    periods(
        engine,
        ("A", "a1", 10000, "2026-01-01 00:00", None),
        ("B", "b1", 5000, "2026-03-01 00:00", "2026-10-10 00:00"),
        ("B", "b2", 7000, "2026-10-10 00:00", None),  # expansion, previous window
        ("C", "c1", 3000, "2026-05-01 00:00", "2026-11-10 00:00"),  # churn, this window
        ("D", "d1", 2000, "2026-06-01 00:00", "2026-10-05 00:00"),  # churn, previous window
        ("E", "e1", 4000, "2026-09-15 00:00", "2026-11-12 00:00"),
        ("E", "e2", 1500, "2026-11-12 00:00", None),  # contraction, this window
        ("F", "f1", 1000, "2026-11-05 00:00", None),  # new, this window
        ("G", "g1", 2500, "2026-09-26 00:00", None),  # new, previous window
        ("H", "h1", 1200, "2026-08-01 00:00", "2026-10-15 00:00"),  # churn (pro), previous
    )
    periods(engine, ("B", "b3", 900, "2026-11-01 00:00", None), status="past_due")
    channels, groups, priorities = ("email", "chat", "web"), ("t1", "t2"), ("low", "high")
    rows = []
    for i in range(DAYS):
        day = FIRST_DAY + timedelta(days=i)
        customer = "ABCDE"[i % 5]
        ticket = {
            "created": f"{day} 09:00",
            "customer_id": customer,
            "channel": channels[i % 3],
            "group_name": groups[i % 2],
            "priority": priorities[i % 2],
            "first_reply_minutes": 10.0 + i,
            "first_reply_business_minutes": 5.0 + i,
        }
        rows.append({**ticket, "status": "open"})
        rows.append(
            {
                **ticket,
                "status": "solved",
                "solved": f"{day} 15:00",
                "replies": 1 + i % 2,
                "full_resolution_minutes": 360.0 + i,
                "full_resolution_business_minutes": 300.0 + i,
            }
        )
    tickets(engine, *rows)
    for i, customer in enumerate("ABCDE"):
        answers = [
            (f"{FIRST_DAY + timedelta(days=d)} 12:00", (d + i) % 11) for d in range(i, DAYS, 4)
        ]
        surveys(engine, "nps", *answers, customer_id=customer)
        fives = [(when, 1 + score % 5) for when, score in answers]
        surveys(engine, "csat", *fives, customer_id=customer)
        sevens = [(when, 1 + score % 7) for when, score in answers]
        surveys(engine, "ces", *sevens, customer_id=customer)
    usage = []
    for i in range(DAYS):
        day = FIRST_DAY + timedelta(days=i)
        usage.append((f"u{i % 4}", "ABCE"[i % 4], "login", f"{day} 08:00"))
        usage.append((f"u{(i + 1) % 4}", "ABCE"[(i + 1) % 4], "export", f"{day} 16:00"))
        usage.append(("u9", None, "login", f"{day} 18:00"))  # a user without an account
    events(engine, *usage)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, Engine]]:
    """A seeded warehouse and an empty one, made once per backend for the whole module."""
    urls: list[str] = []
    cleanups: list[Iterator[str]] = []
    for name in ("seeded", "empty"):
        if request.param == "sqlite":
            urls.append(f"sqlite:///{tmp_path_factory.mktemp(name) / 'kpibot.db'}")
            continue
        if conftest._PG_SKIP:
            pytest.skip(conftest._PG_SKIP)
        schema = conftest.postgres_schema_url()
        urls.append(next(schema))
        cleanups.append(schema)
    engines = [make_engine(url) for url in urls]
    for engine in engines:
        Base.metadata.create_all(engine)
    _seed(engines[0])
    yield engines[0], engines[1]
    for engine in engines:
        engine.dispose()
    for schema in cleanups:
        next(schema, None)


def queries(kpi: KPI) -> list[str]:
    """Every statistic × grouping × comparison the parser accepts for ``kpi``."""
    statistics = [None, *(s.replace("pNN", "p90") for s in kpi.statistics)]
    groupings = [""] + (["by day"] if "day" in kpi.grains else [])
    groupings += [f"by {d}" for d in kpi.dimensions]
    if kpi.rankable:
        groupings += ["top 3", "bottom 3"]
    out = []
    for statistic in statistics:
        for grouping in groupings:
            for comparison in ("", "vs previous"):
                needs = kpi.requires and grouping != f"by {kpi.requires}"
                where = f"where {kpi.requires}=export" if needs else ""
                words = [kpi.name, statistic or "", "last 30d", grouping, comparison, where]
                out.append(" ".join(w for w in words if w))
    if "plan" in kpi.filter_keys:  # a customer filter: joins customers
        where = f"where {kpi.requires}=export and plan=pro" if kpi.requires else "where plan=pro"
        out.append(f"{kpi.name} last 30d vs previous {where}")
    return out


@pytest.mark.parametrize("kpi", KPIS, ids=lambda k: k.name)
def test_every_query_of_every_kpi_has_a_value_when_there_is_data(
    databases: tuple[Engine, Engine], kpi: KPI
) -> None:
    seeded, _ = databases
    for text in queries(kpi):
        result = ask(seeded, text, ctx=CTX)
        assert result.value is not None, text
        if "vs previous" in text:
            assert result.previous is not None, text
        if result.dimension or " top " in text or " bottom " in text:
            assert result.series, text
            assert all(p.value is not None for p in result.series if p.n), text


@pytest.mark.parametrize("kpi", KPIS, ids=lambda k: k.name)
def test_every_query_of_every_kpi_is_null_on_an_empty_warehouse(
    databases: tuple[Engine, Engine], kpi: KPI
) -> None:
    _, empty = databases
    for text in queries(kpi):
        result = ask(empty, text, ctx=CTX)
        assert result.value is None, text
        assert result.previous is None, text
        assert all(p.value is None for p in result.series), text
