"""Sync progress in the terminal: a bar per stream (records, pages, rate), then a summary."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from integrations.runner import StreamReport


class RichProgress:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<26}"),
            BarColumn(bar_width=8),
            TextColumn(
                "{task.fields[records]:>9,} records · {task.fields[pages]:>4} pages · {task.fields[rate]:>8,.0f}/s"
            ),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.tasks: dict[tuple[str, str], TaskID] = {}
        self.reports: list[StreamReport] = []

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        self.progress.stop()
        self.summary()

    def stream_started(self, source: str, stream: str) -> None:
        self.tasks[(source, stream)] = self.progress.add_task(
            f"{source}/{stream}", total=None, records=0, pages=0, rate=0.0
        )

    def page_committed(self, report: StreamReport) -> None:
        task = self.tasks[(report.source, report.stream)]
        self.progress.update(task, records=report.records, pages=report.pages, rate=report.rate)

    def stream_finished(self, report: StreamReport) -> None:
        task = self.tasks[(report.source, report.stream)]
        self.progress.update(
            task, total=1, completed=1, records=report.records, pages=report.pages, rate=report.rate
        )
        self.reports.append(report)

    def summary(self) -> None:
        if not self.reports:
            return
        table = Table(title="Sync summary", title_justify="left")
        for col in ("stream", "records", "written", "invalid", "deleted", "seconds", "status"):
            table.add_column(col, justify="left" if col in ("stream", "status") else "right")
        for r in self.reports:
            status = "[green]ok[/green]" if r.error is None else f"[red]failed: {r.error}[/red]"
            table.add_row(
                f"{r.source}/{r.stream}",
                f"{r.records:,}",
                f"{r.written:,}",
                f"{r.invalid:,}",
                f"{r.deleted:,}",
                f"{r.seconds:.1f}",
                status,
            )
        self.console.print(table)
