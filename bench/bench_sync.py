"""Sync throughput and memory: Zendesk tickets and Stripe subscriptions into SQLite.

    python bench/bench_sync.py                      # 200k tickets, 50k subscriptions
    python bench/bench_sync.py --tickets 1000000 --subscriptions 0
    python bench/bench_sync.py --rate-limited 31      # pacing under an enforced 10 req/6 s

Each scenario runs in a fresh process (so peak RSS is that scenario's alone) against a
fake API served by another process on 127.0.0.1, exactly as in the tests but generating
real-shaped pages on the fly: Zendesk's incremental cursor export with side-loaded metric
sets and groups, 1000 tickets a page; Stripe's subscription list, 100 a page, with items
and prices. Pacing is off (the real Zendesk allows 10 export requests a minute, which
would make this a benchmark of waiting). Figures: records/s end to end (HTTP, JSON,
mapping, upsert, commit per page) and the process's peak RSS.

``--rate-limited PAGES`` measures the other bound instead: the fake enforces Zendesk's
export limit scaled down (``--limit 10/6``: 10 requests in any 6 s, 429 with Retry-After
beyond), the connector is paced to the same limit, and the total time is compared with the
floor that limit allows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.server import FakeApi, Request, Response, first  # noqa: E402
from tests.fakes.stripe import PRICES  # noqa: E402
from tests.fakes.zendesk import metric_payload, ticket_payload, zulu  # noqa: E402

T0 = datetime(2025, 1, 1, tzinfo=UTC)
EMAIL, TOKEN, KEY = "bench@example.com", "bench-token", "sk_test_bench"


# -- fake servers generating pages from templates ----------------------------------------------


def _template(obj: dict[str, Any], marks: dict[str, str]) -> str:
    text = json.dumps(obj, separators=(",", ":"))
    for value, mark in marks.items():
        text = text.replace(value, mark)
    return text


class GeneratedZendesk(FakeApi):
    """Ticket i: id i+1, updated T0 + i seconds; a page is a slice of indices."""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total
        stamp = datetime(2000, 1, 2, 3, 4, 5, tzinfo=UTC)
        created = stamp - timedelta(hours=3)
        marks = {zulu(stamp): "@UPD@", zulu(created): "@CRE@", "987654321": "@ID@"}
        t = ticket_payload(987654321, updated_at=stamp, status="solved", subject="Ticket 987654321")
        m = metric_payload(
            987654321,
            created_at=created,
            updated_at=stamp,
            solved_at=stamp,
            resolution_minutes=(300, 120),
        )
        m["id"] = 987654321
        self.ticket, self.metric = _template(t, marks), _template(m, marks)

    def _fill(self, template: str, i: int) -> str:
        stamp = T0 + timedelta(seconds=i)
        return (
            template.replace("@ID@", str(i + 1))
            .replace("@UPD@", zulu(stamp))
            .replace("@CRE@", zulu(stamp - timedelta(hours=3)))
        )

    def route(self, request: Request) -> Response:
        q = request.query
        size = int(first(q, "per_page", "1000") or 1000)
        if first(q, "cursor") is not None:
            start = int(first(q, "cursor") or 0)
        else:
            since = int(first(q, "start_time", "0") or 0)
            start = max(0, since - int(T0.timestamp()))
        if request.path.endswith("satisfaction_ratings.json"):
            body = b'{"satisfaction_ratings":[],"meta":{"has_more":false},"links":{"next":null}}'
            return Response(200, body)
        end = min(start + size, self.total)
        tickets = ",".join(self._fill(self.ticket, i) for i in range(start, end))
        metrics = ",".join(self._fill(self.metric, i) for i in range(start, end))
        url = f"{self.url}/api/v2/incremental/tickets/cursor.json?cursor={end}&per_page={size}"
        body = (
            f'{{"tickets":[{tickets}],"metric_sets":[{metrics}],'
            f'"groups":[{{"id":360004077472,"name":"Support"}}],'
            f'"after_url":"{url}","after_cursor":"{end}","before_url":null,'
            f'"end_of_stream":{"true" if end >= self.total else "false"}}}'
        )
        return Response(200, body.encode())


class GeneratedStripe(FakeApi):
    """Subscription i: sub_<i>, newest first, one monthly item and one annual item."""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total
        sub = {
            "id": "sub_@ID@",
            "object": "subscription",
            "status": "active",
            "currency": "usd",
            "customer": "cus_@ID@",
            "created": 1700000000,
            "start_date": 1700000000,
            "trial_start": None,
            "trial_end": None,
            "ended_at": None,
            "canceled_at": None,
            "cancel_at": None,
            "discounts": [],
            "default_tax_rates": [],
            "metadata": {},
            "items": {
                "object": "list",
                "has_more": False,
                "data": [
                    {
                        "id": f"si_@ID@_{n}",
                        "object": "subscription_item",
                        "quantity": q,
                        "price": PRICES[p],
                        "discounts": [],
                        "tax_rates": [],
                        "current_period_start": 1700000000,
                        "current_period_end": 1702592000,
                    }
                    for n, (p, q) in enumerate((("price_month", 3), ("price_year", 1)))
                ],
            },
        }
        self.sub = json.dumps(sub, separators=(",", ":"))

    def route(self, request: Request) -> Response:
        if request.path != "/v1/subscriptions":
            return Response(200, {"object": "list", "data": [], "has_more": False, "url": "/"})
        q = request.query
        limit = int(first(q, "limit", "10") or 10)
        after = first(q, "starting_after")
        start = int(after.split("_")[1]) + 1 if after else 0
        end = min(start + limit, self.total)
        data = ",".join(self.sub.replace("@ID@", f"{i:07d}") for i in range(start, end))
        more = "true" if end < self.total else "false"
        body = f'{{"object":"list","data":[{data}],"has_more":{more},"url":"/v1/subscriptions"}}'
        return Response(200, body.encode())


def _serve(kind: str, total: int, conn: Any, limit: tuple[int, float] | None = None) -> None:
    fake = GeneratedZendesk(total) if kind.startswith("zendesk") else GeneratedStripe(total)
    rule = None
    if limit is not None:
        rule = fake.rate_limit(limit[0], limit[1], path="/api/v2/incremental/")
    fake.start()
    conn.send(fake.url)
    conn.recv()  # until told to stop
    export = [r.at for r in fake.requests if r.path.startswith("/api/v2/incremental/")]
    conn.send({"refused": rule.refused if rule else 0, "arrivals": export})
    fake.stop()


def rate_limited(pages: int, limit: int, window: float, page_size: int) -> dict[str, Any]:
    """Zendesk's export limit enforced by the fake (``limit`` requests in any ``window``
    seconds, 429 with Retry-After beyond), the connector paced to the same limit: how long
    ``pages`` pages take against the floor the limit allows."""
    from bot.db import make_engine
    from integrations.runner import SyncRunner
    from integrations.zendesk import ZendeskConnector
    from metrics.schema import Base

    parent, child = multiprocessing.Pipe()
    total = pages * page_size
    server = multiprocessing.Process(
        target=_serve, args=("zendesk", total, child, (limit, window)), daemon=True
    )
    server.start()
    url = parent.recv()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        Base.metadata.create_all(engine)
        connector = ZendeskConnector(
            email=EMAIL,
            api_token=TOKEN,
            base_url=url,
            page_size=page_size,
            requests_per_minute=limit * 60 / window,  # the same limit, scaled alike
        )
        (report,) = SyncRunner(engine).sync(connector, streams=["tickets"])
        connector.close()
        engine.dispose()
    parent.send("stop")
    served = parent.recv()
    server.join(5)
    assert report.error is None and report.records == total, report
    # The sliding window lets `limit` requests through at once: request i (from 0) may be
    # sent at floor(i / limit) windows at the earliest. The last page's own handling and
    # the first request's round trip come on top.
    floor = ((pages - 1) // limit) * window
    arrivals = served["arrivals"]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    return {
        "kind": "zendesk-limited",
        "pages": pages,
        "requests": len(arrivals),
        "refused": served["refused"],
        "seconds": round(report.seconds, 2),
        "floor": round(floor, 2),
        "ratio": round(report.seconds / floor, 3) if floor else None,
        "min_gap": round(min(gaps), 3) if gaps else None,
        "max_gap": round(max(gaps), 3) if gaps else None,
    }


# -- one scenario, in its own process --------------------------------------------------------


def scenario(kind: str, total: int) -> dict[str, Any]:
    from bot.db import make_engine
    from integrations.runner import SyncRunner
    from integrations.stripe import StripeConnector
    from integrations.zendesk import ZendeskConnector
    from metrics.schema import Base

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(kind, total, child), daemon=True)
    server.start()
    url = parent.recv()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        Base.metadata.create_all(engine)

        def connector() -> Any:
            if kind == "zendesk":
                return ZendeskConnector(
                    email=EMAIL, api_token=TOKEN, base_url=url, requests_per_minute=0
                )
            return StripeConnector(api_key=KEY, base_url=url)

        streams = ["tickets"] if kind == "zendesk" else ["subscriptions"]
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        first_run = connector()
        started = time.perf_counter()
        (report,) = SyncRunner(engine).sync(first_run, streams=streams)
        seconds = time.perf_counter() - started
        first_run.close()
        second_run = connector()
        again = time.perf_counter()
        (rerun,) = SyncRunner(engine).sync(second_run, streams=streams, full=True)
        rerun_seconds = time.perf_counter() - again
        second_run.close()
        db_mb = os.path.getsize(f"{tmp}/bench.db") / 2**20
        engine.dispose()
    parent.send("stop")
    server.join(5)
    assert report.error is None and report.records == total, report
    assert rerun.error is None and rerun.records == total, rerun
    assert rerun.inserted == 0 and rerun.updated == 0, rerun
    return {
        "kind": kind,
        "records": total,
        "pages": report.pages,
        "seconds": round(seconds, 2),
        "per_second": round(total / seconds),
        "rerun_per_second": round(total / rerun_seconds),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_at_start_mb": round(rss_before, 1),
        "db_mb": round(db_mb, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, nargs="*", default=[200_000])
    parser.add_argument("--subscriptions", type=int, nargs="*", default=[50_000])
    parser.add_argument(
        "--rate-limited",
        type=int,
        metavar="PAGES",
        help="instead: PAGES Zendesk export pages under the fake's enforced rate limit",
    )
    parser.add_argument(
        "--limit",
        default="10/6",
        metavar="N/SECONDS",
        help="the enforced limit, scaled down from Zendesk's 10/60 (default 10/6)",
    )
    parser.add_argument("--page-size", type=int, default=100, help="tickets a page (limited run)")
    parser.add_argument("--scenario", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:
        print(json.dumps(scenario(args.scenario[0], int(args.scenario[1]))))
        return
    if args.rate_limited:
        n, _, per = args.limit.partition("/")
        r = rate_limited(args.rate_limited, int(n), float(per), args.page_size)
        print(
            f"{r['pages']} pages under {n} requests/{float(per):g} s: {r['seconds']} s, "
            f"floor {r['floor']} s, ratio {r['ratio']}; {r['requests']} requests, "
            f"{r['refused']} refused (429); gaps between requests "
            f"{r['min_gap']}–{r['max_gap']} s"
        )
        return
    runs = [("zendesk", n) for n in args.tickets if n] + [
        ("stripe", n) for n in args.subscriptions if n
    ]
    print(
        f"{'source':<9}{'records':>11}{'pages':>7}{'seconds':>9}{'rec/s':>9}"
        f"{'rerun/s':>10}{'peak RSS':>11}{'DB':>11}"
    )
    for kind, n in runs:
        out = subprocess.run(
            [sys.executable, __file__, "--scenario", kind, str(n)],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{kind:<9}{r['records']:>11,}{r['pages']:>7,}{r['seconds']:>9}"
            f"{r['per_second']:>9,}{r['rerun_per_second']:>10,}"
            f"{r['peak_rss_mb']:>8} MB{r['db_mb']:>8} MB",
            flush=True,
        )


if __name__ == "__main__":
    main()
