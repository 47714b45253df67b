"""Delighted: NPS, CSAT and CES survey responses.

One stream, ``survey_responses``: ``GET /v1/survey_responses.json`` with ``per_page=100``,
``updated_since`` and ``order=asc:updated_at``, ``expand[]=person``, HTTP basic auth with
the API key as user name. Base URL ``https://api.delighted.com`` or ``DELIGHTED_BASE_URL``.

Paging is by key, not by page number: each request asks for responses updated since the
newest one of the previous page (inclusive, so ties are read again, harmlessly), and only
steps ``page`` forward while a whole page shares one ``updated_at``. Numbered pages over a
fixed filter would shift when a response is updated mid-sync and skip one for good.

Kinds by survey type (KPIS.md never mixes scales): ``nps`` (0–10) → nps, ``csat`` (1–5) →
csat, ``ces7`` (1–7, CES 2.0) → ces. Delighted's 1–5 ``ces`` is refused (counted and
logged as invalid); other survey types (eNPS, PMF, smileys, thumbs, 5-star) are not KPIs
here and are left out. ``customer_id`` comes from the person property named by
``customer_property`` (default ``customer_id``) when the response carries it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from integrations.base import MapResult, Page, RawRecord, Row, Stream
from integrations.errors import InvalidRecord
from integrations.http import ApiClient, Hints, Monotonic, RetryPolicy, Sleep
from integrations.mapping import epoch, setting
from metrics.schema import SurveyResponse

PATH = "/v1/survey_responses.json"
# survey type → (kind, lowest score, scale_max)
KINDS = {"nps": ("nps", 0, 10), "csat": ("csat", 1, 5), "ces7": ("ces", 1, 7)}
HINTS = Hints(
    unauthorized="Delighted did not accept DELIGHTED_API_KEY: copy the private API key from "
    "Delighted's Settings → API",
    forbidden="DELIGHTED_API_KEY may not read survey responses",
    not_found="Delighted has no such endpoint: if DELIGHTED_BASE_URL is set, check it",
    unreachable="could not connect to Delighted: check DELIGHTED_BASE_URL if set, and the network",
)


class DelightedConnector:
    name: ClassVar[str] = "delighted"
    streams: ClassVar[tuple[Stream, ...]] = (
        Stream(
            "survey_responses",
            SurveyResponse,
            required=("id", "survey_type", "score", "created_at", "updated_at"),
        ),
    )

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        per_page: int = 100,
        customer_property: str = "customer_id",
        policy: RetryPolicy = RetryPolicy(),
        sleep: Sleep | None = None,
        monotonic: Monotonic | None = None,
        clock: Any = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.client = ApiClient(
            base_url or "https://api.delighted.com",
            auth=httpx.BasicAuth(api_key, ""),
            policy=policy,
            wall_clock=clock or (lambda: datetime.now(UTC)),
            transport=transport,
            sleep=sleep,
            monotonic=monotonic,
            hints=HINTS,
        )
        self.per_page = min(max(per_page, 1), 100)
        self.customer_property = customer_property

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> DelightedConnector:
        creds = settings.sources["delighted"]
        return cls(
            api_key=setting(creds.values, "DELIGHTED_API_KEY"), base_url=creds.base_url, **kwargs
        )

    def close(self) -> None:
        self.client.close()

    def pages(
        self, stream: Stream, *, since: datetime | None, resume: str | None
    ) -> Iterator[Page]:
        if resume:
            token = json.loads(resume)
        else:
            token = {"since": int(since.timestamp()) if since else 0, "page": 1}
        while True:
            params = [
                ("per_page", self.per_page),
                ("page", token["page"]),
                ("updated_since", token["since"]),
                ("order", "asc:updated_at"),
                ("expand[]", "person"),
            ]
            records: list[dict[str, Any]] = self.client.get_json(PATH, params, expect=list)
            if len(records) < self.per_page:
                yield Page(records=records, resume=None)
                return
            newest = max(int(r.get("updated_at") or 0) for r in records)
            if newest > token["since"]:
                token = {"since": newest, "page": 1}
            else:  # a whole page of one instant: step through that instant's pages
                token = {"since": token["since"], "page": token["page"] + 1}
            yield Page(records=records, resume=json.dumps(token))

    def map(self, stream: Stream, raw: RawRecord) -> list[MapResult]:
        rid = f"delighted-{raw['id']}"
        survey_type = raw["survey_type"]
        if survey_type == "ces":
            raise InvalidRecord("CES on a 1–5 scale: only CES 2.0 (ces7, 1–7) is kept", rid)
        if survey_type not in KINDS:
            return []
        kind, lowest, scale_max = KINDS[survey_type]
        try:
            score = float(raw["score"])
        except (TypeError, ValueError):
            raise InvalidRecord(f"score {str(raw['score'])[:20]!r} is not a number", rid) from None
        if not lowest <= score <= scale_max:
            raise InvalidRecord(f"{kind} score {score:g} is outside {lowest}–{scale_max}", rid)
        props = raw.get("person_properties") or {}
        customer = props.get(self.customer_property)
        return [
            Row(
                SurveyResponse,
                {
                    "id": rid,
                    "source": self.name,
                    "kind": kind,
                    "score": score,
                    "scale_max": scale_max,
                    "comment": raw.get("comment") or None,
                    "customer_id": None if customer in (None, "") else str(customer),
                    "ticket_id": None,
                    "responded_at": epoch(raw["created_at"]),
                    "updated_at": epoch(raw["updated_at"]),
                },
            )
        ]
