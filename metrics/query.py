"""The ``/kpi`` language: text in, an immutable :class:`Query` out.

::

    query      := kpi clause*                      nps last 30d
    kpi        := name or alias, words joined     first response time  ==  frt
    clause     := statistic                        median | mean | count | p50 … p99
                | window                           last 24h | last 30d | last 12 weeks
                                                   last 7 days | last month
                                                   this week | today | yesterday
                                                   since 2026-10-01
                                                   between 2026-01-01 and 2026-03-31
                | "by" grain | "by" dimension     by day | by week | by month | by channel
                | "vs" comparison                  vs previous | vs last year
                | "where" k=v ("and" k=v)*         where plan=enterprise and channel=email
                | ("top" | "bottom") N             bottom 10

Clauses come in any order; ``str(query)`` writes them in one canonical order, and
``parse_query(str(q)) == q`` for every accepted query. Keywords and values are read in
lower case; values are ASCII (quote them when they hold spaces: ``where plan="pro plus"``).
Statistics, grains, dimensions and filter keys are checked against the KPI's declaration.
Nothing here builds SQL: values are bound as parameters by the KPI functions.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import cast

from metrics.errors import QueryError, UnknownKPIError, WindowError, did_you_mean
from metrics.registry import BY_NAME, KPI, MAX_NAME_WORDS, get_kpi, is_percentile
from metrics.windows import GRAINS, MAX_BUCKETS, MAX_ROLLING, PERIODS, WindowSpec

MAX_QUERY_LENGTH = 300
MAX_VALUE_LENGTH = 64
MAX_RANKING = 100

# One token: a double-quoted string ("pro plus"), an equals sign, or a run of anything
# else that is neither space, "=" nor a quote (plan, p90, 2026-10-01, 30d).
_TOKEN = re.compile(r'"(?P<quoted>[^"]*)"|(?P<eq>=)|(?P<word>[^\s="]+)|(?P<bad>")')
# A rolling length written as one word: "24h", "30d", "12w", "6m", "2q", "1y", "30days", "6mo".
_COUNT_UNIT = re.compile(r"^(?P<count>\d{1,6})(?P<unit>[a-z]+)$")
# An ISO date: "2026-10-01".
_DATE = re.compile(r"^(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})$")
# A percentile statistic: "p90", "p5", "p05" (read as p5); "p100" is refused later.
_PERCENTILE = re.compile(r"^p(?P<q>\d{1,3})$")
# A value that needs no quotes in the canonical text: "enterprise", "web_form", "eu-west".
_BARE_VALUE = re.compile(r"^[a-z0-9_.:@/+-]+$")
# What a value may hold at all: printable ASCII except the double quote.
_VALUE = re.compile(r"^[ !#-~]+$")

_UNIT_WORDS = {
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
    "w": "w", "wk": "w", "wks": "w", "week": "w", "weeks": "w",
    "m": "m", "mo": "m", "mos": "m", "month": "m", "months": "m",
    "q": "q", "quarter": "q", "quarters": "q",
    "y": "y", "yr": "y", "yrs": "y", "year": "y", "years": "y",
}  # fmt: skip
_PERIOD_WORDS = {p: p for p in PERIODS} | {"wk": "week", "mo": "month", "yr": "year"}
_STATISTIC_WORDS = {"median": "median", "mean": "mean", "avg": "mean", "average": "mean",
                    "count": "count"}  # fmt: skip
_GRAIN_WORDS = {"day": "day", "daily": "day", "week": "week", "weekly": "week",
                "month": "month", "monthly": "month"}  # fmt: skip
_COMPARISONS = {"previous": "previous", "prev": "previous", "prior": "previous",
                "last_year": "last_year", "ly": "last_year", "yoy": "last_year"}  # fmt: skip
KEYWORDS = (
    "last", "past", "this", "today", "yesterday", "since", "between", "and", "by", "vs",
    "where", "top", "bottom", "previous", "year", *PERIODS, *GRAINS, *_STATISTIC_WORDS,
)  # fmt: skip
_GRAIN_DAYS = {"day": 1, "week": 7, "month": 28}


@dataclass(frozen=True)
class Ranking:
    """``top N`` / ``bottom N``: list the N entities (customers) with the highest / lowest value."""

    order: str  # "top" or "bottom"
    count: int

    def __str__(self) -> str:
        return f"{self.order} {self.count}"


@dataclass(frozen=True)
class Query:
    """A parsed ``/kpi`` question. ``statistic`` is None for the KPI's default statistic,
    ``window`` None for the default window (``last 30d``); ``filters`` are sorted by key."""

    kpi: str
    statistic: str | None = None
    window: WindowSpec | None = None
    grain: str | None = None
    dimension: str | None = None
    comparison: str | None = None  # "previous" or "last_year"
    filters: tuple[tuple[str, str], ...] = ()
    ranking: Ranking | None = None

    def __str__(self) -> str:
        parts = [self.kpi.replace("_", " ")]  # as people write it: "mrr movements"
        if self.statistic:
            parts.append(self.statistic)
        if self.ranking:
            parts.append(str(self.ranking))
        if self.window:
            parts.append(str(self.window))
        if self.grain or self.dimension:
            parts.append(f"by {self.grain or self.dimension}")
        if self.comparison:
            parts.append("vs " + ("last year" if self.comparison == "last_year" else "previous"))
        if self.filters:
            parts.append("where " + " and ".join(f"{k}={_quote(v)}" for k, v in self.filters))
        return " ".join(parts)


def _quote(value: str) -> str:
    return value if _BARE_VALUE.match(value) else f'"{value}"'


@dataclass
class _Token:
    text: str
    quoted: bool = False


def parse_query(text: str) -> Query:
    """Parse ``/kpi`` text into a Query; anything else raises :class:`QueryError`."""
    if not isinstance(text, str):
        raise QueryError("A query is text, e.g. “nps last 30d”.")
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(f"That query is longer than {MAX_QUERY_LENGTH} characters.")
    return _Parser(_tokenize(text)).parse()


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    for match in _TOKEN.finditer(text):
        if match.group("bad") is not None:
            raise QueryError("A quoted value is missing its closing quote.")
        if match.group("quoted") is not None:
            tokens.append(_Token(match.group("quoted").lower(), quoted=True))
        else:
            tokens.append(_Token((match.group("eq") or match.group("word")).lower()))
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.kpi: KPI | None = None
        self.fields: dict[str, object] = {}

    # --- token helpers ---------------------------------------------------------------

    def peek(self, offset: int = 0) -> str | None:
        i = self.pos + offset
        if i < len(self.tokens) and not self.tokens[i].quoted:
            return self.tokens[i].text
        return None

    def take(self, what: str, choices: Iterable[str] = ()) -> str:
        """The next token (unquoted), or an error saying ``what`` was expected after it."""
        if self.pos >= len(self.tokens):
            raise QueryError(f"The query ends where {what} should follow.", _first(choices))
        token = self.tokens[self.pos]
        if token.quoted:
            raise QueryError(f"Expected {what}, not a quoted value.", _first(choices))
        self.pos += 1
        return token.text

    def set(self, name: str, value: object, word: str) -> None:
        if name in self.fields:
            raise QueryError(f"The query has more than one {name.replace('_', ' ')} (“{word}”).")
        self.fields[name] = value

    # --- grammar ---------------------------------------------------------------------

    def parse(self) -> Query:
        if not self.tokens:
            raise QueryError("Ask for a KPI, e.g. “nps last 30d” (/kpi list shows them all).")
        kpi = self.kpi = self.parse_kpi()
        while self.pos < len(self.tokens):
            self.parse_clause(kpi)
        return self.finish(kpi)

    def parse_kpi(self) -> KPI:
        # KPI names and aliases may be written as words ("first response time", "mrr
        # movements", "first reply"); the longest that names a KPI wins, so "first response
        # time" is read whole, never as "first response" followed by a stray "time".
        head = self.tokens[:MAX_NAME_WORDS]
        words = list(itertools.takewhile(str, (t.text if not t.quoted else "" for t in head)))
        for size in range(len(words), 0, -1):
            name = "_".join(words[:size]).replace("-", "_")
            if name in BY_NAME:
                self.pos = size
                return BY_NAME[name]
        if self.tokens[0].quoted:
            raise QueryError("A query starts with a KPI name, e.g. “nps last 30d”.")
        # Unknown: a misspelt name of several words ("first responce time") is suggested
        # whole; the words before the first clause keyword are taken as the name.
        phrase = list(itertools.takewhile(lambda w: w not in KEYWORDS, words))
        for size in range(len(phrase), 1, -1):
            name = "_".join(phrase[:size]).replace("-", "_")
            suggestion = did_you_mean(name, [n for n in BY_NAME if "_" in n])
            if suggestion:
                raise UnknownKPIError(
                    f"There is no KPI called “{' '.join(phrase[:size])}”.",
                    suggestion.replace("_", " "),
                )
        return get_kpi(self.tokens[0].text)  # raises UnknownKPIError with a suggestion

    def parse_clause(self, kpi: KPI) -> None:
        word = self.take("a clause")
        if word in ("last", "past"):
            self.set("window", self.parse_last(word), word)
        elif word == "this":
            unit = self.take("a period (week, month, quarter, year)", PERIODS)
            if unit == "day":
                self.set("window", WindowSpec("today"), word)
            elif unit in _PERIOD_WORDS:
                self.set("window", WindowSpec("this", unit=_PERIOD_WORDS[unit]), word)
            else:
                raise self.unknown(unit, [*PERIODS, "day"], "after “this”")
        elif word in ("today", "yesterday"):
            self.set("window", WindowSpec(word), word)
        elif word == "since":
            self.set("window", WindowSpec("since", first=self.parse_date()), word)
        elif word == "between":
            first = self.parse_date()
            self.expect("and", "“and” between the two dates")
            last = self.parse_date()
            if last < first:
                raise QueryError(f"“between {first} and {last}”: the second date is earlier.")
            self.set("window", WindowSpec("between", first=first, last=last), word)
        elif word == "by":
            self.parse_by(kpi)
        elif word in ("vs", "versus", "compared"):
            if word == "compared" and self.peek() in ("to", "with"):
                self.pos += 1
            self.set("comparison", self.parse_comparison(), word)
        elif word == "where":
            self.parse_condition(kpi)
            while self.peek() == "and":
                self.pos += 1
                self.parse_condition(kpi)
        elif word in ("top", "bottom"):
            self.set("ranking", Ranking(word, self.parse_count(word)), word)
        elif word in _STATISTIC_WORDS or _PERCENTILE.match(word):
            self.set("statistic", self.parse_statistic(kpi, word), word)
        elif self.peek() == "=":  # "plan=enterprise" without "where"
            self.pos -= 1
            self.parse_condition(kpi)
        else:
            raise self.unknown(word, (*KEYWORDS, "vs previous", "vs last year"), "")

    def parse_last(self, word: str) -> WindowSpec:
        nxt = self.take(f"a length after “{word}” (24h, 30d, 12 weeks, month)", ["30d"])
        if word == "last" and nxt in _PERIOD_WORDS:
            return WindowSpec("last", unit=_PERIOD_WORDS[nxt])
        if word == "last" and nxt == "day":
            return WindowSpec("yesterday")
        glued = _COUNT_UNIT.match(nxt)
        if glued:
            count, unit_word = glued.group("count"), glued.group("unit")
        elif nxt.isascii() and nxt.isdigit():
            count = nxt
            unit_word = self.take("a unit after the number (h, d, w, m, q, y)", ["d"])
        else:
            raise self.unknown(nxt, ["30d", *PERIODS], f"after “{word}”")
        unit = _UNIT_WORDS.get(unit_word)
        if unit is None:
            raise self.unknown(unit_word, list(_UNIT_WORDS), "as a unit (h, d, w, m, q, y)")
        n = int(count)
        if not 1 <= n <= MAX_ROLLING[unit]:
            raise WindowError(
                f"“last {n}{unit}” is out of range: 1 to {MAX_ROLLING[unit]}{unit} (five years)."
            )
        return WindowSpec("rolling", count=n, unit=unit)

    def parse_date(self) -> date:
        word = self.take("a date like 2026-10-01", ["2026-10-01"])
        match = _DATE.match(word)
        if not match:
            raise QueryError(f"“{word}” is not a date: write it as YYYY-MM-DD, e.g. 2026-10-01.")
        try:
            day = date(int(match["y"]), int(match["m"]), int(match["d"]))
        except ValueError:
            raise QueryError(f"“{word}” is not a day of the calendar.") from None
        if not 1970 <= day.year <= 2999:
            raise QueryError(f"“{word}” is out of range: dates run from 1970 to 2999.")
        return day

    def expect(self, keyword: str, what: str) -> None:
        word = self.take(what, [keyword])
        if word != keyword:
            raise self.unknown(word, [keyword], f"where {what} should be")

    def parse_by(self, kpi: KPI) -> None:
        word = self.take("a grain (day, week, month) or a dimension after “by”", GRAINS)
        if word in _GRAIN_WORDS:
            grain = _GRAIN_WORDS[word]
            if grain not in kpi.grains:
                allowed = ", ".join(kpi.grains) or "none"
                raise QueryError(f"{kpi.name} cannot be drawn by {grain} (grains: {allowed}).")
            self.set("grouping", ("grain", grain), "by " + word)
        elif word in kpi.dimensions:
            self.set("grouping", ("dimension", word), "by " + word)
        else:
            options = [g for g in GRAINS if g in kpi.grains] + list(kpi.dimensions)
            raise self.unknown(word, options, f"for {kpi.name} after “by” ({', '.join(options)})")

    def parse_comparison(self) -> str:
        word = self.take("“previous” or “last year” after “vs”", ["previous"])
        if word == "last":
            self.expect("year", "“year” after “vs last”")
            return "last_year"
        if word in _COMPARISONS:
            return _COMPARISONS[word]
        raise self.unknown(word, ["previous", "last year"], "after “vs”")

    def parse_condition(self, kpi: KPI) -> None:
        key = self.take("a filter like plan=enterprise", ["plan=enterprise"])
        if key not in kpi.filter_keys:
            hint = ", ".join(kpi.filter_keys) or "none"
            raise self.unknown(key, kpi.filter_keys, f"as a filter of {kpi.name} ({hint})")
        self.expect("=", f"“=” after “{key}”")
        if self.pos >= len(self.tokens):
            raise QueryError(f"“{key}=” needs a value, e.g. {key}=enterprise.")
        value = self.tokens[self.pos].text
        self.pos += 1
        if not value or len(value) > MAX_VALUE_LENGTH or not _VALUE.match(value):
            raise QueryError(f"“{key}” needs a value of 1 to {MAX_VALUE_LENGTH} ASCII characters.")
        filters = dict(self.fields.get("filters", {}))  # type: ignore[call-overload]
        if key in filters:
            raise QueryError(f"“{key}” is filtered twice.")
        filters[key] = value
        self.fields["filters"] = filters

    def parse_count(self, word: str) -> int:
        nxt = self.take(f"a number after “{word}”", ["10"])
        if not (nxt.isascii() and nxt.isdigit()) or not 1 <= int(nxt) <= MAX_RANKING:
            raise QueryError(f"“{word}” takes a number from 1 to {MAX_RANKING}, e.g. {word} 10.")
        return int(nxt)

    def parse_statistic(self, kpi: KPI, word: str) -> str:
        match = _PERCENTILE.match(word)
        statistic = f"p{int(match['q'])}" if match else _STATISTIC_WORDS[word]
        if match and not is_percentile(statistic):
            raise QueryError(f"“{word}” is not a percentile: use p1 to p99.")
        if not kpi.allows_statistic(statistic):
            allowed = [s for s in (kpi.default_statistic, *kpi.statistics) if s]
            hint = ", ".join(allowed).replace("pNN", "p1…p99") or "none: it is a single figure"
            raise QueryError(f"{kpi.name} has no statistic “{word}” (statistics: {hint}).")
        return statistic

    def unknown(self, word: str, vocabulary: Iterable[str], where: str) -> QueryError:
        place = f" {where}" if where else ""
        return QueryError(f"I don't understand “{word}”{place}.", did_you_mean(word, vocabulary))

    # --- checks across clauses -------------------------------------------------------

    def finish(self, kpi: KPI) -> Query:
        f = self.fields
        grouping = f.get("grouping", (None, None))
        kind, by = cast(tuple[str | None, str | None], grouping)
        statistic = f.get("statistic")
        if statistic == kpi.default_statistic:
            statistic = None  # the canonical form leaves the default out
        ranking = f.get("ranking")
        if ranking is not None and not kpi.rankable:
            raise QueryError(f"{kpi.name} is not a list: “top/bottom N” works with health.")
        if ranking is not None and kind is not None:
            raise QueryError("A top/bottom list cannot also be split “by …”.")
        window = f.get("window")
        assert window is None or isinstance(window, WindowSpec)
        if kind == "grain":
            days = window.approx_days if window is not None else 30
            if days is not None and days // _GRAIN_DAYS[str(by)] > MAX_BUCKETS:
                raise WindowError(
                    f"“by {by}” over “{window}” draws more than {MAX_BUCKETS} points: "
                    "use a coarser grain or a shorter window."
                )
        filters = f.get("filters", {})
        assert isinstance(filters, dict)
        if kpi.requires and kpi.requires not in filters and by != kpi.requires:
            raise QueryError(
                f"{kpi.name} needs a {kpi.requires}: e.g. “{kpi.example}” "
                f"or “{kpi.name} by {kpi.requires}”."
            )
        return Query(
            kpi=kpi.name,
            statistic=statistic,  # type: ignore[arg-type]
            window=window,
            grain=by if kind == "grain" else None,
            dimension=by if kind == "dimension" else None,
            comparison=f.get("comparison"),  # type: ignore[arg-type]
            filters=tuple(sorted(filters.items())),
            ranking=ranking,  # type: ignore[arg-type]
        )


def _first(choices: Iterable[str]) -> str | None:
    return next(iter(choices), None)
