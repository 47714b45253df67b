from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from bot.db import make_engine
from integrations.demo import KEEP_DAYS, DemoConnector, generate
from integrations.runner import SyncRunner
from metrics.schema import (
    Base,
    Customer,
    Invoice,
    Subscription,
    SubscriptionItem,
    SubscriptionPeriod,
    SurveyResponse,
    Ticket,
    UsageEvent,
)

END = datetime(2026, 11, 24, 10, tzinfo=UTC)


def test_the_same_seed_and_day_make_the_same_data() -> None:
    a, b = generate(7, END), generate(7, END)
    assert a == b
    assert 500 < len(a.customers) < 800  # one every 2.2 days since 2023
    assert len(a.tickets) > 5000 and len(a.survey_responses) > 3000


def test_another_seed_makes_other_data() -> None:
    assert generate(7, END).tickets != generate(8, END).tickets


def test_nothing_is_generated_after_the_end() -> None:
    data = generate(7, END)
    assert max(t["created_at"] for t in data.tickets) < END
    assert max(r["responded_at"] for r in data.survey_responses) < END


def test_an_earlier_end_the_same_day_is_a_prefix_of_the_data() -> None:
    later = generate(7, END)
    earlier = generate(7, END.replace(hour=6))
    ids = {t["id"] for t in later.tickets}
    assert {t["id"] for t in earlier.tickets} <= ids
    assert len(earlier.tickets) < len(later.tickets)


def test_the_demo_syncs_through_the_runner_and_a_rerun_adds_nothing(sqlite_engine: Engine) -> None:
    runner = SyncRunner(sqlite_engine, clock=lambda: END)
    first = runner.sync(DemoConnector(seed=3, end=END))
    assert all(r.complete and r.error is None for r in first)
    with sqlite_engine.connect() as conn:
        tickets = conn.execute(select(func.count()).select_from(Ticket)).scalar_one()
        periods = conn.execute(select(func.count()).select_from(SubscriptionPeriod)).scalar_one()
    assert tickets == len(generate(3, END).tickets)
    runner.sync(DemoConnector(seed=3, end=END))
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Ticket)).scalar_one() == tickets
        assert (
            conn.execute(select(func.count()).select_from(SubscriptionPeriod)).scalar_one()
            == periods
        )


