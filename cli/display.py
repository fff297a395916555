"""What the user sees on stderr: a progress bar on a terminal, a summary, --explain output."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ingest.pipeline import ProgressFn, Summary

if TYPE_CHECKING:
    from rich.console import Console

# rich is imported where it is used: a quiet run (every batch job) never draws anything, and
# importing rich cost ~60 ms of its start-up.

STAGES = {"clean": "reading + cleaning", "dedupe": "near-duplicates", "write": "writing"}


def _rate_column() -> object:
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Articles per second."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:>9,.0f} articles/s" if speed else "", style="progress.data.speed")

    return RateColumn()


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@contextmanager
def progress_bar(console: Console, enabled: bool) -> Iterator[ProgressFn]:
    """A progress callback; draws only when enabled and stderr is a terminal.

    The callback only adds to a counter: rich redraws from its own thread, so the bar costs
    nothing measurable on the data path.
    """
    if not enabled or not console.is_terminal:
        yield lambda stage, n: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (SpinnerColumn(), TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(),
               _rate_column(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False, refresh_per_second=5) as bar:
        tasks: dict[str, int] = {}

        def advance(stage: str, n: int) -> None:
            task = tasks.get(stage)
            if task is None:
                task = tasks[stage] = bar.add_task(STAGES.get(stage, stage), total=None)
            bar.advance(task, n)

        yield advance


def print_summary(console: Console, summary: Summary) -> None:
    from rich.table import Table

    counts = summary.counts
    rate = counts["read"] / summary.seconds if summary.seconds else 0.0
    table = Table(title="thresher ingest", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("read", f"{counts['read']:,}")
    table.add_row("kept", f"{counts['kept']:,}")
    table.add_row("duplicates", f"{counts['duplicates']:,}")
    table.add_row("rejected", f"{counts['rejected']:,}")
    for reason, n in summary.rejected_by_reason.items():
        table.add_row(f"  {reason}", f"{n:,}")
    table.add_row("paragraphs removed", f"{sum(summary.removed.values()):,}")
    for reason, n in summary.removed.items():
        table.add_row(f"  {reason}", f"{n:,}")
    table.add_row("seconds", f"{summary.seconds:.2f} ({rate:,.0f} articles/s)")
    console.print(table)


def print_explanations(console: Console, summary: Summary, wanted: list[str]) -> None:
    from rich.text import Text

    found = {a.id: a for a in summary.explained}
    for aid in wanted:
        article = found.get(aid)
        if article is None:
            console.print(Text(f"{aid}: not in the corpus (rejected, or not in the input)", style="yellow"))
            continue
        console.rule(Text(f"{aid} — {article.title or ''}", style="bold"))
        for reason, line in article.removed_lines:
            shown = line if len(line) <= 160 else line[:157] + "..."
            console.print(Text.assemble((f"- {reason:<18} ", "red"), (shown, "dim")))
        for paragraph in article.paragraphs:
            shown = paragraph if len(paragraph) <= 160 else paragraph[:157] + "..."
            console.print(Text.assemble(("+ kept               ", "green"), shown))
