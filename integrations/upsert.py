"""Writing mapped rows: upsert by primary key, never letting an older version win.

:func:`write_rows` reads the stored versions of a page's keys first (one ``SELECT … IN``
per 500 keys) and sorts each incoming row into one of four bins:

* **inserted** — no stored row;
* **updated** — the content changed and the incoming ``updated_at`` is not older;
* **unchanged** — every incoming column equals the stored one (``updated_at`` aside):
  nothing is written, so a re-run writes nothing at all;
* **stale** — the incoming ``updated_at`` is older than the stored one: a late, older
  version, dropped.

The write itself is still a guarded ``INSERT … ON CONFLICT DO UPDATE … WHERE
stored.updated_at <= excluded.updated_at``, so two writers racing on one key cannot let an
older version win either; the bins are for reporting and for skipping needless writes.

"Unchanged" keeps the stored ``updated_at`` when only the source's modification time moved
(a field we do not map changed): the stored value is then the time of the newest version
whose *content* we hold, which is what the older-version guard needs.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, String, Table, delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from integrations.base import Deletion, ReplaceChildren
from metrics.schema import Base

CHUNK = 500  # keys per IN (...): well under SQLite's and PostgreSQL's parameter limits


@dataclass
class WriteCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0

    @property
    def written(self) -> int:
        return self.inserted + self.updated

    def add(self, other: WriteCounts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.stale += other.stale


def write_rows(conn: Connection, table: type[Base], rows: Iterable[dict[str, Any]]) -> WriteCounts:
    """Upsert ``rows`` into ``table``; see the module docstring for the rules."""
    tbl: Table = table.__table__  # type: ignore[assignment]
    pk = [c.name for c in tbl.primary_key.columns]
    limits = _string_limits(tbl)
    # Rows within one page may repeat a key: keep the newest so one statement stays valid.
    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        if limits:
            row = _fit(row, limits)
        key = tuple(row[k] for k in pk)
        kept = by_key.get(key)
        if kept is None or _newer_or_equal(row, kept):
            by_key[key] = row
    counts = WriteCounts()
    if not by_key:
        return counts
    stored = _stored(conn, tbl, pk, list(by_key))
    to_write: list[dict[str, Any]] = []
    for key, row in by_key.items():
        old = stored.get(key)
        if old is None:
            counts.inserted += 1
            to_write.append(row)
            continue
        new_at, old_at = row.get("updated_at"), old.get("updated_at")
        if new_at is not None and old_at is not None and new_at < old_at:
            counts.stale += 1
        elif all(same_value(old[c], v) for c, v in row.items() if c != "updated_at" and c in old):
            counts.unchanged += 1
        else:
            counts.updated += 1
            to_write.append(row)
    upsert_rows(conn, tbl, pk, to_write)
    return counts


def upsert_newer(conn: Connection, table: type[Base], rows: Iterable[dict[str, Any]]) -> int:
    """Insert rows, or update existing ones only where the incoming ``updated_at`` is not
    older than the stored one. Returns the number of rows inserted or updated."""
    return write_rows(conn, table, rows).written


def apply_deletions(conn: Connection, deletions: Sequence[Deletion]) -> int:
    """Delete what the source reports deleted; a stored version newer than the deletion
    (a restored record) survives."""
    total = 0
    plain: dict[type[Base], list[str]] = defaultdict(list)
    for d in deletions:
        if d.at is None:
            plain[d.table].append(d.id)
            continue
        tbl: Table = d.table.__table__  # type: ignore[assignment]
        (pk,) = tbl.primary_key.columns
        stmt = delete(tbl).where(pk == d.id)
        if "updated_at" in tbl.c:
            stmt = stmt.where(tbl.c.updated_at <= d.at)
        total += conn.execute(stmt).rowcount or 0
    for table, ids in plain.items():
        tbl = table.__table__  # type: ignore[assignment]
        (pk,) = tbl.primary_key.columns
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            total += conn.execute(delete(tbl).where(pk.in_(chunk))).rowcount or 0
    return total


def replace_children(conn: Connection, replacements: Sequence[ReplaceChildren]) -> int:
    """Delete child rows that are no longer listed under their parent."""
    total = 0
    groups: dict[tuple[type[Base], str], list[ReplaceChildren]] = defaultdict(list)
    for r in replacements:
        groups[(r.table, r.parent_field)].append(r)
    for (table, parent_field), items in groups.items():
        tbl: Table = table.__table__  # type: ignore[assignment]
        (pk,) = tbl.primary_key.columns
        for start in range(0, len(items), 200):
            chunk = items[start : start + 200]
            keep = sorted({i for r in chunk for i in r.keep_ids})
            stmt = delete(tbl).where(tbl.c[parent_field].in_([r.parent_id for r in chunk]))
            if keep:
                stmt = stmt.where(pk.not_in(keep))
            total += conn.execute(stmt).rowcount or 0
    return total


# -- internals ---------------------------------------------------------------------------


def _stored(
    conn: Connection, tbl: Table, pk: list[str], keys: list[tuple[Any, ...]]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        if len(pk) == 1:
            where = tbl.c[pk[0]].in_([k[0] for k in chunk])
        else:
            where = tuple_(*(tbl.c[k] for k in pk)).in_(chunk)
        for row in conn.execute(select(tbl).where(where)).mappings():
            out[tuple(row[k] for k in pk)] = dict(row)
    return out


def upsert_rows(conn: Connection, tbl: Table, pk: list[str], rows: list[dict[str, Any]]) -> None:
    """``INSERT … ON CONFLICT DO UPDATE``, never over a newer stored ``updated_at``."""
    if not rows:
        return
    # One statement per distinct column set (executemany needs uniform parameters).
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(sorted(row))].append(row)
    for columns, group in groups.items():
        ins = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(tbl)
        update_cols = {c: ins.excluded[c] for c in columns if c not in pk}
        if "updated_at" in columns and update_cols:
            stmt = ins.on_conflict_do_update(
                index_elements=pk,
                set_=update_cols,
                where=tbl.c.updated_at <= ins.excluded.updated_at,
            )
        elif update_cols:
            stmt = ins.on_conflict_do_update(index_elements=pk, set_=update_cols)
        else:
            stmt = ins.on_conflict_do_nothing(index_elements=pk)
        conn.execute(stmt, group)


def _newer_or_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    ua, ub = a.get("updated_at"), b.get("updated_at")
    return ua is None or ub is None or ua >= ub


def same_value(a: Any, b: Any) -> bool:
    if a == b:
        return True
    if isinstance(a, float | int) and isinstance(b, float | int):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)
    return False


def _string_limits(tbl: Table) -> dict[str, int]:
    return {
        c.name: c.type.length
        for c in tbl.columns
        if isinstance(c.type, String) and c.type.length and not c.primary_key
    }


def _fit(row: dict[str, Any], limits: dict[str, int]) -> dict[str, Any]:
    """Cut strings to their column's length: PostgreSQL refuses longer ones, SQLite keeps
    them, and the two must agree."""
    for name, length in limits.items():
        value = row.get(name)
        if isinstance(value, str) and len(value) > length:
            row = {**row, name: value[:length]}
    return row
