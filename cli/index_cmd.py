"""`thresher index stats|forget` and the `--index` options of `thresher ingest`."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ingest.index_errors import DEFAULT_WAIT, IndexStoreError

if TYPE_CHECKING:
    from ingest.index_store import IndexStats


def index_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options of a run that dedupes against, and then extends, a persistent index."""
    decorators = [
        click.option("--index", "index", metavar="PATH|URL", default=None,
                     help="Persistent near-duplicate index: a SQLite file (created if missing) or "
                          "redis://HOST:PORT/DB. Articles an earlier run kept become duplicates; this "
                          "run's kept articles are added once its outputs are written."),
        click.option("--run-id", default=None, metavar="ID",
                     help="This run's name in the index (default: UTC time + random suffix; "
                          "in the report)."),
        click.option("--index-wait", type=click.FloatRange(min=0), default=DEFAULT_WAIT,
                     show_default=True, help="Seconds to wait for another run holding the index lock."),
    ]
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


def _open(location: str) -> Any:
    from ingest.index_store import open_index  # (only `thresher index` and --index runs import it)

    try:
        return open_index(location)
    except IndexStoreError as exc:
        raise click.ClickException(str(exc)) from exc


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _print_stats(stats: IndexStats) -> None:
    from rich.console import Console  # (not imported by runs that never draw)
    from rich.table import Table

    console = Console()
    table = Table(title=f"thresher index {stats.location}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("backend", stats.backend)
    table.add_row("articles", f"{stats.articles:,}")
    merged = f" ({stats.merged_clusters:,} merged into others by later runs)" if stats.merged_clusters else ""
    table.add_row("clusters", f"{stats.clusters:,}{merged}")
    table.add_row("runs", f"{len(stats.runs):,}")
    size_label = "size on disk" if stats.backend == "sqlite" else "Redis memory"
    per = f" ({stats.bytes / stats.articles:,.0f} B/article)" if stats.articles else ""
    table.add_row(size_label, _human(stats.bytes) + per)
    if stats.pending_runs:
        table.add_row("uncommitted additions", f"{stats.pending_runs} (in progress, or left by a dead run)")
    if stats.params is not None:
        p = stats.params
        table.add_row("parameters", f"{p.shingle} {p.ngram}-grams, {p.num_perm} perms (seed {p.seed}, "
                                    f"{p.scheme}), {p.bands} bands x {p.rows} rows")
    console.print(table)
    if stats.runs:
        runs = Table(title="runs", title_justify="left")
        runs.add_column("run")
        runs.add_column("articles", justify="right")
        runs.add_column("added (UTC)")
        for r in stats.runs:
            runs.add_row(r.run_id, f"{r.articles:,}", r.created)
        console.print(runs)


@click.group("index")
def index() -> None:
    """Inspect or trim a persistent near-duplicate index (see `ingest --index`)."""


@index.command()
@click.argument("location", metavar="PATH|URL")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def stats(location: str, as_json: bool) -> None:
    """Articles, clusters, runs (with counts), parameters and size of the index at PATH|URL."""
    if "://" not in location:
        _must_exist(location)
    store = _open(location)
    try:
        result = store.stats()
    except IndexStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        _print_stats(result)


@index.command()
@click.argument("location", metavar="PATH|URL")
@click.option("--run", "run_id", required=True, metavar="RUN", help="The run whose articles to remove.")
def forget(location: str, run_id: str) -> None:
    """Remove run RUN's articles from the index, e.g. to re-ingest a bad batch."""
    if "://" not in location:
        _must_exist(location)
    store = _open(location)
    try:
        removed = store.forget(run_id)
    except IndexStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    click.echo(f"forgot run {run_id}: {removed:,} article(s) removed from {store.location}", err=True)


def _must_exist(path: str) -> None:
    """`stats` and `forget` never create an index (a typo would otherwise make an empty one)."""
    if not os.path.isfile(path):
        raise click.ClickException(f"no index at {path}")
