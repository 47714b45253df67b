"""What moved: the stories behind a digest's figures (new detractor comments, …)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from metrics.schema import SurveyResponse


@dataclass(frozen=True)
class Comment:
    score: float
    comment: str
    customer_id: str | None
    responded_at: datetime


def detractor_comments(
    conn: Connection, *, end: datetime, days: int = 7, limit: int = 3
) -> list[Comment]:
    """The latest NPS detractor (0–6) comments in the ``days`` before ``end``."""
    stmt = (
        select(
            SurveyResponse.score,
            SurveyResponse.comment,
            SurveyResponse.customer_id,
            SurveyResponse.responded_at,
        )
        .where(
            SurveyResponse.kind == "nps",
            SurveyResponse.score <= 6,
            SurveyResponse.comment.is_not(None),
            SurveyResponse.comment != "",
            SurveyResponse.responded_at >= end - timedelta(days=days),
            SurveyResponse.responded_at < end,
        )
        .order_by(SurveyResponse.responded_at.desc(), SurveyResponse.id)
        .limit(limit)
    )
    return [Comment(*row) for row in conn.execute(stmt).all()]
