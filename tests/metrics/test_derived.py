"""mrr_changes can make revenue answers faster, never different: triggers mark every
customer whose periods change, and marked customers are computed from the periods."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, insert, select, update

from bot.db import make_engine, upgrade
from metrics import evaluate, parse_query, refresh_derived
from metrics.schema import MrrChange, MrrPending, SubscriptionPeriod
from tests.conftest import _PG_SKIP, postgres_schema_url
from tests.metrics.helpers import CTX, NOW, ask, at, periods
from tests.metrics.test_backends_agree import QUERIES, _load, _warehouse
from tests.metrics.test_revenue import _november

REVENUE = [
    *(q for q in QUERIES if q.split()[0] in ("mrr", "churn", "revenue", "net", "nrr", "grr")),
    "mrr movements last 6m by week vs previous",
    "churn last 6m by month where plan=pro",
    "gross revenue churn last 90d by week",
    "grr last 6m by month",
    "crr last 6m by month vs previous",
    "ltv last 6m by month",
    "usage rate last 60d by week",
    "retention last 30d where segment=smb",
]


def _pending(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(select(MrrPending.customer_id)))


def _answers(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [evaluate(conn, parse_query(q), CTX, now=NOW).to_json() for q in REVENUE]


def _refresh(engine: Engine) -> int:
    with engine.begin() as conn:
        return refresh_derived(conn)


@pytest.fixture(params=["create_all", "migrations"])
def built(request: pytest.FixtureRequest, database_url: str) -> Iterator[Engine]:
    """A database made either way: the triggers must exist in both."""
    engine = make_engine(database_url)
    if request.param == "migrations":
        upgrade(engine)
    else:
        from metrics.schema import Base

        Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def test_every_write_that_can_change_mrr_marks_the_customer(built: Engine) -> None:
    periods(
        built,
        ("A", "a1", 1000, "2026-01-01 00:00", None),
        ("B", "b1", 500, "2026-02-01 00:00", None),
    )
    assert _pending(built) == {"A", "B"}
    assert _refresh(built) == 2
    assert _pending(built) == set()
    with built.begin() as conn:
        count = conn.scalar(select(func.count()).select_from(MrrChange))
        # A column MRR does not depend on: no mark.
        conn.execute(
            update(SubscriptionPeriod).values(plan="pro", updated_at=at("2026-11-01 00:00"))
        )
    assert count == 2 and _pending(built) == set()
    with built.begin() as conn:
        conn.execute(
            update(SubscriptionPeriod)
            .where(SubscriptionPeriod.customer_id == "A")
            .values(valid_to=at("2026-11-01 00:00"))
        )
    assert _pending(built) == {"A"}
    _refresh(built)
    with built.begin() as conn:  # a period in another currency is another timeline
        conn.execute(
            update(SubscriptionPeriod)
            .where(SubscriptionPeriod.customer_id == "B")
            .values(currency="USD")
        )
    assert _pending(built) == {"B"}
    _refresh(built)
    with built.begin() as conn:  # a period moved to another customer: both change
        conn.execute(
            update(SubscriptionPeriod)
            .where(SubscriptionPeriod.customer_id == "B")
            .values(customer_id="C")
        )
    assert _pending(built) == {"B", "C"}
    _refresh(built)
    with built.begin() as conn:
        conn.execute(delete(SubscriptionPeriod).where(SubscriptionPeriod.customer_id == "C"))
    assert _pending(built) == {"C"}
    _refresh(built)
    with built.connect() as conn:
        rows = conn.execute(
            select(MrrChange.customer_id, MrrChange.kind).order_by(MrrChange.changed_at)
        ).all()
    assert [tuple(r) for r in rows] == [("A", "new"), ("A", "churn")]


def test_a_stale_table_is_never_read(engine: Engine) -> None:
    _november(engine)
    _refresh(engine)
    assert ask(engine, "mrr movements this month").value == 45.0
    # A's expansion is undone after the refresh, and nobody refreshes: A is computed
    # from its periods, everyone else is read from mrr_changes.
    with engine.begin() as conn:
        conn.execute(delete(SubscriptionPeriod).where(SubscriptionPeriod.customer_id == "A"))
    periods(engine, ("A", "a1", 10000, "2026-01-01 00:00", None))
    assert _pending(engine) == {"A"}
    result = ask(engine, "mrr movements this month")
    assert (result.value, result.extra["expansion"]) == (-5.0, 15.0)
    assert ask(engine, "nrr this month").value == 74.0  # (100 + 0 + 60 + 25) / 250


def test_a_mark_made_while_refreshing_survives_the_refresh(engine: Engine) -> None:
    periods(engine, ("A", "a1", 1000, "2026-01-01 00:00", None))
    with engine.connect() as conn:
        seen = conn.execute(select(MrrPending.customer_id, MrrPending.version)).all()
    # Another writer changes A after the refresh read its marks, before it clears them.
    periods(engine, ("A", "a2", 2000, "2026-03-01 00:00", None))
    with engine.begin() as conn:
        conn.execute(
            delete(MrrPending).where(
                MrrPending.customer_id == seen[0][0], MrrPending.version == seen[0][1]
            )
        )
    assert _pending(engine) == {"A"}  # the new mark has a new version


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_computed_stored_and_mixed_timelines_give_identical_answers(
    backend: str, tmp_path: Path
) -> None:
    if backend == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path / 'kpibot.db'}"])
    else:
        if _PG_SKIP:
            pytest.skip(_PG_SKIP)
        urls = postgres_schema_url()
    engine = make_engine(next(urls))
    data = _warehouse(seed=5)
    _load(engine, data)
    computed = _answers(engine)  # every customer pending: all from subscription_periods
    assert _refresh(engine) == len({p["customer_id"] for p in data[SubscriptionPeriod]})
    assert _answers(engine) == computed  # all from mrr_changes
    # Some customers change after the refresh: stored rows for the rest, computed for them.
    with engine.begin() as conn:
        conn.execute(
            update(SubscriptionPeriod)
            .where(SubscriptionPeriod.customer_id.in_(["c1", "c2", "c3"]))
            .values(mrr=SubscriptionPeriod.mrr * 2)
        )
        conn.execute(delete(SubscriptionPeriod).where(SubscriptionPeriod.customer_id == "c4"))
        conn.execute(
            insert(SubscriptionPeriod).values(
                id="late",
                source="t",
                subscription_id="late",
                customer_id="c5",
                status="active",
                mrr=4200.0,
                currency="EUR",
                valid_from=at("2026-09-15 12:00"),
                valid_to=None,
                updated_at=at(
                    "2026-06-01 00:00"
                ),  # older than what was stored: no watermark sees it
            )
        )
    assert _pending(engine) == {"c1", "c2", "c3", "c4", "c5"}
    mixed = _answers(engine)
    assert mixed != computed
    _refresh(engine)
    assert _answers(engine) == mixed
    engine.dispose()
    next(urls, None)
