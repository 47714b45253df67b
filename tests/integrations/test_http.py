"""ApiClient: retries, backoff, Retry-After, rate-limit pacing, the retry budget.

These use httpx's ``MockTransport`` seam for exact control of each response; the contract
suite exercises the same client against real HTTP fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from integrations.errors import FatalSyncError, RetriableSyncError
from integrations.http import ApiClient, Hints, Pacer, RetryPolicy
from tests.integrations.harness import FakeTime

NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)


def client(
    responses: list[httpx.Response | Exception] | Callable[[httpx.Request], httpx.Response],
    *,
    policy: RetryPolicy = RetryPolicy(),
    rng: float = 1.0,
    hints: Hints = Hints(),
) -> tuple[ApiClient, FakeTime, list[httpx.Request]]:
    time = FakeTime()
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if callable(responses):
            return responses(request)
        item = responses.pop(0) if len(responses) > 1 else responses[0]
        if isinstance(item, Exception):
            raise item
        return item

    api = ApiClient(
        "https://api.example.com",
        policy=policy,
        sleep=time.sleep,
        monotonic=time.monotonic,
        wall_clock=lambda: NOW,
        rng=lambda: rng,
        transport=httpx.MockTransport(handler),
        hints=hints,
    )
    return api, time, seen


OK = httpx.Response(200, json={"data": [1, 2]})


def test_retry_after_in_seconds_is_waited_out() -> None:
    api, time, seen = client([httpx.Response(429, headers={"Retry-After": "12"}), OK], rng=0.0)
    assert api.get_json("/v1/x") == {"data": [1, 2]}
    assert time.slept == [12.0]
    assert len(seen) == 2


def test_retry_after_as_an_http_date_is_waited_out() -> None:
    later = "Mon, 02 Mar 2026 12:00:30 GMT"  # 30 s after NOW
    api, time, _ = client([httpx.Response(503, headers={"Retry-After": later}), OK], rng=0.0)
    api.get_json("/v1/x")
    assert time.slept == [30.0]


def test_backoff_is_exponential_with_full_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(base=1.0, cap=8.0, max_elapsed=1000, max_attempts=7)
    api, time, _ = client([httpx.Response(500)] * 6 + [OK], policy=policy, rng=1.0)
    api.get_json("/v1/x")
    assert time.slept == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # rng=1: the top of each range
    api, time, _ = client([httpx.Response(500)] * 3 + [OK], policy=policy, rng=0.25)
    api.get_json("/v1/x")
    assert time.slept == [0.25, 0.5, 1.0]


def test_the_retry_budget_bounds_the_time_spent_on_one_request() -> None:
    policy = RetryPolicy(base=1.0, cap=30.0, max_elapsed=100.0, max_attempts=100)
    api, time, seen = client([httpx.Response(503)], policy=policy)
    with pytest.raises(RetriableSyncError, match=r"HTTP 503 \(gave up after \d+ attempts"):
        api.get_json("/v1/x")
    assert time.now <= 100.0
    assert 4 <= len(seen) <= 10


def test_connection_errors_and_garbled_bodies_are_retried() -> None:
    api, _, seen = client(
        [
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("slow"),
            httpx.Response(200, content=b'{"data": [1, 2'),
            httpx.Response(200, content=b"<html>"),
            httpx.Response(200, json={"nodata": 1}),
            OK,
        ]
    )
    assert api.get_json("/v1/x", require=("data",)) == {"data": [1, 2]}
    assert len(seen) == 6
    assert api.retries == 5


def test_a_failed_check_is_retried_like_a_garbled_page() -> None:
    api, _, seen = client([httpx.Response(200, json={"data": "x"}), OK])
    data = api.get_json("/v1/x", check=lambda d: None if isinstance(d["data"], list) else "bad")
    assert data == {"data": [1, 2]} and len(seen) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_fail_at_once(status: int) -> None:
    api, time, seen = client([httpx.Response(status, json={"error": {"type": "card_error"}})])
    with pytest.raises(FatalSyncError, match=f"HTTP {status}"):
        api.get_json("/v1/x")
    assert len(seen) == 1 and time.slept == []


HINTS = Hints(
    unauthorized="check EXAMPLE_API_KEY",
    forbidden="the key needs read access",
    not_found="check EXAMPLE_BASE_URL",
    unreachable="could not connect: check EXAMPLE_BASE_URL",
)


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (401, "check EXAMPLE_API_KEY"),
        (403, "the key needs read access"),
        (404, "check EXAMPLE_BASE_URL"),
        (301, "check EXAMPLE_BASE_URL"),  # a wrong subdomain is often redirected
    ],
)
def test_a_refusal_says_which_setting_to_check(status: int, hint: str) -> None:
    api, _, _ = client([httpx.Response(status, json={"error": "Nope"})], hints=HINTS)
    with pytest.raises(FatalSyncError, match=f"HTTP {status}.* — {hint}$") as info:
        api.get_json("/v1/x")
    assert info.value.status == status


def test_a_source_never_reached_gives_up_soon_and_says_what_to_check() -> None:
    api, time, _ = client([httpx.ConnectError("refused")], hints=HINTS)
    with pytest.raises(RetriableSyncError) as info:
        api.get_json("/v1/x")
    assert time.now <= RetryPolicy().unreachable_budget  # not the 5 minutes of max_elapsed
    message = str(info.value)
    assert "ConnectError (api.example.com)" in message
    assert message.endswith("— could not connect: check EXAMPLE_BASE_URL")


def test_a_source_that_answered_before_gets_the_whole_budget_to_come_back() -> None:
    answers: list[httpx.Response | Exception] = [OK] + [httpx.ConnectError("down")] * 30
    api, time, _ = client(answers, policy=RetryPolicy(max_attempts=30))
    api.get_json("/v1/x")
    with pytest.raises(RetriableSyncError, match="gave up"):
        api.get_json("/v1/x")
    assert time.now > RetryPolicy().unreachable_budget


def test_error_messages_name_the_path_but_never_the_query() -> None:
    api, _, _ = client([httpx.Response(401)])
    with pytest.raises(FatalSyncError) as info:
        api.get_json("/v1/x?api_key=sekrit-value", {"token": "sekrit-too"})
    assert "/v1/x" in str(info.value)
    assert "sekrit" not in str(info.value)


def test_low_remaining_rate_limit_spreads_the_rest_over_the_window() -> None:
    headers = {"X-Rate-Limit": "100", "X-Rate-Limit-Remaining": "5"}
    api, time, _ = client([httpx.Response(200, json={}, headers=headers)])
    api.get_json("/x")
    assert time.slept == []
    api.get_json("/x")
    assert time.slept == [pytest.approx(60 / 6)]  # 5 left in a 60 s window


def test_an_exhausted_rate_limit_waits_for_the_reset() -> None:
    headers = {"ratelimit-limit": "700", "ratelimit-remaining": "0", "ratelimit-reset": "30"}
    api, time, _ = client([httpx.Response(200, json={}, headers=headers)])
    api.get_json("/x")
    api.get_json("/x")
    assert time.slept == [30.0]


def test_plenty_of_rate_limit_left_costs_nothing() -> None:
    headers = {"X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "600"}
    api, time, _ = client([httpx.Response(200, json={}, headers=headers)])
    for _ in range(5):
        api.get_json("/x")
    assert time.slept == []


def test_a_pacer_spaces_requests_a_little_wider_than_the_limit() -> None:
    api, time, _ = client([OK])
    pacer = Pacer(6.0)
    for _ in range(3):
        api.get_json("/x", pacer=pacer)
    assert time.slept == pytest.approx([6.06, 6.06])  # 1 % margin against arrival jitter


def test_a_late_request_does_not_squeeze_the_next_gap() -> None:
    pacer = Pacer(6.0, margin=0.0)
    assert pacer.wait(0.0) == 0.0
    pacer.sent(0.0)
    assert pacer.wait(1.0) == 5.0
    pacer.sent(6.4)  # the sleep overran: it left late
    assert pacer.wait(6.4) == 6.0  # the next gap is still whole, not 5.6


def test_the_unreachable_budget_is_the_sources_not_each_requests() -> None:
    api, time, seen = client([httpx.ConnectError("refused")], hints=HINTS)
    with pytest.raises(RetriableSyncError):
        api.get_json("/v1/events")
    spent, tried = time.now, len(seen)
    # The next stream of the same source fails at once: no request, no wait.
    with pytest.raises(RetriableSyncError) as info:
        api.get_json("/v1/customers")
    assert (time.now, len(seen)) == (spent, tried)
    message = str(info.value)
    assert message.startswith("GET /v1/customers: ")
    assert "api.example.com" in message
    assert message.endswith("— could not connect: check EXAMPLE_BASE_URL")


def test_the_unreachable_budget_runs_from_the_first_refusal_across_requests() -> None:
    # Few attempts per request: each request gives up early, yet the source as a whole
    # gets no more than its 30 s from the first refused connection.
    policy = RetryPolicy(max_attempts=3)
    api, time, _ = client([httpx.ConnectError("refused")], policy=policy, rng=0.9)
    for _ in range(20):
        with pytest.raises(RetriableSyncError):
            api.get_json("/v1/x")
    assert time.now <= policy.unreachable_budget


def test_a_source_that_goes_down_mid_run_fails_its_later_streams_at_once() -> None:
    # It answered, then stopped accepting connections: the first request retries for the
    # whole 5 minutes; the source's other streams are not given 5 minutes each.
    answers: list[httpx.Response | Exception] = [OK] + [httpx.ConnectError("down")] * 200
    policy = RetryPolicy(max_attempts=100)
    api, time, seen = client(answers, policy=policy, hints=HINTS)
    api.get_json("/v1/events")
    with pytest.raises(RetriableSyncError, match="gave up"):
        api.get_json("/v1/events")
    spent, tried = time.now, len(seen)
    assert spent <= policy.max_elapsed
    with pytest.raises(RetriableSyncError) as info:
        api.get_json("/v1/customers")
    assert (time.now, len(seen)) == (spent, tried)
    assert "api.example.com" in str(info.value) and "EXAMPLE_BASE_URL" in str(info.value)


def test_an_answer_in_between_restarts_the_sources_clock() -> None:
    # Refusals interrupted by answers are a flaky network, not a source that is down.
    answers: list[httpx.Response | Exception] = []
    for _ in range(10):
        answers += [httpx.ConnectError("blip")] * 3 + [OK]
    api, time, _ = client([*answers, OK], rng=0.9)
    for _ in range(10):
        assert api.get_json("/v1/x") == {"data": [1, 2]}
    assert time.now > RetryPolicy().unreachable_budget
