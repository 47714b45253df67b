"""KpiService's wording of errors, and how it evaluates an answer with its chart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bot.commands
from bot.commands import KpiService, error_reply
from bot.db import make_engine
from bot.settings import load_settings
from metrics import QueryError, Result, parse_query
from tests.conftest import DEMO_NOW


@pytest.fixture
def service(warehouse: Path) -> Iterator[KpiService]:
    engine = make_engine(f"sqlite:///{warehouse}")
    yield KpiService(engine, load_settings({}), clock=lambda: DEMO_NOW)
    engine.dispose()


def counting_evaluate(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the text of every query KpiService evaluates."""
    evaluated: list[str] = []
    real = bot.commands.evaluate

    def evaluate(conn: Any, query: Any, ctx: Any, *, now: Any) -> Result:
        evaluated.append(str(query))
        return real(conn, query, ctx, now=now)

    monkeypatch.setattr(bot.commands, "evaluate", evaluate)
    return evaluated


@pytest.mark.parametrize("text", ["nps last 30d", "mrr", "frt p90 last 12w", "csat this month"])
def test_a_figure_and_its_chart_over_time_come_from_one_evaluation(
    service: KpiService, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    plain = service.ask(text, compare=True, chart=False)
    evaluated = counting_evaluate(monkeypatch)

    charted = service.ask(text, compare=True, chart=True)

    assert len(evaluated) == 1 and " by " in evaluated[0]  # the grained query, only
    assert charted.reply.chart is not None
    assert charted.result == plain.result  # the same figure, comparison and detail
    assert charted.reply.headline == plain.reply.headline


def test_a_query_with_its_own_series_is_evaluated_once_as_asked(
    service: KpiService, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluated = counting_evaluate(monkeypatch)

    answer = service.ask("tickets last 7d by channel", compare=True)

    assert evaluated == [str(parse_query("tickets last 7d by channel vs previous"))]
    assert answer.result.series and answer.reply.chart is not None


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ("npss last 30d", "nps"),  # the suggestion is part of the misspelt word
        ("nsp last 30d", "nps"),
        ("nps lst 30d", "last"),
    ],
)
def test_a_misspelt_query_is_answered_with_what_was_probably_meant(
    text: str, suggestion: str
) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(text)

    reply = error_reply(caught.value)

    assert reply.ephemeral and reply.kind == "error"
    assert f"Did you mean “{suggestion}”?" in (reply.text or "")
    assert "/kpi help" in (reply.text or "")


def test_a_suggestion_already_in_the_message_is_not_repeated() -> None:
    reply = error_reply(QueryError("Use “last 30d”, not “30d last”.", "last 30d"))

    assert reply.text is not None and "Did you mean" not in reply.text


def test_an_answer_says_which_customers_another_currency_left_out() -> None:
    from datetime import UTC, datetime

    from bot.commands import result_reply
    from metrics import get_kpi

    result = Result(
        kpi="mrr",
        title="MRR",
        unit="USD",
        statistic=None,
        start=datetime(2026, 11, 1, tzinfo=UTC),
        end=datetime(2026, 11, 24, tzinfo=UTC),
        timezone="UTC",
        value=1200.0,
        n=4,
        higher_is_better=True,
        extra={"excluded_currencies": {"EUR": 3}},
    )
    reply = result_reply(result, get_kpi("mrr"), [], None, now=datetime(2026, 11, 24, tzinfo=UTC))
    assert any("3 in EUR" in line and "reporting currency" in line for line in reply.context)
