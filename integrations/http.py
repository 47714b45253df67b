"""The one HTTP client every connector uses: pooled, timed out, retried, paced.

:class:`ApiClient` wraps one :class:`httpx.Client` (connection pooling and keep-alive per
source) and turns every failure into the sync error tree of ``integrations.errors``:

* 429, 5xx, connection errors, timeouts, and bodies that are not the JSON we expected
  (garbage, truncated, a JSON value without the keys the caller needs) are retried with
  exponential backoff and full jitter, honouring ``Retry-After`` (seconds or an HTTP date);
* each request has a bounded retry budget (``RetryPolicy.max_elapsed``, measured on the
  injected clock): once the next wait would overrun it, :class:`RetriableSyncError` is
  raised and the runner records the stream as failed;
* other 4xx (401, 403, 404, 422…) raise :class:`FatalSyncError` at once, with the
  connector's :class:`Hints` saying which setting to check (``ZENDESK_API_TOKEN``…);
* a source that cannot be connected to at all, and has not answered once in this run (a
  mistyped base URL), gets a shorter budget, ``RetryPolicy.unreachable_budget``: the sync
  should say "check ZENDESK_BASE_URL" within seconds, not after five minutes a stream.
  That budget belongs to the source (this client), not to one request or stream: it runs
  from the first refused connection, and once it is spent every later request — the
  source's remaining streams — fails at once with the same error. A source that answered
  and then stops accepting connections is treated alike with the longer ``max_elapsed``
  (an answer in between restarts the clock);
* when rate-limit headers say little is left (``X-Rate-Limit-Remaining``,
  ``ratelimit-remaining``, ``X-RateLimit-Remaining``…), requests slow down so that the
  remainder is spread over the window instead of running into 429s.

Why hand-written rather than tenacity: the wait depends on the response (``Retry-After``,
rate-limit headers), the time budget must run on an injected clock so that tests never
sleep, and the whole policy is forty lines that read top to bottom. tenacity would need
custom wait, stop and sleep callbacks for each of those, which hides the same logic.

Nothing here logs a header, a body or credentials: log lines carry the method, the path
and the status only.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from integrations.errors import FatalSyncError, RetriableSyncError

log = logging.getLogger(__name__)

Sleep = Callable[[float], None]
Monotonic = Callable[[], float]
WallClock = Callable[[], datetime]

# Header names, lower-case, as the sources spell them (httpx headers are case-insensitive).
REMAINING_HEADERS = ("x-rate-limit-remaining", "ratelimit-remaining", "x-ratelimit-remaining")
LIMIT_HEADERS = ("x-rate-limit", "ratelimit-limit", "x-ratelimit-limit")
RESET_HEADERS = ("ratelimit-reset", "x-ratelimit-reset", "x-rate-limit-reset")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one request before its stream fails."""

    base: float = 1.0  # first backoff cap, seconds; doubles per attempt
    cap: float = 60.0  # largest backoff between attempts
    max_elapsed: float = 300.0  # total time budget for one request, waits included
    max_attempts: int = 12
    # Budget while the source has never answered in this run and refuses connections (a
    # wrong host or base URL, or the network is down): the next scheduled sync tries again.
    unreachable_budget: float = 30.0
    # Below this share of the window's limit left, spread the rest over the window.
    slow_down_below: float = 0.1
    default_window: float = 60.0  # seconds, when the source does not say when it resets


@dataclass(frozen=True)
class Hints:
    """What a user should check when the source turns kpibot away, in the source's terms.

    Appended to the failed stream's error (``kpibot sync``'s summary, the log,
    ``sync_cursors.last_error``): ``HTTP 401 (…) — check ZENDESK_EMAIL and …``.
    """

    unauthorized: str = ""  # 401
    forbidden: str = ""  # 403
    not_found: str = ""  # 404 or a redirect: usually the account or the base URL is wrong
    unreachable: str = ""  # no connection within the retry budget

    def for_status(self, status: int) -> str:
        if status == 401:
            return self.unauthorized
        if status == 403:
            return self.forbidden
        if status == 404 or 300 <= status < 400:
            return self.not_found
        return ""


@dataclass
class Pacer:
    """At most one request per ``interval`` seconds (e.g. Zendesk's 10/minute exports).

    The gap is counted from when the previous request actually left, not from when it was
    due, so a late wake-up never squeezes the next gap; and each gap is ``margin`` longer
    than the limit needs. The server counts arrivals: on a limit like "10 in any minute",
    requests spaced at exactly 6 s cross it whenever one arrives a millisecond later
    than the one ten after it, and each such 429 costs a whole Retry-After (a second or
    more). A 1 % margin gives 1 % of the window (0.6 s on Zendesk's minute) of slack for
    network jitter, and costs 1 % of the time (BENCHMARKS.md, "Sync").
    """

    interval: float
    margin: float = 0.01
    _last: float | None = field(default=None, init=False)

    def wait(self, now: float) -> float:
        """Seconds to wait before a request at ``now`` may be sent."""
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self.interval * (1 + self.margin) - now)

    def sent(self, at: float) -> None:
        """A request left at ``at``: the next gap counts from here."""
        self._last = at


