"""KpiService's wording of errors, and how it evaluates an answer with its chart."""

from __future__ import annotations

import pytest

from bot.commands import error_reply
from metrics import QueryError, parse_query


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
