from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from integrations.demo import DemoConnector, generate
from integrations.runner import SyncRunner
from metrics.schema import SubscriptionPeriod, SurveyResponse, Ticket

END = datetime(2026, 11, 24, 10, tzinfo=UTC)


def test_the_same_seed_and_day_make_the_same_data() -> None:
    a, b = generate(7, END), generate(7, END)
    assert a == b
    assert len(a.customers) == 500
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
