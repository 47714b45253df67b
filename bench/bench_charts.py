"""How long each chart kind takes to render, and whether memory grows over many renders.

    python bench/bench_charts.py            # full run: 21 renders per case, 1,000 in a row
    python bench/bench_charts.py --quick    # 5 renders per case, 200 in a row

Prints a Markdown section for BENCHMARKS.md. Public tools only: ``time.perf_counter`` (wall)
and ``time.process_time`` (CPU) for time, ``resource.getrusage`` for peak resident memory
(ru_maxrss: KiB on Linux). Peak RSS that stops rising after the first hundred renders means
figures are freed.
"""

from __future__ import annotations

import argparse
import gc
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib

from bot import charts
from bot.replies import Chart
from tests.charts import samples

Case = Callable[[], Chart | None]


def cases() -> dict[str, dict[str, Case]]:
    """kind → shape → a render. Results are built once, outside the timed call."""
    out: dict[str, dict[str, Case]] = {}
    named = {
        "line (csat)": "csat",
        "nps": "nps",
        "mrr": "mrr_movements",
        "volume": "tickets",
        "backlog": "backlog",
        "duration (first response)": "frt",
        "health (180 / 20,000 customers)": "health",
    }
    for label, kpi in named.items():
        typical, long = samples.result(kpi, "typical"), samples.result(kpi, "long")
        out[label] = {
            "typical": lambda r=typical: charts.render(r, threshold=None),
            "long": lambda r=long: charts.render(r, threshold=None),
        }
    bars_t, bars_l = samples.by_dimension("typical"), samples.by_dimension("long")
    out["bars (14 / 200 keys)"] = {
        "typical": lambda: charts.render(bars_t),
        "long": lambda: charts.render(bars_l),
    }
    empty = samples.result("csat", "empty")
    out["no data"] = {"typical": lambda: charts.render(empty)}
    digest_t = [samples.result(k) for k in ("csat", "nps", "tickets", "backlog")]
    digest_l = [samples.result(k, "long") for k in ("csat", "nps", "tickets", "backlog")]
    digest_t += [samples.result("frt"), samples.result("mrr_movements")]
    digest_l += [samples.result("frt", "long")]
    digest_l += [samples.result("mrr_movements", "long")]
    out["sparkline grid (6 KPIs)"] = {
        "typical": lambda: charts.sparkline_grid(digest_t, title="Digest"),
        "long": lambda: charts.sparkline_grid(digest_l, title="Digest"),
    }
    return out


def median_ms(case: Case, repeats: int) -> tuple[float, float, int]:
    """Median wall time and median CPU time of this process (ms), and the PNG size. CPU time
    is the steadier figure on a shared machine: other load stretches wall time only."""
    case()  # warm: font cache, first-use imports
    wall, cpu = [], []
    size = 0
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        chart = case()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
        size = len(chart.png) if chart else 0
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000, size


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats, many = (5, 200) if args.quick else (21, 1000)
    table = cases()

    rows = []
    for label, shapes in table.items():
        typical = median_ms(shapes["typical"], repeats)
        long = median_ms(shapes["long"], repeats) if "long" in shapes else None
        rows.append((label, typical, long))

    # Memory: many renders in a row, cycling through every kind (typical data).
    cycle = [shapes["typical"] for shapes in table.values()]
    checkpoints = {100, many // 2, many}
    rss: dict[int, float] = {}
    t0 = time.perf_counter()
    for i in range(1, many + 1):
        cycle[i % len(cycle)]()
        if i in checkpoints:
            rss[i] = peak_rss_mib()
    elapsed = time.perf_counter() - t0
    gc.collect()

    print("## Charts\n")
    print(
        f"`python bench/bench_charts.py` on {platform.machine()} "
        f"({platform.python_implementation()} {platform.python_version()}, "
        f"matplotlib {matplotlib.__version__}, Agg), one process. Median of {repeats} renders "
        "after one warm-up; a render is Result → PNG bytes (figure, layout, Agg draw, PNG "
        "encode) at 1200 × 600 px. *typical*: 30 daily buckets (MRR: 12 months); *long*: "
        "5 years daily (1,826 buckets). Wall time is `perf_counter`, CPU time "
        "`process_time` of this process (steadier when the machine is shared).\n"
    )
    print("| kind | typical: wall ms | CPU ms | PNG KB | long: wall ms | CPU ms | PNG KB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, typical, long in rows:
        cells = [f"{typical[0]:.0f}", f"{typical[1]:.0f}", f"{typical[2] / 1024:.0f}"]
        if long:
            cells += [f"{long[0]:.0f}", f"{long[1]:.0f}", f"{long[2] / 1024:.0f}"]
        else:
            cells += ["–"] * 3
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(
        f"\nMemory: {many:,} renders in a row cycling through every kind took "
        f"{elapsed:.1f} s ({elapsed / many * 1000:.0f} ms each). Peak RSS (ru_maxrss): "
        + ", ".join(f"{rss[k]:.0f} MiB after {k:,}" for k in sorted(rss))
        + "."
    )


if __name__ == "__main__":
    main()
