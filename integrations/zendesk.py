"""Zendesk Support: tickets with their metrics, and CSAT satisfaction ratings.

Streams:

* ``tickets`` — the cursor-based incremental export,
  ``GET /api/v2/incremental/tickets/cursor.json?start_time=…&include=metric_sets,groups``,
  following ``after_url`` until ``end_of_stream``. Each ticket is joined with its
  side-loaded ``metric_set`` (first reply time in calendar and business minutes, full
  resolution time, replies, reopens, latest solve) and its group's name. Deleted tickets
  come through the export with status ``deleted`` and are removed from the warehouse.
  Zendesk allows 10 export requests a minute: requests are paced to that (configurable).
* ``satisfaction_ratings`` — ``GET /api/v2/satisfaction_ratings.json?score=received&
  start_time=…`` with cursor pagination, into ``survey_responses`` as kind ``csat``:
  good = 1, bad = 0, ``scale_max`` 1. Offered-but-unanswered surveys are not responses
  and are left out (KPIS.md: they are not in the denominator).

Authentication: ``{email}/token`` and the API token, HTTP basic. Base URL
``https://{ZENDESK_SUBDOMAIN}.zendesk.com`` or ``ZENDESK_BASE_URL``.

Mapping choices: ``customer_id`` is the ticket's organisation id (as a string);
``assignee`` the agent's name when Zendesk side-loads users, else the agent id; the
resolution fields are only kept while a ticket is solved or closed (a reopened ticket is
unresolved again, whatever its last solve was).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

from integrations.base import Deletion, MapResult, Page, RawRecord, Row, Stream
from integrations.errors import InvalidRecord
from integrations.http import ApiClient, Hints, Monotonic, Pacer, RetryPolicy, Sleep
from integrations.mapping import iso, path_and_query, setting
from metrics.schema import SurveyResponse, Ticket

EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"
RATINGS_PATH = "/api/v2/satisfaction_ratings.json"
RESOLVED = ("solved", "closed")
GOOD = ("good", "good_with_comment", "good_without_comment")
BAD = ("bad", "bad_with_comment", "bad_without_comment")
NOT_ANSWERED = ("offered", "unoffered")
HINTS = Hints(
    unauthorized="Zendesk did not accept the credentials: check ZENDESK_EMAIL (the agent's "
    "email address) and ZENDESK_API_TOKEN (Admin Center → Apps and integrations → Zendesk API)",
    forbidden="the ZENDESK_EMAIL user may not read this: incremental exports and "
    "satisfaction ratings need a Zendesk admin",
    not_found="no Zendesk account answers there: check ZENDESK_SUBDOMAIN (acme for "
    "acme.zendesk.com) or ZENDESK_BASE_URL",
    unreachable="could not connect to Zendesk: check ZENDESK_SUBDOMAIN or ZENDESK_BASE_URL, "
    "and the network",
)


class ZendeskConnector:
    name: ClassVar[str] = "zendesk"
    streams: ClassVar[tuple[Stream, ...]] = (
        Stream("tickets", Ticket, required=("id", "updated_at")),
        # Ratings are created when offered and updated when answered; a longer look-back
        # re-reads the recent ones in case Zendesk filters start_time on creation.
        Stream(
            "satisfaction_ratings",
            SurveyResponse,
            lookback=timedelta(days=3),
            required=("id", "updated_at", "score"),
        ),
    )

    def __init__(
        self,
        *,
        email: str,
        api_token: str,
        subdomain: str | None = None,
        base_url: str | None = None,
        requests_per_minute: float = 10.0,
        page_size: int = 1000,
        include: Sequence[str] = ("metric_sets", "groups"),
        policy: RetryPolicy = RetryPolicy(),
        sleep: Sleep | None = None,
        monotonic: Monotonic | None = None,
        clock: Any = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if base_url is None:
            if not subdomain:
                raise ValueError("give a subdomain or a base URL")
            base_url = f"https://{subdomain}.zendesk.com"
        self.clock = clock or (lambda: datetime.now(UTC))
        self.client = ApiClient(
            base_url,
            auth=httpx.BasicAuth(f"{email}/token", api_token),
            policy=policy,
            wall_clock=self.clock,
            transport=transport,
            sleep=sleep,
            monotonic=monotonic,
            hints=HINTS,
        )
        self.page_size = page_size
        self.include = ",".join(include)
        # Zendesk counts export requests per minute: one request per 60/n seconds.
        self.export_pacer = Pacer(60.0 / requests_per_minute) if requests_per_minute else None
        self._groups: dict[Any, str] = {}
        self._users: dict[Any, str] = {}

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> ZendeskConnector:
        creds = settings.sources["zendesk"]
        tuning = settings.config.sources.zendesk
        kwargs.setdefault("requests_per_minute", tuning.export_requests_per_minute)
        return cls(
            subdomain=setting(creds.values, "ZENDESK_SUBDOMAIN"),
            email=setting(creds.values, "ZENDESK_EMAIL"),
            api_token=setting(creds.values, "ZENDESK_API_TOKEN"),
            base_url=creds.base_url,
            **kwargs,
        )

    def close(self) -> None:
        self.client.close()

    # -- paging --------------------------------------------------------------------------

    def pages(
        self, stream: Stream, *, since: datetime | None, resume: str | None
    ) -> Iterator[Page]:
        if stream.name == "tickets":
            return self._tickets(since, resume)
        return self._ratings(since, resume)

    def _start_time(self, since: datetime | None) -> int:
        # Zendesk refuses a start_time in the last minute (and the future).
        latest = int(self.clock().timestamp()) - 60
        return max(0, min(int(since.timestamp()) if since else 0, latest))

    def _tickets(self, since: datetime | None, resume: str | None) -> Iterator[Page]:
        url: str = resume or EXPORT_PATH
        params: dict[str, Any] | None = None
        if resume is None:
            params = {"start_time": self._start_time(since), "include": self.include}
            if self.page_size != 1000:
                params["per_page"] = self.page_size
        while True:
            data = self.client.get_json(
                url,
                params,
                expect=dict,
                require=("tickets", "end_of_stream"),
                check=_export_check,
                pacer=self.export_pacer,
            )
            tickets: list[dict[str, Any]] = data["tickets"]
            self._side_loads(data)
            metrics = {m.get("ticket_id"): m for m in data.get("metric_sets") or ()}
            for t in tickets:
                t["_metrics"] = metrics.get(t.get("id"))
                t["_group_name"] = self._groups.get(t.get("group_id"))
                t["_assignee_name"] = self._users.get(t.get("assignee_id"))
            end = bool(data["end_of_stream"])
            next_url = None if end else path_and_query(data["after_url"])
            yield Page(records=tickets, resume=next_url)
            if next_url is None:
                return
            url, params = next_url, None

    def _side_loads(self, data: dict[str, Any]) -> None:
        for g in data.get("groups") or ():
            if g.get("id") is not None and g.get("name"):
                self._groups[g["id"]] = g["name"]
        for u in data.get("users") or ():
            if u.get("id") is not None and u.get("name"):
                self._users[u["id"]] = u["name"]

    def _ratings(self, since: datetime | None, resume: str | None) -> Iterator[Page]:
        url: str = resume or RATINGS_PATH
        params: dict[str, Any] | None = None
        if resume is None:
            params = {"score": "received", "page[size]": min(self.page_size, 100)}
            if since is not None:
                params["start_time"] = self._start_time(since)
        while True:
            data = self.client.get_json(
                url, params, expect=dict, require=("satisfaction_ratings",), check=_ratings_check
            )
            meta = data.get("meta") or {}
            more = bool(meta.get("has_more"))
            next_url = path_and_query(data["links"]["next"]) if more else None
            yield Page(records=data["satisfaction_ratings"], resume=next_url)
            if next_url is None:
                return
            url, params = next_url, None

    # -- mapping -------------------------------------------------------------------------

    def map(self, stream: Stream, raw: RawRecord) -> list[MapResult]:
        if stream.name == "tickets":
            return self._map_ticket(raw)
        return self._map_rating(raw)

    def _map_ticket(self, raw: RawRecord) -> list[MapResult]:
        tid = str(raw["id"])
        updated = iso(raw["updated_at"])
        assert updated is not None
        status = raw.get("status")
        if status == "deleted":
            return [Deletion(Ticket, tid, at=updated)]
        created = iso(raw.get("created_at"))
        if created is None or not status:
            raise InvalidRecord("missing created_at or status", tid)
        m: dict[str, Any] = raw.get("_metrics") or {}
        reply = m.get("reply_time_in_minutes") or {}
        reply_seconds = (m.get("reply_time_in_seconds") or {}).get("calendar")
        first_reply_at = None
        if reply_seconds is not None:
            first_reply_at = created + timedelta(seconds=reply_seconds)
        elif reply.get("calendar") is not None:
            first_reply_at = created + timedelta(minutes=reply["calendar"])
        resolved = status in RESOLVED
        full = (m.get("full_resolution_time_in_minutes") or {}) if resolved else {}
        via = raw.get("via") or {}
        assignee = raw.get("_assignee_name") or _str_or_none(raw.get("assignee_id"))
        return [
            Row(
                Ticket,
                {
                    "id": tid,
                    "source": self.name,
                    "customer_id": _str_or_none(raw.get("organization_id")),
                    "subject": raw.get("subject"),
                    "status": status,
                    "channel": via.get("channel"),
                    "group_name": raw.get("_group_name") or _str_or_none(raw.get("group_id")),
                    "priority": raw.get("priority"),
                    "assignee": assignee,
                    "created_at": created,
                    "first_reply_at": first_reply_at,
                    "first_reply_minutes": _number(reply.get("calendar")),
                    "first_reply_business_minutes": _number(reply.get("business")),
                    "solved_at": iso(m.get("solved_at")) if resolved else None,
                    "full_resolution_minutes": _number(full.get("calendar")),
                    "full_resolution_business_minutes": _number(full.get("business")),
                    "replies": int(m.get("replies") or 0),
                    "reopens": int(m.get("reopens") or 0),
                    "updated_at": updated,
                },
            )
        ]

    def _map_rating(self, raw: RawRecord) -> list[MapResult]:
        rid = f"zendesk-{raw['id']}"
        score = raw["score"]
        if score in NOT_ANSWERED:
            return []  # a survey sent, not an answer
        if score in GOOD:
            value = 1.0
        elif score in BAD:
            value = 0.0
        else:
            raise InvalidRecord(f"unknown score {str(score)[:30]!r}", rid)
        updated = iso(raw["updated_at"])
        return [
            Row(
                SurveyResponse,
                {
                    "id": rid,
                    "source": self.name,
                    "kind": "csat",
                    "score": value,
                    "scale_max": 1,
                    "comment": raw.get("comment") or None,
                    "customer_id": None,
                    "ticket_id": _str_or_none(raw.get("ticket_id")),
                    # Created when the survey was offered, updated when answered.
                    "responded_at": updated,
                    "updated_at": updated,
                },
            )
        ]


def _export_check(data: dict[str, Any]) -> str | None:
    if not isinstance(data["tickets"], list):
        return "tickets is not a list"
    if not data["end_of_stream"] and not isinstance(data.get("after_url"), str):
        return "the page has no after_url but the stream has not ended"
    return None


def _ratings_check(data: dict[str, Any]) -> str | None:
    if not isinstance(data["satisfaction_ratings"], list):
        return "satisfaction_ratings is not a list"
    meta, links = data.get("meta") or {}, data.get("links") or {}
    if meta.get("has_more") and not isinstance(links.get("next"), str):
        return "has_more without a next link"
    return None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
