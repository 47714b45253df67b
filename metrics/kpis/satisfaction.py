"""Survey KPIs: NPS, CSAT and CES, counted in SQL over ``survey_responses``.

Each is a handful of counts per bucket (responses, promoters, …), so the database returns
one row per bucket and Python only divides.
"""

from __future__ import annotations

import math

from sqlalchemy import Connection, and_, func, or_

from metrics.kpis.base import (
    Cell,
    Computation,
    Request,
    Source,
    additive,
    count_if,
    grouped,
    within,
)
from metrics.schema import SurveyResponse

SURVEYS = Source(SurveyResponse.__table__, SurveyResponse.customer_id)  # type: ignore[arg-type]
_S = SurveyResponse


def net_promoter_score(conn: Connection, req: Request) -> Computation:
    """100 × (promoters − detractors) ÷ responses, with a 95% margin of error."""
    rows = grouped(
        conn,
        req,
        SURVEYS,
        on=within(_S.responded_at),
        where=[_S.kind == "nps", _S.scale_max == 10],
        columns=[func.count(), count_if(_S.score >= 9), count_if(_S.score <= 6)],
    )
    return additive(req, rows, 3, _nps_cell)


def _nps_cell(sums: tuple[float, ...]) -> Cell:
    n, promoters, detractors = (int(x) for x in sums)
    counts = {
        "promoters": float(promoters),
        "passives": float(n - promoters - detractors),
        "detractors": float(detractors),
    }
    if n == 0:
        return Cell(None, 0, {**counts, "margin_of_error": None})
    p, d = promoters / n, detractors / n
    # Bain's margin of error for a difference of two shares of one sample (KPIS.md).
    margin = 1.96 * 100 * math.sqrt(max(p + d - (p - d) ** 2, 0.0) / n)
    # Integer arithmetic first, so that 2 promoters and 1 detractor of 5 is exactly 20.
    return Cell(100 * (promoters - detractors) / n, n, {**counts, "margin_of_error": margin})


def customer_satisfaction(conn: Connection, req: Request) -> Computation:
    """Satisfied answers ÷ answers × 100: 4–5 of 5, or Zendesk's good of good + bad."""
    five_point = _S.scale_max == 5
    good_bad = _S.scale_max == 1
    satisfied = or_(and_(five_point, _S.score >= 4), and_(good_bad, _S.score >= 1))
    rows = grouped(
        conn,
        req,
        SURVEYS,
        on=within(_S.responded_at),
        where=[_S.kind == "csat", or_(five_point, good_bad)],
        columns=[func.count(), count_if(satisfied)],
    )
    return additive(req, rows, 2, _csat_cell)


def _csat_cell(sums: tuple[float, ...]) -> Cell:
    n, satisfied = (int(x) for x in sums)
    extra = {"satisfied": float(satisfied), "dissatisfied": float(n - satisfied)}
    return Cell(100 * satisfied / n if n else None, n, extra)


def customer_effort_score(conn: Connection, req: Request) -> Computation:
    """Mean of the 1–7 CES 2.0 answers; answers on any other scale are left out."""
    rows = grouped(
        conn,
        req,
        SURVEYS,
        on=within(_S.responded_at),
        where=[_S.kind == "ces", _S.scale_max == 7],
        columns=[func.count(), func.coalesce(func.sum(_S.score), 0)],
    )
    return additive(req, rows, 2, _ces_cell)


def _ces_cell(sums: tuple[float, ...]) -> Cell:
    n, total = int(sums[0]), sums[1]
    return Cell(total / n if n else None, n)
