"""Import survey responses and product usage events from CSV files.

For data no connector reaches: an NPS tool without an API, a spreadsheet export, product
events from a warehouse query. Files are UTF-8 (a BOM is fine), comma-, semicolon- or
tab-separated, with a header row. Column names are case-insensitive; unknown columns are
an error, so that a typo never drops data silently.

Survey responses (:func:`import_surveys`):

=============  ========  ===================================================================
column         required  meaning
=============  ========  ===================================================================
kind           yes       ``nps``, ``csat`` or ``ces``
score          yes       a whole number: nps 0–10; csat 1–5 (or 0/1 with ``scale_max`` 1);
                         ces 1–7
responded_at   yes       ISO 8601 (``2026-03-01T14:05:00Z``); without a zone: ``timezone``
scale_max      no        defaults: nps 10, csat 5, ces 7 (CES on any other scale is refused)
id             no        your own id; without it the row's content makes one
customer_id    no        the customer (e.g. a Stripe ``cus_…`` id)
ticket_id      no        the ticket the survey was about
comment        no        free text
updated_at     no        when the answer last changed (default: ``responded_at``)
=============  ========  ===================================================================

Usage events (:func:`import_events`): ``user_id``, ``event``, ``occurred_at`` required;
``account_id``, ``id`` optional.

Re-importing a file is harmless: ids are deterministic (``csv-<your id>``, or
``csv-<hash of the row's content>`` with ``-2``, ``-3``… for identical rows in one file),
and rows are upserted like synced ones. Edit rows that have an ``id`` to correct them;
without an id an edited row is a new row. Every problem is reported with its line number;
by default a file with any error imports nothing (``skip_invalid=True`` imports the rest).
``dry_run=True`` checks and counts against the database, then rolls back.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from integrations.upsert import WriteCounts, write_rows
from metrics.schema import Base, SurveyResponse, UsageEvent

MAX_ERRORS = 100
SCALES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
# What a score of each kind may be, in the words of the error messages.
RULES = {
    "nps": "nps scores are whole numbers from 0 to 10",
    "csat": "csat scores are whole numbers from 1 to 5 (or 0 and 1 with scale_max 1)",
    "ces": "ces scores are whole numbers from 1 to 7",
}


@dataclass(frozen=True)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ImportReport:
    path: str
    what: str  # "survey responses" or "usage events"
    dry_run: bool
    rows: int = 0  # data rows read
    counts: WriteCounts = field(default_factory=WriteCounts)
    errors: list[LineError] = field(default_factory=list)
    written: bool = False  # False when errors stopped the import, or on a dry run

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        c = self.counts
        verb = "would import" if self.dry_run else "imported"
        head = (
            f"{self.path}: {self.rows} {self.what} read, {len(self.errors)} with errors"
            if self.errors
            else f"{self.path}: {self.rows} {self.what} read"
        )
        if not self.written and self.errors and not self.dry_run:
            return f"{head}; nothing imported (fix the lines below, or skip them)"
        return (
            f"{head}; {verb} {c.inserted} new, {c.updated} changed, "
            f"{c.unchanged} unchanged, {c.stale} older than what is stored"
        )


def import_surveys(
    engine: Engine,
    path: str | Path,
    *,
    dry_run: bool = False,
    skip_invalid: bool = False,
    timezone: tzinfo = UTC,
    source: str = "csv",
) -> ImportReport:
    """Import survey responses from a CSV file (columns in the module docstring)."""

    def row(values: dict[str, str], instant: Callable[[str, str], datetime]) -> dict[str, Any]:
        kind = values["kind"].strip().lower()
        if kind not in SCALES:
            raise ValueError(f"kind {values['kind']!r} is not nps, csat or ces")
        lowest, top = SCALES[kind]
        scale = _int(values.get("scale_max") or str(top), "scale_max")
        if kind == "csat" and scale == 1:
            lowest = 0  # Zendesk-style good (1) / bad (0)
        elif scale != top:
            raise ValueError(f"{RULES[kind]}, not on a 1–{scale} scale")
        score = _float(values["score"], "score")
        if not score.is_integer():  # 9.0 is 9 (spreadsheets write that); 9.5 is no answer
            raise ValueError(f"{kind} score {score:g} is not a whole number: {RULES[kind]}")
        if not lowest <= score <= scale:
            raise ValueError(f"{kind} score {score:g} is outside {lowest}–{scale}")
        responded = instant(values["responded_at"], "responded_at")
        updated = instant(values["updated_at"], "updated_at") if values.get("updated_at") else None
        return {
            "source": source,
            "kind": kind,
            "score": score,
            "scale_max": scale,
            "comment": values.get("comment") or None,
            "customer_id": values.get("customer_id") or None,
            "ticket_id": values.get("ticket_id") or None,
            "responded_at": responded,
            "updated_at": updated or responded,
        }

    return _import(
        engine,
        Path(path),
        table=SurveyResponse,
        what="survey responses",
        required=("kind", "score", "responded_at"),
        optional=("id", "scale_max", "customer_id", "ticket_id", "comment", "updated_at"),
        content=(
            "kind",
            "score",
            "scale_max",
            "responded_at",
            "customer_id",
            "ticket_id",
            "comment",
        ),
        make=row,
        dry_run=dry_run,
        skip_invalid=skip_invalid,
        timezone=timezone,
    )


def import_events(
    engine: Engine,
    path: str | Path,
    *,
    dry_run: bool = False,
    skip_invalid: bool = False,
    timezone: tzinfo = UTC,
    source: str = "csv",
) -> ImportReport:
    """Import product usage events from a CSV file (columns in the module docstring)."""

    def row(values: dict[str, str], instant: Callable[[str, str], datetime]) -> dict[str, Any]:
        for name in ("user_id", "event"):
            if not values[name].strip():
                raise ValueError(f"{name} is empty")
        occurred = instant(values["occurred_at"], "occurred_at")
        return {
            "source": source,
            "user_id": values["user_id"].strip(),
            "account_id": (values.get("account_id") or "").strip() or None,
            "event": values["event"].strip(),
            "occurred_at": occurred,
            "updated_at": occurred,
        }

    return _import(
        engine,
        Path(path),
        table=UsageEvent,
        what="usage events",
        required=("user_id", "event", "occurred_at"),
        optional=("id", "account_id"),
        content=("user_id", "event", "occurred_at", "account_id"),
        make=row,
        dry_run=dry_run,
        skip_invalid=skip_invalid,
        timezone=timezone,
    )


# -- shared machinery ------------------------------------------------------------------------


def _import(
    engine: Engine,
    path: Path,
    *,
    table: type[Base],
    what: str,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    content: tuple[str, ...],
    make: Callable[[dict[str, str], Callable[[str, str], datetime]], dict[str, Any]],
    dry_run: bool,
    skip_invalid: bool,
    timezone: tzinfo,
) -> ImportReport:
    report = ImportReport(path=str(path), what=what, dry_run=dry_run)

    def instant(text: str, name: str) -> datetime:
        try:
            value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{name} {text!r} is not an ISO 8601 time") from None
        return value.replace(tzinfo=timezone) if value.tzinfo is None else value

    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        try:
            dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.reader(handle, dialect)
        header = [h.strip().lower() for h in next(reader, [])]
        problems = _header_problems(header, required, optional)
        if problems:
            report.errors.append(LineError(1, problems))
            return report
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue  # blank lines
            report.rows += 1
            try:
                if len(cells) != len(header):
                    raise ValueError(f"{len(cells)} fields, the header has {len(header)}")
                values = dict(zip(header, cells, strict=True))
                missing = [c for c in required if not values[c].strip()]
                if missing:
                    raise ValueError(f"{', '.join(missing)} is empty")
                out = make(values, instant)
                out["id"] = _row_id(values.get("id", ""), out, content, seen)
            except ValueError as exc:
                if len(report.errors) < MAX_ERRORS:
                    report.errors.append(LineError(line, str(exc)))
                continue
            rows.append(out)
    if report.errors and not skip_invalid:
        return report
    with engine.connect() as conn:
        tx = conn.begin()
        for chunk in range(0, len(rows), 1000):
            report.counts.add(write_rows(conn, table, rows[chunk : chunk + 1000]))
        if dry_run:
            tx.rollback()
        else:
            tx.commit()
            report.written = True
    return report


def _header_problems(
    header: list[str], required: tuple[str, ...], optional: tuple[str, ...]
) -> str:
    if not header:
        return "the file is empty: a header row is needed"
    missing = [c for c in required if c not in header]
    unknown = [c for c in header if c not in required + optional]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    parts = []
    if missing:
        parts.append(f"missing column(s) {', '.join(missing)}")
    if unknown:
        parts.append(
            f"unknown column(s) {', '.join(unknown)} (known: {', '.join(required + optional)})"
        )
    if duplicated:
        parts.append(f"repeated column(s) {', '.join(duplicated)}")
    return "; ".join(parts)


def _row_id(given: str, row: dict[str, Any], content: tuple[str, ...], seen: dict[str, int]) -> str:
    given = given.strip()
    if given:
        if len(given) > 60:
            raise ValueError("id is longer than 60 characters")
        base = f"csv-{given}"
    else:
        text = "\x1f".join(
            v.astimezone(UTC).isoformat() if isinstance(v := row.get(c), datetime) else str(v)
            for c in content
        )
        base = "csv-" + hashlib.sha1(text.encode()).hexdigest()[:24]
    seen[base] = seen.get(base, 0) + 1
    if seen[base] > 1:
        if given:
            raise ValueError(f"id {given!r} is used twice in this file")
        return f"{base}-{seen[base]}"
    return base


def _int(text: str, name: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a whole number") from None


def _float(text: str, name: str) -> float:
    try:
        return float(text.strip().replace(",", "."))
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number") from None