class ApiClient:
    """A JSON API client for one source. Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        policy: RetryPolicy = RetryPolicy(),
        sleep: Sleep | None = None,  # default time.sleep; tests pass a fake
        monotonic: Monotonic | None = None,  # default time.monotonic
        wall_clock: WallClock | None = None,
        rng: Callable[[], float] = random.random,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = 4,
        hints: Hints = Hints(),
    ) -> None:
        self.policy = policy
        self.hints = hints
        self.answered = False  # the source has answered at least once (any status)
        # Monotonic instant of the first failed connection since the source last answered
        # (or since the start, if it never has): the source is down from then on, for all
        # its streams. It gets ``unreachable_budget`` if it never answered in this run,
        # ``max_elapsed`` if it did; an answer restarts the clock.
        self._down_since: float | None = None
        # Set when that budget is spent: later requests fail at once with this.
        self._down_error: RetriableSyncError | None = None
        self.sleep = sleep or time.sleep
        self.monotonic = monotonic or time.monotonic
        self.wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self.rng = rng
        self.requests = 0  # sent, retries included: progress and tests read it
        self.retries = 0
        self.slept = 0.0  # seconds waited on backoff and pacing, for reports
        self._not_before = 0.0  # monotonic instant before which no request is sent
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            auth=auth,
            headers={"Accept": "application/json", "User-Agent": "kpibot", **(headers or {})},
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            follow_redirects=False,
        )

    @property
    def base_url(self) -> httpx.URL:
        return self._http.base_url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the one public call -------------------------------------------------------------

    def get_json(
        self,
        url: str,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        *,
        expect: type | tuple[type, ...] = (dict, list),
        require: Sequence[str] = (),
        check: Callable[[Any], str | None] | None = None,
        pacer: Pacer | None = None,
    ) -> Any:
        """GET ``url`` (a path under the base URL, or a path with its query) and return
        the decoded JSON. A body that is not of type ``expect``, lacks a ``require`` key or
        fails ``check`` (which returns what is wrong, or None) counts as a garbled response
        and is retried like a 5xx."""
        if self._down_error is not None:
            raise RetriableSyncError(
                f"GET {_path(url)}: not tried: {self._down_error}",
                retry_after=self._down_error.retry_after,
            )
        started = self.monotonic()
        attempt = 0
        while True:
            attempt += 1
            self._wait_turn(pacer)
            unreachable = False
            sent = self.monotonic()
            try:
                response = self._send(url, params)
            except httpx.TransportError as exc:  # connect, read, timeouts, truncated bodies
                unreachable = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                failure: RetriableSyncError = RetriableSyncError(
                    f"GET {_path(url)}: {type(exc).__name__}"
                    + (f" ({self._host()})" if unreachable else "")
                )
                if unreachable and self._down_since is None:
                    self._down_since = sent
            else:
                self.answered = True
                self._down_since = None
                self._note_rate_limit(response)
                try:
                    return self._decode(url, response, expect, require, check)
                except RetriableSyncError as exc:
                    failure = exc
            wait = self._backoff(attempt, failure.retry_after)
            now = self.monotonic()
            elapsed = now - started
            source_down = False
            if unreachable:
                assert self._down_since is not None
                down_for = now - self._down_since
                limit = self.policy.max_elapsed if self.answered else self.policy.unreachable_budget
                source_down = down_for + wait > limit
            over = attempt >= self.policy.max_attempts or elapsed + wait > self.policy.max_elapsed
            if over or source_down:
                advice = (
                    f" — {self.hints.unreachable}" if unreachable and self.hints.unreachable else ""
                )
                error = RetriableSyncError(
                    f"{failure} (gave up after {attempt} attempts in {elapsed:.0f}s){advice}",
                    retry_after=failure.retry_after,
                )
                if source_down:
                    # The source's budget is spent: its other streams need not wait for it.
                    when = "" if self.answered else " of this run"
                    self._down_error = RetriableSyncError(
                        f"{self._host()} has not answered in {down_for:.0f}s{when}{advice}",
                        retry_after=failure.retry_after,
                    )
                raise error from None
            self.retries += 1
            log.info("%s; retry %d in %.1fs", failure, attempt, wait)
            self._pause(wait)

    # -- internals -----------------------------------------------------------------------

    def _send(self, url: str, params: Any) -> httpx.Response:
        self.requests += 1
        response = self._http.get(url, params=params)
        log.debug("GET %s -> %d", _path(url), response.status_code)
        return response

    def _decode(
        self,
        url: str,
        response: httpx.Response,
        expect: type | tuple[type, ...],
        require: Sequence[str],
        check: Callable[[Any], str | None] | None,
    ) -> Any:
        status = response.status_code
        where = f"GET {_path(url)}"
        if status == 429 or status >= 500:
            raise RetriableSyncError(
                f"{where}: HTTP {status}", retry_after=self._retry_after(response)
            )
        hint = self.hints.for_status(status)
        advice = f" — {hint}" if hint else ""
        if status >= 400:
            raise FatalSyncError(
                f"{where}: HTTP {status}{_error_hint(response)}{advice}", status=status
            )
        if status >= 300:
            raise FatalSyncError(
                f"{where}: unexpected redirect (HTTP {status}){advice}", status=status
            )
        try:
            data: Any = json.loads(response.content)
        except ValueError:
            raise RetriableSyncError(f"{where}: the response is not valid JSON") from None
        if not isinstance(data, expect):
            raise RetriableSyncError(f"{where}: unexpected JSON ({type(data).__name__})")
        missing = [k for k in require if not isinstance(data, dict) or k not in data]
        if missing:
            raise RetriableSyncError(f"{where}: the response lacks {', '.join(missing)}")
        problem = check(data) if check is not None else None
        if problem:
            raise RetriableSyncError(f"{where}: {problem}")
        return data

    def _host(self) -> str:
        """Host and port of the base URL (never its user info): which server did not answer."""
        base = self._http.base_url
        return f"{base.host}:{base.port}" if base.port else base.host

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter: uniform in [0, min(cap, base·2^(attempt-1))]; at least Retry-After."""
        ceiling = min(self.policy.cap, self.policy.base * 2 ** (attempt - 1))
        jittered = self.rng() * ceiling
        if retry_after is not None:
            # The source said when: wait that long, plus a little jitter so that parallel
            # clients do not all come back in the same instant.
            return retry_after + self.rng() * min(1.0, ceiling)
        return jittered

    def _retry_after(self, response: httpx.Response) -> float | None:
        value = response.headers.get("retry-after")
        if value is None:
            return None
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - self.wall_clock()).total_seconds())

    def _note_rate_limit(self, response: httpx.Response) -> None:
        """Slow down before the limit: spread what is left over the rest of the window."""
        remaining = _header_number(response.headers, REMAINING_HEADERS)
        if remaining is None:
            return
        limit = _header_number(response.headers, LIMIT_HEADERS)
        reset = _header_number(response.headers, RESET_HEADERS)
        window = self.policy.default_window
        if reset is not None:
            # Either seconds until the reset (IETF draft, Stripe-style) or an epoch instant.
            window = reset - self.wall_clock().timestamp() if reset > 1e9 else reset
            window = max(0.0, window)
        threshold = max(1.0, (limit or 100.0) * self.policy.slow_down_below)
        if remaining > threshold:
            return
        delay = window if remaining <= 0 else window / (remaining + 1)
        self._not_before = max(self._not_before, self.monotonic() + delay)
        log.debug("rate limit: %d left, next request in %.1fs", remaining, delay)

    def _wait_turn(self, pacer: Pacer | None) -> None:
        now = self.monotonic()
        delay = max(0.0, self._not_before - now)
        if pacer is not None:
            delay = max(delay, pacer.wait(now))
        if delay > 0:
            self._pause(delay)
        if pacer is not None:
            pacer.sent(self.monotonic())

    def _pause(self, seconds: float) -> None:
        self.slept += seconds
        self.sleep(seconds)


def _path(url: str) -> str:
    """The path of a URL, without query or host: enough to say where, nothing secret."""
    return httpx.URL(url).path or "/"


def _header_number(headers: httpx.Headers, names: Sequence[str]) -> float | None:
    for name in names:
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value.split(",")[0].split(";")[0].strip())
        except ValueError:
            continue
    return None


def _error_hint(response: httpx.Response) -> str:
    """The source's own error type/title, never echoing the request."""
    try:
        data = response.json()
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    err = data.get("error")
    if isinstance(err, dict):  # Stripe: {"error": {"type": ..., "message": ...}}
        kind = err.get("type") or err.get("code")
        return f" ({kind})" if isinstance(kind, str) else ""
    if isinstance(err, str):  # Zendesk: {"error": "RecordNotFound", "description": ...}
        return f" ({err[:80]})"
    return ""
