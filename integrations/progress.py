"""Progress for ``kpibot sync`` in a terminal: a bar per stream, then a summary table.

:class:`RichProgress` implements :class:`integrations.runner.SyncObserver`::

    with RichProgress() as progress:
        reports = sync_sources(engine, settings, observer=progress)

Each stream shows its records, pages and rate as pages commit; when the block ends the
bars go and a table of what every stream did stays (inserted, updated, unchanged, stale,
invalid, deleted, errors). On a non-terminal (a log file, CI) only the table is printed.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.progress import (
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from integrations.runner import StreamReport


class RichProgress:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("[bold]{task.description}"),
            TextColumn("{task.fields[records]:>9,} records"),
            TextColumn("{task.fields[pages]:>6,} pages"),
            TextColumn("{task.fields[rate]:>8,.0f}/s"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,
        )
        self.reports: list[StreamReport] = []
        self._tasks: dict[tuple[str, str], TaskID] = {}

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
        if not self.reports:
            return
        if self.console.is_terminal:
            self.console.print(summary_table(self.reports))
        else:  # logs and pipes: one plain line per stream, never a table cut to 80 columns
            for line in summary_lines(self.reports):
                self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    # -- SyncObserver --------------------------------------------------------------------

    def stream_started(self, source: str, stream: str) -> None:
        self._tasks[(source, stream)] = self.progress.add_task(
            f"{source}/{stream}", total=None, records=0, pages=0, rate=0.0, status=""
        )

    def page_committed(self, report: StreamReport) -> None:
        self._update(report)

    def stream_finished(self, report: StreamReport) -> None:
        self.reports.append(report)
        status = "[red]failed[/]" if report.error else ""
        self._update(report, status=status)
        task = self._tasks[(report.source, report.stream)]
        self.progress.update(task, total=1, completed=1)

    def _update(self, report: StreamReport, status: str = "") -> None:
        task = self._tasks.get((report.source, report.stream))
        if task is not None:
            self.progress.update(
                task, records=report.records, pages=report.pages, rate=report.rate, status=status
            )


def summary_lines(reports: Sequence[StreamReport]) -> list[str]:
    """The summary as plain lines, for logs and pipes."""
    lines = []
    for r in reports:
        result = f"failed: {r.error}" if r.error else ("ok" if r.complete else "incomplete")
        lines.append(
            f"{r.source}/{r.stream}: {r.records:,} records in {r.pages:,} pages, "
            f"{r.inserted:,} inserted, {r.updated:,} updated, {r.unchanged:,} unchanged, "
            f"{r.stale:,} stale, {r.invalid:,} invalid, {r.deleted:,} deleted, "
            f"{r.seconds:.1f}s ({r.rate:,.0f}/s): {result}"
        )
    return lines


def summary_table(reports: Sequence[StreamReport]) -> Table:
    """What each stream did, one row per stream; errors in the last column."""
    table = Table(title="sync", title_justify="left", show_edge=False)
    table.add_column("stream")
    for name in (
        "records",
        "pages",
        "inserted",
        "updated",
        "unchanged",
        "stale",
        "invalid",
        "deleted",
    ):
        table.add_column(name, justify="right")
    table.add_column("time", justify="right")
    table.add_column("rate", justify="right")
    table.add_column("result")
    for r in reports:
        table.add_row(
            f"{r.source}/{r.stream}",
            f"{r.records:,}",
            f"{r.pages:,}",
            f"{r.inserted:,}",
            f"{r.updated:,}",
            f"{r.unchanged:,}",
            f"{r.stale:,}",
            f"[yellow]{r.invalid:,}[/]" if r.invalid else "0",
            f"{r.deleted:,}",
            f"{r.seconds:.1f}s",
            f"{r.rate:,.0f}/s",
            f"[red]{r.error}[/]" if r.error else ("[green]ok[/]" if r.complete else "incomplete"),
        )
    return table
