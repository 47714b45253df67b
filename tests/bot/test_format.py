"""Figures in words: a change reads the same as the figures printed beside it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot import format as fmt
from bot.replies import Tone
from metrics import Result

START, END = datetime(2026, 10, 25, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC)


def compared(kpi: str, unit: str, value: float, previous: float, *, higher: bool = True) -> Result:
    return Result(
        kpi=kpi,
        title=kpi.upper(),
        unit=unit,
        statistic=None,
        start=START,
        end=END,
        timezone="UTC",
        value=value,
        n=200,
        higher_is_better=higher,
        previous=previous,
        previous_n=210,
        comparison="previous",
    )


def test_an_nps_change_is_the_difference_of_the_whole_scores_shown() -> None:
    result = compared("nps", "score", 21.3, 31.0)  # 9.7 apart, printed as +21 and +31

    assert fmt.comparison(result) == "▼ 10 vs previous period (+31)"
    assert fmt.tone(result) is Tone.BAD


def test_scores_that_print_alike_read_as_unchanged_and_neutral() -> None:
    result = compared("nps", "score", 21.4, 20.6)  # both print as +21

    assert fmt.comparison(result) == "= unchanged vs previous period (+21)"
    assert fmt.tone(result) is Tone.NEUTRAL


def test_a_small_scale_score_keeps_its_decimal() -> None:
    result = compared("ces", "score", 5.74, 5.61)

    assert fmt.comparison(result) == "▲ 0.1 vs previous period (5.6)"


def test_a_negative_nps_has_no_plus_and_a_positive_one_has() -> None:
    result = compared("nps", "score", -16.2, 21.4)

    assert fmt.figure(result, result.value) == "-16"
    assert fmt.comparison(result) == "▼ 37 vs previous period (+21)"


@pytest.mark.parametrize(
    ("amount", "shown"),
    [(199.0, "$199"), (499.5, "$499.50"), (12.345, "$12.35"), (224183.4, "$224,183"), (0, "$0")],
)
def test_money_shows_cents_only_where_there_are_some(amount: float, shown: str) -> None:
    assert fmt.money(amount, "USD") == shown


def test_other_units_keep_their_own_precision() -> None:
    result = compared("csat", "percent", 80.04, 88.61)

    assert fmt.comparison(result) == "▼ 8.6 pts vs previous period (88.6%)"
