"""Delighted: survey types to KPI kinds, scales kept apart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from integrations.delighted import DelightedConnector
from integrations.runner import SyncRunner
from metrics.schema import SurveyResponse
from tests.fakes.delighted import FakeDelighted
from tests.fakes.zendesk import T0

KEY = "dl-unit-key-0001"


@pytest.fixture
def delighted() -> Iterator[FakeDelighted]:
    fake = FakeDelighted(api_key=KEY)
    fake.start()
    yield fake
    fake.stop()


def test_each_survey_type_lands_on_its_own_scale(
    delighted: FakeDelighted, sqlite_engine: Engine
) -> None:
    t = T0
    delighted.put_response(1, survey_type="nps", score=9, updated_at=t, comment="great")
    delighted.put_response(2, survey_type="csat", score=4, updated_at=t, customer_id="cus_9")
    delighted.put_response(3, survey_type="ces7", score=6, updated_at=t)
    delighted.put_response(4, survey_type="ces", score=4, updated_at=t)  # 1–5 CES: refused
    delighted.put_response(5, survey_type="enps", score=8, updated_at=t)  # not a KPI here
    delighted.put_response(6, survey_type="nps", score=11, updated_at=t)  # impossible
    connector = DelightedConnector(api_key=KEY, base_url=delighted.url, sleep=lambda s: None)
    (report,) = SyncRunner(sqlite_engine).sync(connector)
    connector.close()
    assert (report.records, report.inserted, report.invalid) == (6, 3, 2)
    with sqlite_engine.connect() as conn:
        rows = conn.execute(
            select(
                SurveyResponse.id,
                SurveyResponse.kind,
                SurveyResponse.score,
                SurveyResponse.scale_max,
                SurveyResponse.customer_id,
                SurveyResponse.comment,
            ).order_by(SurveyResponse.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("delighted-1", "nps", 9.0, 10, "cus_0001", "great"),
        ("delighted-2", "csat", 4.0, 5, "cus_9", None),
        ("delighted-3", "ces", 6.0, 7, "cus_0001", None),
    ]
    assert all(r.headers["authorization"] == delighted.auth for r in delighted.requests)


def test_responses_updated_while_paging_are_not_skipped(
    delighted: FakeDelighted, sqlite_engine: Engine
) -> None:
    for i in range(1, 10):
        delighted.put_response(i, survey_type="nps", score=5, updated_at=T0 + timedelta(minutes=i))
    connector = DelightedConnector(api_key=KEY, base_url=delighted.url, per_page=3)
    pages = connector.pages(connector.streams[0], since=None, resume=None)
    first = next(pages)
    # Response 1, already read, is updated: on numbered pages everything after it would
    # shift down one and response 4 would be skipped.
    delighted.put_response(1, survey_type="nps", score=10, updated_at=T0 + timedelta(hours=1))
    seen = {r["id"] for r in first.records}
    for page in pages:
        seen |= {r["id"] for r in page.records}
    connector.close()
    assert seen == {str(i) for i in range(1, 10)}
