"""What the KPI engine raises, and who is meant to catch it.

::

    MetricsError                 anything the KPI engine raises on purpose
     ├── QueryError              the user's /kpi text is wrong: show .message (+ .suggestion)
     │    ├── UnknownKPIError    no KPI by that name or alias
     │    └── WindowError        a window that cannot be evaluated (future, too long, …)
     ├── ContextError            the configuration behind a MetricContext is wrong (operator)
     └── DataError               the warehouse holds data a KPI cannot read consistently

The bot catches ``QueryError`` and replies with ``str(error)`` (ephemeral, exit status 2 in
``kpibot ask``); ``ContextError`` is raised while settings are loaded, before anything runs;
``DataError`` is a bug in a connector or the data, logged and reported as an error reply.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MetricsError(Exception):
    """Base class of every error the ``metrics`` package raises on purpose."""


class QueryError(MetricsError):
    """The /kpi text cannot be understood or evaluated: the user can fix it.

    ``message`` is one line saying what is wrong; ``suggestion`` is what the user probably
    meant (a KPI name, a keyword or a whole corrected query), or ``None``.
    """

    def __init__(self, message: str, suggestion: str | None = None) -> None:
        self.message = message
        self.suggestion = suggestion
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.suggestion:
            return f"{self.message} Did you mean “{self.suggestion}”?"
        return self.message


class UnknownKPIError(QueryError):
    """No KPI is declared under that name or alias."""


class WindowError(QueryError):
    """A time window that parses but cannot be evaluated (in the future, too long, …)."""


class ContextError(MetricsError):
    """A MetricContext built from invalid configuration (time zone, weights, spend)."""


class DataError(MetricsError):
    """Warehouse data that a KPI cannot read consistently (e.g. mixed currencies)."""


def did_you_mean(word: str, vocabulary: Iterable[str]) -> str | None:
    """The vocabulary word ``word`` most probably misspells, if any is close enough."""
    matches = difflib.get_close_matches(word, list(vocabulary), n=1, cutoff=0.6)
    return matches[0] if matches else None
