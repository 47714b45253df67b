"""What a digest says: values, arrows by direction, stale marks (never zeros), freshness,
the customers who moved MRR and what detractors wrote — each only where it may be shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert

from bot.commands import KpiService
from bot.digests import build_digest
from bot.replies import Reply, Tone
from bot.settings import DigestConfig
from bot.sources import stream_tables
from metrics.movers import mrr_movers
from metrics.schema import Customer, SubscriptionPeriod, SurveyResponse
from tests.bot.helpers import add_tickets, mark_synced, settings_with

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
WEEK_AGO = NOW - timedelta(days=7)


def service(engine: Engine, **config: object) -> KpiService:
    settings = settings_with(team={"timezone": "Europe/Warsaw", "name": "Acme"}, **config)
    return KpiService(
        engine, settings, clock=lambda: NOW, charts=False, stream_tables=stream_tables()
    )


def digest(**kw: object) -> DigestConfig:
    return DigestConfig(**{"name": "morning", "channel": "slack:C1", **kw})  # type: ignore[arg-type]


def field(reply: Reply, label: str):  # type: ignore[no-untyped-def]
    return next(f for f in reply.fields if f.label.startswith(label))


def periods(engine: Engine, rows: list[tuple[str, float, datetime, datetime | None]]) -> None:
    """Subscription periods: (customer, MRR in cents, valid_from, valid_to)."""
    with engine.begin() as conn:
        for i, (customer, mrr, start, end) in enumerate(rows):
            conn.execute(
                insert(SubscriptionPeriod).values(
                    id=f"sub-{customer}@{i}",
                    source="demo",
                    subscription_id=f"sub-{customer}",
                    customer_id=customer,
                    status="active",
                    mrr=mrr,
                    currency="USD",
                    valid_from=start,
                    valid_to=end,
                    updated_at=start,
                )
            )
        for customer in {r[0] for r in rows}:
            conn.execute(
                insert(Customer).values(
                    id=customer,
                    source="demo",
                    name=f"{customer.title()} Inc",
                    created_at=NOW - timedelta(days=400),
                    updated_at=NOW - timedelta(days=400),
                )
            )


def test_each_kpi_shows_its_value_and_change_coloured_by_its_direction(engine: Engine) -> None:
    add_tickets(engine, at=WEEK_AGO - timedelta(days=3), count=10, first_reply=60)
    add_tickets(engine, at=NOW - timedelta(days=2), count=12, first_reply=120)
    mark_synced(engine, NOW - timedelta(minutes=4))
    reply = build_digest(service(engine), digest(kpis=["tickets", "frt"]), now=NOW)
    tickets, frt = field(reply, "Ticket volume"), field(reply, "First response time")
    assert tickets.value.startswith("12") and "▲ 2" in tickets.value
    assert frt.value.startswith("2h") and "▲ 1h" in frt.value
    assert frt.tone is Tone.BAD  # slower replies are bad news, though the arrow points up
    assert "Demo synced 4 min ago" in " ".join(reply.context)
    assert reply.chart is not None and reply.chart.png.startswith(b"\x89PNG")
    assert reply.title == "Acme · Morning digest"


def test_a_stale_source_marks_its_kpis_and_no_data_is_never_zero(engine: Engine) -> None:
    add_tickets(engine, at=NOW - timedelta(days=2), count=12, first_reply=120)
    mark_synced(engine, NOW - timedelta(hours=5))  # the demo source is stale after 3 h
    reply = build_digest(service(engine), digest(kpis=["tickets", "nps"]), now=NOW)
    tickets = field(reply, "Ticket volume")
    assert tickets.label == "Ticket volume ⚠ stale" and "▲" not in tickets.value
    assert tickets.tone is Tone.NEUTRAL
    assert field(reply, "NPS").value == "no data"  # no survey responses at all: not 0
    assert "Demo has not synced recently" in (reply.text or "")
    assert "⚠ Demo synced 5 h ago (stale)" in " ".join(reply.context)


def test_a_late_digest_says_how_late_and_when_it_was_due(engine: Engine) -> None:
    mark_synced(engine, NOW)
    reply = build_digest(
        service(engine),
        digest(kpis=["tickets"]),
        now=NOW + timedelta(minutes=35),
        late_by=timedelta(minutes=35),
        scheduled=NOW,
    )
    assert "Sent 35m late" in (reply.text or "") and "09:00" in (reply.text or "")


def test_mrr_movers_are_the_largest_changes_each_way_classified(engine: Engine) -> None:
    old = NOW - timedelta(days=100)
    periods(
        engine,
        [
            ("acme", 10_000, old, NOW - timedelta(days=3)),  # $100 → $400: expansion
            ("acme", 40_000, NOW - timedelta(days=3), None),
            ("globex", 50_000, old, NOW - timedelta(days=2)),  # churned: −$500
            ("initech", 20_000, NOW - timedelta(days=1), None),  # new: +$200
            ("hooli", 30_000, old, NOW - timedelta(days=30)),  # back after a gap: +$100
            ("hooli", 10_000, NOW - timedelta(days=4), None),
            ("umbrella", 5_000, old, None),  # unchanged: not a mover
        ],
    )
    with engine.connect() as conn:
        movers = mrr_movers(conn, start=WEEK_AGO, end=NOW, currency="USD", limit=10)
    assert [(m.customer_id, m.kind, m.change) for m in movers] == [
        ("globex", "churn", -500.0),
        ("acme", "expansion", 300.0),
        ("initech", "new", 200.0),
        ("hooli", "reactivation", 100.0),
    ]
    assert movers[0].name == "Globex Inc"
    with engine.connect() as conn:
        assert len(mrr_movers(conn, start=WEEK_AGO, end=NOW, currency="USD", limit=2)) == 2


def test_movers_and_comments_appear_only_where_that_data_may_be_shown(engine: Engine) -> None:
    old = NOW - timedelta(days=100)
    periods(
        engine,
        [
            ("acme", 10_000, old, NOW - timedelta(days=3)),
            ("acme", 40_000, NOW - timedelta(days=3), None),
        ],
    )
    with engine.begin() as conn:
        conn.execute(
            insert(SurveyResponse).values(
                id="r1",
                source="demo",
                kind="nps",
                score=3,
                scale_max=10,
                comment="Slow replies lately.",
                responded_at=NOW - timedelta(days=1),
                updated_at=NOW,
            )
        )
    mark_synced(engine, NOW)
    finance = service(engine)
    reply = build_digest(finance, digest(kpis=["mrr", "nps"]), now=NOW)
    text = reply.text or ""
    assert "Top MRR movers:" in text and "Acme Inc: +$300" in text and "expansion" in text
    assert "“Slow replies lately.” — NPS 3" in text
    support = service(engine, permissions={"default": {"allow": ["*"], "deny": ["revenue"]}})
    reply = build_digest(support, digest(kpis=["mrr", "nps"]), now=NOW)
    assert "MRR" not in (reply.text or "") and "MRR" not in [f.label for f in reply.fields]
    assert "Slow replies" in (reply.text or "")
    quiet = build_digest(finance, digest(kpis=["tickets"]), now=NOW)
    assert "Top MRR movers" not in (quiet.text or "") and "Slow" not in (quiet.text or "")