def test_the_storyline_lowers_nps_in_the_last_two_weeks(sqlite_engine: Engine) -> None:
    SyncRunner(sqlite_engine, clock=lambda: END).sync(DemoConnector(seed=42, end=END))
    with sqlite_engine.connect() as conn:

        def nps(start: datetime, end: datetime) -> float:
            scores = (
                conn.execute(
                    select(SurveyResponse.score).where(
                        SurveyResponse.kind == "nps",
                        SurveyResponse.responded_at >= start,
                        SurveyResponse.responded_at < end,
                    )
                )
                .scalars()
                .all()
            )
            promoters = sum(s >= 9 for s in scores)
            detractors = sum(s <= 6 for s in scores)
            return 100 * (promoters - detractors) / len(scores)

        recent = nps(datetime(2026, 11, 11, tzinfo=UTC), END)
        before = nps(datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    assert before - recent > 15


# -- a faithful source: what it serves at ``end`` is the world as it stands at ``end`` --------

DEMO_TABLES = (
    Customer,
    Subscription,
    SubscriptionItem,
    SubscriptionPeriod,
    Invoice,
    Ticket,
    SurveyResponse,
    UsageEvent,
)


def _warehouse(engine: Engine) -> dict[str, set[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            table.__tablename__: {tuple(row) for row in conn.execute(select(table))}
            for table in DEMO_TABLES
        }


SCHEDULED = {"trial_end", "period_end"}  # dates announced in advance, not events


def test_nothing_served_happens_after_the_end() -> None:
    end = datetime(2026, 11, 24, 5, 56, tzinfo=UTC)
    data = generate(7, end)
    for name in data.__dataclass_fields__:
        for record in getattr(data, name):
            stamps = [
                v for k, v in record.items() if isinstance(v, datetime) and k not in SCHEDULED
            ]
            assert max(stamps) < end, (name, record)
            assert record["updated_at"] == max(stamps) or name == "subscriptions", record


def test_a_ticket_solved_after_the_end_is_served_as_it_stood() -> None:
    end = datetime(2026, 11, 24, 5, 56, tzinfo=UTC)
    now = generate(7, end, scale=0.3)
    later = {t["id"]: t for t in generate(7, end + timedelta(days=3), scale=0.3).tickets}
    unsolved = [
        t
        for t in now.tickets
        if t["solved_at"] is None and t["id"] in later and later[t["id"]]["solved_at"]
    ]
    assert len(unsolved) > 5
    for ticket in unsolved:
        assert ticket["status"] in ("new", "open", "pending", "hold")
        assert ticket["full_resolution_minutes"] is None and ticket["updated_at"] < end
    assert all(p["valid_to"] is None or p["valid_to"] < end for p in now.subscription_periods)
    assert any(p["valid_to"] is None for p in now.subscription_periods)


def test_a_later_end_changes_only_what_happened_in_between() -> None:
    """Across midnight too: the days before are the same world, whatever the end. What is
    no longer served is yesterday's storyline layer or past retention."""
    end = datetime(2026, 11, 24, 5, 56, tzinfo=UTC)
    later = end + timedelta(days=2)
    before, after = generate(7, end, scale=0.2), generate(7, later, scale=0.2)
    for name in before.__dataclass_fields__:
        new = {r["id"]: r for r in getattr(after, name)}
        for old in getattr(before, name):
            now = new.get(old["id"])
            if now is None:
                start = old.get("created_at") or old.get("responded_at") or old["updated_at"]
                # past retention (a CSAT answer goes with its ticket, up to 12 days older)
                kept_from = datetime(2026, 11, 26, tzinfo=UTC) - timedelta(days=KEEP_DAYS[name])
                assert "inc" in old["id"] or start < kept_from + timedelta(days=12), (name, old)
            else:
                assert now == old or now["updated_at"] >= end, (name, old, now)


@pytest.mark.parametrize(
    "first, later",
    [
        # 10 hours the same day, across UTC midnight (the world day changes), a day, 3 days
        (datetime(2026, 11, 24, 5, 56, tzinfo=UTC), datetime(2026, 11, 24, 15, 56, tzinfo=UTC)),
        (datetime(2026, 11, 23, 19, 56, tzinfo=UTC), datetime(2026, 11, 24, 5, 56, tzinfo=UTC)),
        (datetime(2026, 11, 24, 5, 56, tzinfo=UTC), datetime(2026, 11, 25, 5, 56, tzinfo=UTC)),
        (datetime(2026, 11, 24, 5, 56, tzinfo=UTC), datetime(2026, 11, 27, 9, 30, tzinfo=UTC)),
    ],
    ids=["10h", "10h-over-midnight", "1d", "3d"],
)
def test_an_incremental_sync_ends_where_a_fresh_one_does(
    tmp_path: Path, first: datetime, later: datetime
) -> None:
    incremental = make_engine(f"sqlite:///{tmp_path / 'incremental.db'}")
    fresh = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    for engine in (incremental, fresh):
        Base.metadata.create_all(engine)

    # A small world (a tenth of the customers) keeps this fast; the rules are the same.
    def demo(end: datetime) -> DemoConnector:
        return DemoConnector(seed=5, end=end, scale=0.1)

    SyncRunner(incremental, clock=lambda: first).sync(demo(first))
    reports = SyncRunner(incremental, clock=lambda: later).sync(demo(later))
    assert all(r.complete for r in reports)
    SyncRunner(fresh, clock=lambda: later).sync(demo(later))
    got, want = _warehouse(incremental), _warehouse(fresh)
    for table in want:
        assert got[table] == want[table], (
            table,
            sorted(got[table] - want[table])[:3],
            sorted(want[table] - got[table])[:3],
        )
