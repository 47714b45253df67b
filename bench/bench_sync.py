"""Sync throughput and memory: Zendesk tickets and Stripe subscriptions into SQLite.

    python bench/bench_sync.py                      # 200k tickets, 50k subscriptions
    python bench/bench_sync.py --tickets 1000000 --subscriptions 0

Each scenario runs in a fresh process (so peak RSS is that scenario's alone) against a
fake API served by another process on 127.0.0.1, exactly as in the tests but generating
real-shaped pages on the fly: Zendesk's incremental cursor export with side-loaded metric
sets and groups, 1000 tickets a page; Stripe's subscription list, 100 a page, with items
and prices. Pacing is off (the real Zendesk allows 10 export requests a minute, which
would make this a benchmark of waiting). Figures: records/s end to end (HTTP, JSON,
mapping, upsert, commit per page) and the process's peak RSS.
"""

from __future__ import annotations

import argparse
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


def _serve(kind: str, total: int, conn: Any) -> None:
    fake = GeneratedZendesk(total) if kind == "zendesk" else GeneratedStripe(total)
    fake.start()
    conn.send(fake.url)
    conn.recv()  # until told to stop
    fake.stop()


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
    parser.add_argument("--scenario", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:
        print(json.dumps(scenario(args.scenario[0], int(args.scenario[1]))))
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
