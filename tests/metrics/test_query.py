"""The /kpi language: examples, errors with a "did you mean", and properties of the parser."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from metrics import KPIS, Query, QueryError, Ranking, UnknownKPIError, WindowSpec, parse_query
from metrics.query import KEYWORDS
from tests.metrics.helpers import ask

EXAMPLES = [
    "nps last 30d",
    "frt p90 this week by day",
    "csat last 12w by week",
    "tickets yesterday by channel",
    "mrr vs previous",
    "mrr movements this month",
    "nps last quarter where plan=enterprise",
    "backlog since 2026-10-01",
    "churn last 6m by month",
    "health bottom 10",
]


@pytest.mark.parametrize("text", EXAMPLES)
def test_every_example_parses_to_its_own_canonical_text(text: str) -> None:
    query = parse_query(text)
    assert parse_query(str(query)) == query
    assert str(query) == text


@pytest.mark.parametrize("text", EXAMPLES)
def test_every_example_evaluates_on_an_empty_warehouse(engine: Engine, text: str) -> None:
    result = ask(engine, text)
    assert result.value is None


def test_a_query_is_a_frozen_dataclass_with_every_clause() -> None:
    query = parse_query(
        "first response time P95 between 2026-01-01 and 2026-01-31 by week vs last year "
        'where plan="Pro Plus" and channel=email'
    )
    assert query == Query(
        kpi="frt",
        statistic="p95",
        window=WindowSpec("between", first=date(2026, 1, 1), last=date(2026, 1, 31)),
        grain="week",
        comparison="last_year",
        filters=(("channel", "email"), ("plan", "pro plus")),
    )
    assert str(query) == (
        "frt p95 between 2026-01-01 and 2026-01-31 by week vs last year "
        'where channel=email and plan="pro plus"'
    )
    with pytest.raises(AttributeError):
        query.kpi = "nps"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("NPS Last 30 Days", "nps last 30d"),
        ("frt median last 7d", "frt last 7d"),  # the default statistic is left out
        ("frt avg past 2 weeks", "frt mean last 2w"),
        ("tickets last day", "tickets yesterday"),
        ("tickets this day", "tickets today"),
        ("mrr last 6 months by monthly", "mrr last 6m by month"),
        ("nps vs prev last 1y", "nps last 1y vs previous"),
        ("csat plan=smb", "csat where plan=smb"),
        ("frt p05 last 7d", "frt p5 last 7d"),
        ("health top 3", "health top 3"),
        ("mrr-movements this month", "mrr movements this month"),
    ],
)
def test_spellings_are_read_to_one_canonical_form(text: str, canonical: str) -> None:
    assert str(parse_query(text)) == canonical


@pytest.mark.parametrize(
    ("text", "message", "suggestion"),
    [
        ("npx last 30d", "no KPI called “npx”", "nps"),
        ("nps lsat 30d", "“lsat”", "last"),
        ("nps last 30 dyas", "“dyas”", "days"),
        ("tickets yesterday by chanel", "“chanel”", "channel"),
        ("nps where plam=enterprise", "“plam”", "plan"),
        ("nps vs previos", "“previos”", "previous"),
        ("frt p900", "not a percentile", None),
        ("nps p90", "no statistic", None),
        ("nps last 30d last 7d", "more than one window", None),
        ("nps by day by plan", "more than one grouping", None),
        ("nps bottom 10", "not a list", None),
        ("nps since 2026-02-30", "not a day of the calendar", None),
        ("nps since yesterday", "not a date", None),
        ("nps between 2026-02-01 and 2026-01-01", "earlier", None),
        ("nps last 0d", "out of range", None),
        ("nps last 6y", "out of range", None),
        ("tickets last 2y by day", "400 points", None),
        ('nps where plan=""', "1 to 64", None),
        ('nps where plan="', "closing quote", None),
        ('nps where plan="unclosed', "closing quote", None),
        ("nps where plan=zürich", "ASCII", None),
        ("nps where plan=a and plan=b", "filtered twice", None),
        ("", "Ask for a KPI", None),
        ("nps by", "ends where", "day"),
    ],
)
def test_bad_queries_explain_themselves_in_one_line(
    text: str, message: str, suggestion: str | None
) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(text)
    assert message in caught.value.message
    assert caught.value.suggestion == suggestion
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("first response last 7d", "frt last 7d"),
        ("first response time p90 last 7d", "frt p90 last 7d"),
        ("First Reply by day", "frt by day"),
        ("first reply time mean", "frt mean"),
        ("response time p75 last 24h", "frt p75 last 24h"),
        ("resolution time last month", "ttr last month"),
        ("time to resolution p90", "ttr p90"),
        ("ticket volume yesterday by channel", "tickets yesterday by channel"),
        ("customer churn last 6m by month", "churn last 6m by month"),
        ("net promoter score last 30d", "nps last 30d"),
        ("customer lifetime value last 12m", "clv last 12m"),
        ("gross revenue churn last quarter", "gross revenue churn last quarter"),
        ("net new mrr this month", "mrr movements this month"),
        ("first contact resolution by channel", "fcr by channel"),
    ],
)
def test_multi_word_names_and_aliases_are_read_longest_first(text: str, canonical: str) -> None:
    query = parse_query(text)
    assert str(query) == canonical
    assert parse_query(canonical) == query


@pytest.mark.parametrize("kpi", KPIS, ids=lambda k: k.name)
def test_every_name_and_alias_reads_in_words(kpi: object) -> None:
    from metrics import KPI

    assert isinstance(kpi, KPI)
    where = f" where {kpi.requires}=x" if kpi.requires else ""
    for word in (kpi.name, *kpi.aliases):
        for spelling in (word, word.replace("_", " "), word.replace("_", "-")):
            query = parse_query(f"{spelling} last 7d{where}")
            assert query.kpi == kpi.name, spelling
            assert parse_query(str(query)) == query


def test_a_misspelt_multi_word_kpi_gets_a_multi_word_suggestion() -> None:
    with pytest.raises(UnknownKPIError) as caught:
        parse_query("first responce time last 7d")
    assert caught.value.message == "There is no KPI called “first responce time”."
    assert caught.value.suggestion == "first response time"


def test_an_unknown_kpi_is_an_unknown_kpi_error_with_a_suggestion_in_its_text() -> None:
    with pytest.raises(UnknownKPIError) as caught:
        parse_query("csta last 7d")
    assert str(caught.value) == "There is no KPI called “csta”. Did you mean “csat”?"


def test_ranking_is_kept_in_the_query() -> None:
    assert parse_query("health bottom 10").ranking == Ranking("bottom", 10)


# --- properties ---------------------------------------------------------------------------

_NAMES = {*(k.name for k in KPIS), *(a for k in KPIS for a in k.aliases)}
_VOCABULARY = sorted(
    {*_NAMES, *(n.replace("_", " ") for n in _NAMES), *KEYWORDS}
    | {*(w for n in _NAMES for w in n.split("_"))}
    | {"30d", "12w", "6m", "2q", "1y", "7", "days", "2026-10-01", "2026-01-31", "p90", "p5",
       "=", "plan", "channel", "enterprise", '"pro plus"', "10", "vs", "previous", "year",
       "by", "day", "where", "and", "'", '"', "p0", "0", "-1", "9999999", "feature"}
)  # fmt: skip

_token_soup = st.lists(st.sampled_from(_VOCABULARY), max_size=10).map(" ".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=80), _token_soup))
def test_the_parser_raises_only_query_errors_and_accepted_queries_round_trip(text: str) -> None:
    try:
        query = parse_query(text)
    except QueryError as error:
        assert error.message
        return
    assert parse_query(str(query)) == query
    assert str(parse_query(str(query))) == str(query)


# --- windows in hours (alerts: "frt p90 last 24h") ----------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("frt p90 last 24h", "frt p90 last 24h"),
        ("frt p90 last 24 hours", "frt p90 last 24h"),
        ("tickets past 6 hrs", "tickets last 6h"),
        ("nps last 1 hour", "nps last 1h"),
        ("csat last 48H by day", "csat last 48h by day"),
        ("frt last 12hr vs previous", "frt last 12h vs previous"),
        ("nps last 7 days", "nps last 7d"),
    ],
)
def test_hour_windows_and_spelled_units_read_to_one_canonical_form(
    text: str, canonical: str
) -> None:
    query = parse_query(text)
    assert str(query) == canonical
    assert parse_query(canonical) == query


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nps last 0h", "out of range"),
        ("nps last 43921h", "out of range"),
        ("tickets last 9700h by day", "400 points"),
        ("nps last 24 hoirs", "“hoirs”"),
    ],
)
def test_bad_hour_windows_explain_themselves(text: str, message: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(text)
    assert message in caught.value.message


@given(
    hours=st.integers(min_value=1, max_value=43920),
    spelling=st.sampled_from(["{}h", "{} h", "{} hours", "{} hour", "{}hrs", "{} hr"]),
)
def test_every_hour_window_round_trips(hours: int, spelling: str) -> None:
    query = parse_query("frt p90 last " + spelling.format(hours))
    assert str(query) == f"frt p90 last {hours}h"
    assert parse_query(str(query)) == query


def test_the_help_shows_hour_windows() -> None:
    from metrics import help_text

    assert "last 24h" in help_text()
