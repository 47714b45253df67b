"""A fake Delighted API: ``GET /v1/survey_responses.json``.

Responses are JSON arrays in Delighted's shape (epoch timestamps, ``person`` expandable,
``person_properties``), filtered by ``since``/``updated_since`` (inclusive), ordered by
``order`` (``asc``/``desc`` by creation, ``asc:updated_at``/``desc:updated_at``) and paged
by ``page``/``per_page`` (at most 100). Basic auth: the API key as user, empty password.
"""

from __future__ import annotations

import base64
import copy
from datetime import datetime
from typing import Any

from tests.fakes.server import FakeApi, Request, Response, first

PATH = "/v1/survey_responses.json"


def response_payload(
    response_id: int,
    *,
    score: int,
    updated_at: datetime,
    survey_type: str = "nps",
    created_at: datetime | None = None,
    comment: str | None = None,
    customer_id: str | None = "cus_0001",
) -> dict[str, Any]:
    created = int((created_at or updated_at).timestamp())
    return {
        "id": str(response_id),
        "person": str(1000 + response_id),
        "survey_type": survey_type,
        "score": score,
        "comment": comment,
        "permalink": f"https://delighted.com/r/{response_id}",
        "created_at": created,
        "updated_at": int(updated_at.timestamp()),
        "person_properties": {"customer_id": customer_id} if customer_id else {},
        "notes": [],
        "tags": [],
        "additional_answers": [],
    }


class FakeDelighted(FakeApi):
    def __init__(self, *, api_key: str) -> None:
        super().__init__()
        self.auth = "Basic " + base64.b64encode(f"{api_key}:".encode()).decode()
        self.responses: dict[str, dict[str, Any]] = {}

    def put_response(self, response_id: int, **fields: Any) -> None:
        with self._lock:
            self.responses[str(response_id)] = response_payload(response_id, **fields)

    def route(self, request: Request) -> Response:
        if request.headers.get("authorization") != self.auth:
            return Response(401, {"status": 401, "message": "Unauthorized"})
        if request.path != PATH:
            return Response(404, {"status": 404, "message": "Not Found"})
        q = request.query
        per_page = min(int(first(q, "per_page", "20") or 20), 100)
        page = int(first(q, "page", "1") or 1)
        with self._lock:
            rows = list(self.responses.values())
        for name, field in (("since", "created_at"), ("updated_since", "updated_at")):
            if first(q, name) is not None:
                rows = [r for r in rows if r[field] >= int(first(q, name) or 0)]
        order = first(q, "order", "asc") or "asc"
        direction, _, field = order.partition(":")
        key = field or "created_at"
        rows.sort(key=lambda r: (r[key], int(r["id"])), reverse=direction == "desc")
        chunk = rows[(page - 1) * per_page : page * per_page]
        out = []
        for r in chunk:
            r = copy.deepcopy(r)
            if "person" in q.get("expand[]", []):
                r["person"] = {
                    "id": r["person"],
                    "email": f"person{r['person']}@example.com",
                    "name": None,
                    "created_at": r["created_at"],
                }
            out.append(r)
        return Response(200, out)
