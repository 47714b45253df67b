"""Every KPI answers a zero-length window (``today`` asked at local midnight) without an
error: a flow over no time has no value; a level at an instant (MRR, backlog, WAU, MAU) is
still that level."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from metrics import KPI, KPIS
from tests.metrics.helpers import ask, at, customers, events, periods, surveys, tickets

MIDNIGHT = at("2026-11-20 00:00")  # Warsaw: 2026-11-19T23:00:00Z


def seed(engine: Engine) -> None:
    """A little of everything, around 19–20 November (local)."""
    customers(
        engine,
        {"id": "A", "plan": "pro", "segment": "smb", "country": "PL"},
        {"id": "B", "plan": "enterprise", "segment": "ent", "country": "DE"},
    )
    periods(
        engine,
        ("A", "a1", 10000, "2026-01-01 00:00", None),
        ("B", "b1", 5000, "2026-03-01 00:00", "2026-11-10 00:00"),
        ("B", "b2", 7000, "2026-11-10 00:00", None),
    )
    periods(engine, ("C", "c1", 3000, "2026-05-01 00:00", "2026-11-19 12:00"))
    tickets(
        engine,
        {"created": "2026-11-19 09:00", "customer_id": "A", "channel": "email",
         "group_name": "t1", "priority": "high", "first_reply_minutes": 30.0},
        {"created": "2026-11-18 09:00", "solved": "2026-11-19 10:00", "status": "solved",
         "customer_id": "B", "channel": "chat", "replies": 1, "first_reply_minutes": 5.0,
         "full_resolution_minutes": 1500.0},
    )  # fmt: skip
    surveys(engine, "nps", ("2026-11-19 10:00", 9), ("2026-11-18 10:00", 3), customer_id="A")
    surveys(engine, "csat", ("2026-11-19 11:00", 5), customer_id="B")
    surveys(engine, "ces", ("2026-11-19 12:00", 6), customer_id="B")
    events(
        engine,
        ("u1", "A", "login", "2026-11-19 09:00"),
        ("u2", "A", "export", "2026-11-19 10:00"),
        ("u3", "B", "login", "2026-11-18 10:00"),
    )


def query_for(kpi: KPI, suffix: str = "") -> str:
    words = kpi.name.replace("_", " ")
    if kpi.requires:
        words += f" where {kpi.requires}=login"
    return f"{words} today{suffix}"


LEVELS = {"mrr", "backlog", "wau", "mau"}


@pytest.mark.parametrize("kpi", KPIS, ids=lambda k: k.name)
def test_a_zero_length_window_answers_without_an_error(engine: Engine, kpi: KPI) -> None:
    seed(engine)
    result = ask(engine, query_for(kpi, " vs previous"), now=MIDNIGHT)
    assert result.start == result.end == MIDNIGHT
    if kpi.name in LEVELS:
        assert result.value is not None
    else:
        assert result.value is None, kpi.name
        assert result.previous is None, kpi.name
    assert kpi.snapshot == (kpi.name in LEVELS)
