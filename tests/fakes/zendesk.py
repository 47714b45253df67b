"""A fake Zendesk Support API: the incremental cursor ticket export and satisfaction ratings.

Payloads follow the real shapes (tickets as in ``GET /api/v2/tickets.json``, metric sets as
``ticket_metric``, the export's ``after_url``/``after_cursor``/``end_of_stream``). The
export orders tickets by (``updated_at``, id) and its cursor is a position in that order,
so tickets changed while a client pages move behind the cursor and come again, as on
Zendesk. Basic auth ``{email}/token:{token}`` is checked on every request.
"""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.server import FakeApi, Query, Request, Response, first

EXPORT = "/api/v2/incremental/tickets/cursor.json"
RATINGS = "/api/v2/satisfaction_ratings.json"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def zulu(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ticket_payload(
    ticket_id: int,
    *,
    updated_at: datetime,
    created_at: datetime | None = None,
    status: str = "open",
    channel: str = "email",
    priority: str | None = "normal",
    group_id: int | None = 360004077472,
    organization_id: int | None = 360363695492,
    assignee_id: int | None = 377922500012,
    subject: str | None = None,
) -> dict[str, Any]:
    created_at = created_at or updated_at - timedelta(hours=3)
    return {
        "url": f"https://example.zendesk.com/api/v2/tickets/{ticket_id}.json",
        "id": ticket_id,
        "external_id": None,
        "via": {"channel": channel, "source": {"from": {}, "to": {}, "rel": None}},
        "created_at": zulu(created_at),
        "updated_at": zulu(updated_at),
        "type": None,
        "subject": subject or f"Ticket {ticket_id}",
        "raw_subject": subject or f"Ticket {ticket_id}",
        "description": "Something is broken",
        "priority": priority,
        "status": status,
        "recipient": "support@example.zendesk.com",
        "requester_id": 377922500099,
        "submitter_id": 377922500099,
        "assignee_id": assignee_id,
        "organization_id": organization_id,
        "group_id": group_id,
        "collaborator_ids": [],
        "follower_ids": [],
        "email_cc_ids": [],
        "forum_topic_id": None,
        "problem_id": None,
        "has_incidents": False,
        "is_public": True,
        "due_at": None,
        "tags": [],
        "custom_fields": [],
        "satisfaction_rating": None,
        "sharing_agreement_ids": [],
        "fields": [],
        "followup_ids": [],
        "ticket_form_id": 360000389592,
        "brand_id": 360002256672,
        "allow_channelback": False,
        "allow_attachments": True,
    }


def metric_payload(
    ticket_id: int,
    *,
    created_at: datetime,
    updated_at: datetime,
    reply_minutes: tuple[int, int] | None = (42, 30),
    resolution_minutes: tuple[int, int] | None = None,
    solved_at: datetime | None = None,
    replies: int = 1,
    reopens: int = 0,
) -> dict[str, Any]:
    def minutes(pair: tuple[int, int] | None) -> dict[str, Any]:
        if pair is None:
            return {"calendar": None, "business": None}
        return {"calendar": pair[0], "business": pair[1]}

    return {
        "id": ticket_id + 900_000,
        "ticket_id": ticket_id,
        "created_at": zulu(created_at),
        "updated_at": zulu(updated_at),
        "group_stations": 1,
        "assignee_stations": 1,
        "reopens": reopens,
        "replies": replies,
        "assignee_updated_at": None,
        "requester_updated_at": zulu(created_at),
        "status_updated_at": zulu(updated_at),
        "initially_assigned_at": zulu(created_at),
        "assigned_at": zulu(created_at),
        "solved_at": zulu(solved_at) if solved_at else None,
        "latest_comment_added_at": zulu(updated_at),
        "reply_time_in_minutes": minutes(reply_minutes),
        "reply_time_in_seconds": {"calendar": reply_minutes[0] * 60 if reply_minutes else None},
        "first_resolution_time_in_minutes": minutes(resolution_minutes),
        "full_resolution_time_in_minutes": minutes(resolution_minutes),
        "agent_wait_time_in_minutes": {"calendar": 0, "business": 0},
        "requester_wait_time_in_minutes": {"calendar": 0, "business": 0},
        "on_hold_time_in_minutes": {"calendar": 0, "business": 0},
    }


def rating_payload(
    rating_id: int, *, ticket_id: int, score: str, updated_at: datetime, comment: str | None = None
) -> dict[str, Any]:
    return {
        "url": f"https://example.zendesk.com/api/v2/satisfaction_ratings/{rating_id}.json",
        "id": rating_id,
        "assignee_id": 377922500012,
        "group_id": 360004077472,
        "requester_id": 377922500099,
        "ticket_id": ticket_id,
        "score": score,
        "comment": comment,
        "reason": None,
        "reason_code": None,
        "created_at": zulu(updated_at - timedelta(hours=2)),
        "updated_at": zulu(updated_at),
    }


class FakeZendesk(FakeApi):
    def __init__(self, *, email: str, token: str, page_size: int = 1000) -> None:
        super().__init__()
        self.auth = "Basic " + base64.b64encode(f"{email}/token:{token}".encode()).decode()
        self.page_size = page_size
        self.tickets: dict[int, dict[str, Any]] = {}
        self.metrics: dict[int, dict[str, Any]] = {}
        self.ratings: dict[int, dict[str, Any]] = {}
        self.groups = {360004077472: "Support", 360004077473: "Billing"}

    # -- the source's data ---------------------------------------------------------------

    def put_ticket(self, ticket_id: int, *, updated_at: datetime, **fields: Any) -> None:
        status = fields.get("status", "open")
        solved = status in ("solved", "closed")
        metric_fields = {
            k: fields.pop(k)
            for k in ("reply_minutes", "resolution_minutes", "replies", "reopens")
            if k in fields
        }
        ticket = ticket_payload(ticket_id, updated_at=updated_at, **fields)
        created = datetime.fromisoformat(ticket["created_at"].replace("Z", "+00:00"))
        if solved:
            metric_fields.setdefault("resolution_minutes", (180, 120))
        metric = metric_payload(
            ticket_id,
            created_at=created,
            updated_at=updated_at,
            solved_at=updated_at if solved else None,
            **metric_fields,
        )
        with self._lock:
            self.tickets[ticket_id] = ticket
            self.metrics[ticket_id] = metric

    def put_rating(self, rating_id: int, **fields: Any) -> None:
        with self._lock:
            self.ratings[rating_id] = rating_payload(rating_id, **fields)

    # -- routes --------------------------------------------------------------------------

    def route(self, request: Request) -> Response:
        if request.headers.get("authorization") != self.auth:
            return Response(401, {"error": "Couldn't authenticate you"})
        if request.path == EXPORT:
            return self._export(request.query)
        if request.path == RATINGS:
            return self._ratings(request.query)
        return Response(404, {"error": "InvalidEndpoint"})

    def _export(self, query: Query) -> Response:
        include = first(query, "include", "") or ""
        size = int(first(query, "per_page", str(self.page_size)) or self.page_size)
        with self._lock:
            ordered = sorted(self.tickets.values(), key=_position)
            cursor = first(query, "cursor")
            if cursor is not None:
                after = _decode(cursor)
                rest = [t for t in ordered if _position(t) > after]
            else:
                start = int(first(query, "start_time", "0") or 0)
                rest = [t for t in ordered if _position(t)[0] >= start]
            page = [copy.deepcopy(t) for t in rest[:size]]
            metrics = [copy.deepcopy(self.metrics[t["id"]]) for t in page]
        end = len(rest) <= size
        if page:
            new_cursor = _encode(_position(page[-1]))
        else:
            new_cursor = cursor or _encode((int(first(query, "start_time", "0") or 0), -1))
        base = f"{self.url}{EXPORT}?cursor={new_cursor}&include={include}&per_page={size}"
        body: dict[str, Any] = {
            "tickets": page,
            "after_url": base,
            "after_cursor": new_cursor,
            "before_url": None,
            "before_cursor": None,
            "end_of_stream": end,
        }
        if "metric_sets" in include:
            body["metric_sets"] = metrics
        if "groups" in include:
            ids = {t["group_id"] for t in page if t.get("group_id") in self.groups}
            body["groups"] = [{"id": i, "name": self.groups[i]} for i in sorted(ids)]
        return Response(200, body)

    def _ratings(self, query: Query) -> Response:
        size = int(first(query, "page[size]", "100") or 100)
        score = first(query, "score")
        start = int(first(query, "start_time", "0") or 0)
        after = first(query, "page[after]")
        with self._lock:
            rows = sorted(self.ratings.values(), key=_position)
        rows = [r for r in rows if _position(r)[0] >= start]
        if score == "received":
            rows = [r for r in rows if r["score"] not in ("offered", "unoffered")]
        if after:
            pos = _decode(after)
            rows = [r for r in rows if _position(r) > pos]
        page = [copy.deepcopy(r) for r in rows[:size]]
        more = len(rows) > size
        cursor = _encode(_position(page[-1])) if page else None
        next_url = None
        if more:
            next_url = (
                f"{self.url}{RATINGS}?page[after]={cursor}&page[size]={size}&start_time={start}"
                + (f"&score={score}" if score else "")
            )
        return Response(
            200,
            {
                "satisfaction_ratings": page,
                "meta": {"has_more": more, "after_cursor": cursor, "before_cursor": None},
                "links": {"next": next_url, "prev": None},
            },
        )


def _position(record: dict[str, Any]) -> tuple[int, int]:
    stamp = datetime.fromisoformat(record["updated_at"].replace("Z", "+00:00"))
    return int(stamp.timestamp()), int(record["id"])


def _encode(position: tuple[int, int]) -> str:
    return base64.urlsafe_b64encode(f"{position[0]}:{position[1]}".encode()).decode()


def _decode(cursor: str) -> tuple[int, int]:
    a, b = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
    return int(a), int(b)
