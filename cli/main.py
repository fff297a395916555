"""The `thresher` command line: a thin click layer over `ingest.pipeline`."""

from __future__ import annotations

import dataclasses
import gc
import os
import re
import signal
import sys
from collections.abc import Callable
from typing import Any

# The imports below (numpy's most of all) allocate ~40k tracked objects, alive until exit, and
# the collections they set off walk them all and free nothing: ~20 ms of a run's start (25
# alternated runs of the import, median 313 -> 291 ms). Collection resumes once they are done,
# with them frozen (out of every collection's sight): left young, the first collection after the
# imports walked them all (13 ms), and the middle generation's several times more: a 50k
# near-duplicate-only run spent 41-49 ms in collections, 11-15 ms with them frozen; a full run
# 90-132 ms, 43-50 ms frozen (`gc.callbacks` timing, 3 runs each).
_collecting = gc.isenabled()
gc.disable()
try:
    import click

    from cli.display import print_explanations, print_summary, progress_bar, stderr_console
    from cli.index_cmd import index, index_options
    from dedupe.config import DedupeConfig
    from ingest.index_errors import IndexStoreError
    from ingest.parallel import WorkerDied
    from ingest.pipeline import (
        KEEP_POLICIES,
        AccountingError,
        BadInput,
        IngestOptions,
        Outputs,
        Summary,
        run_ingest,
    )
    from ingest.readers import ReaderOptions
    from ingest.sources import FORMATS, InputError, expand_inputs
    from ingest.writers import AtomicOutput, OutputError, write_json_atomically
finally:
    gc.freeze()
    if _collecting:
        gc.enable()

EXIT_BAD_INPUT = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(BaseException):
    """SIGTERM, turned into an exception so outputs are cleaned up like on Ctrl-C."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


class OneLineUsageError(click.UsageError):
    """A usage error shown as one line (no usage block): the message says what to fix."""

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


def _check_outputs(kw: dict[str, Any], outputs: Outputs) -> None:
    """Fail before reading anything if two outputs share a name or one cannot be written."""
    named = [("-o", outputs.corpus), ("-o", outputs.clusters), ("--duplicates", outputs.duplicates),
             ("--rejects", outputs.rejects), ("--report", kw["report"])]
    seen: dict[str, str] = {}
    for flag, path in named:
        if not path:
            continue
        key = path if path == "-" else os.path.realpath(path)
        if key in seen:
            raise OneLineUsageError(f"{seen[key]} and {flag} both name {path!r}; give each output its own file")
        seen[key] = flag
    for flag, path in named:
        if flag == "-o" and kw.get("engine") == "ray" and path and _is_folder_target(path):
            continue  # the Ray engine writes part-NNNNN.jsonl files into a folder
        if path and path != "-":
            AtomicOutput(path).abort()  # creates and removes the temporary file: OutputError says why not


def _is_folder_target(path: str) -> bool:
    from ingest.ray_engine import is_folder_target

    return is_folder_target(path)


def _run_engine(kw: dict[str, Any], sources: list[Any], options: IngestOptions, outputs: Outputs,
                progress: Any) -> Summary:
    if kw["engine"] != "ray":
        if kw["ray_address"]:
            raise OneLineUsageError("--ray-address needs --engine ray")
        return run_ingest(sources, options, outputs, progress)
    from ingest.ray_engine import RayNotInstalled, require_ray, run_ingest_ray

    try:
        require_ray()
    except RayNotInstalled as exc:
        raise click.ClickException(str(exc)) from exc
    return run_ingest_ray(sources, options, outputs, progress, address=kw["ray_address"],
                          num_cpus=kw["workers"])


def input_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options that say how to read the inputs (shared by every command that reads)."""
    decorators = [
        click.argument("inputs", nargs=-1, required=True, metavar="INPUT..."),
        click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
                     help="Input format; default: from the file name (.jsonl, .csv, .tsv, else text), "
                          "sniffed for stdin."),
        click.option("--delimiter", metavar="REGEX", default=None,
                     help="Regex matched at the start of each line of a text dump that begins an article; "
                          "named groups (id, url, title, date, ...) become fields. "
                          "Default: a line of 5+ '=' with an optional id, or <doc ...> blocks."),
        click.option("--text-field", default="text", show_default=True, help="JSONL/CSV field holding the text."),
        click.option("--id-field", default="id", show_default=True, help="JSONL/CSV field holding the id."),
        click.option("--max-record-bytes", type=click.IntRange(min=1), default=8 * 1024 * 1024,
                     show_default=True, help="Records larger than this are rejected (reason too_large)."),
    ]
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


def cleaning_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    defaults = IngestOptions()
    decorators = [
        click.option("--rules", "rules_files", multiple=True, type=click.Path(dir_okay=False),
                     help="Extra boilerplate rules (TOML, same format as the built-in ingest/rules.toml). Repeatable."),
        click.option("--no-boilerplate", is_flag=True, help="Do not strip boilerplate (rules, content detection, recurring)."),
        click.option("--no-paragraphs", is_flag=True, help="Do not collapse repeated paragraphs inside an article."),
        click.option("--no-recurring", is_flag=True, help="Do not drop paragraphs that recur across the corpus."),
        click.option("--recurring-min", type=click.IntRange(min=2), default=defaults.recurring_min_articles,
                     show_default=True, help="A paragraph in at least this many articles is boilerplate."),
        click.option("--recurring-sample", type=click.IntRange(min=0), default=defaults.recurring_sample,
                     show_default=True, help="Articles read to learn recurring paragraphs (bounds memory)."),
    ]
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


def dedupe_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    d = DedupeConfig()
    decorators = [
        click.option("--no-dedupe", is_flag=True, help="Do not collapse near-duplicate articles."),
        click.option("--shingle", type=click.Choice(["word", "char"]), default=d.shingle, show_default=True,
                     help="Shingle unit."),
        click.option("--ngram", type=click.IntRange(min=1), default=d.ngram, show_default=True,
                     help="Shingle size (words or characters)."),
        click.option("--num-perm", type=click.IntRange(min=16), default=d.num_perm, show_default=True,
                     help="MinHash permutations."),
        click.option("--threshold", type=click.FloatRange(0, 1), default=d.jaccard_threshold, show_default=True,
                     help="Jaccard similarity at which two articles are duplicates."),
        click.option("--containment", type=click.FloatRange(0, 1), default=d.containment_threshold,
                     show_default=True, help="Share of the shorter article inside the longer one at which it is "
                                             "a (short-version) duplicate."),
        click.option("--keep", type=click.Choice(KEEP_POLICIES), default="first", show_default=True,
                     help="Which copy of a cluster is kept."),
    ]
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


def run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    decorators = [
        click.option("--workers", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default="all cores",
                     help="Processes for parsing, cleaning and signatures (this one and N-1 workers). "
                          "Output does not depend on it."),
        click.option("--on-error", type=click.Choice(["skip", "fail"]), default="skip", show_default=True,
                     help="skip: bad records go to the rejects record; fail: stop with exit code 1."),
        click.option("--rejects", type=click.Path(dir_okay=False), default=None,
                     help="Write rejected records (JSONL with file, record, offset, reason, raw)."),
        click.option("--report", type=click.Path(dir_okay=False), default=None,
                     help="Write a JSON summary (counts, removals by reason, options, seconds)."),
        click.option("--tmp-dir", type=click.Path(file_okay=False), default=None,
                     help="Folder for the run's temporary spill files (default: the system's)."),
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="local: worker processes on this machine; ray: a Ray cluster "
                          "(pip install 'thresher[ray]'). Same output either way."),
        click.option("--ray-address", default=None, metavar="ADDRESS",
                     help="With --engine ray: an existing cluster ('auto', 'ray://head:10001'); "
                          "default: a local Ray instance."),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary on stderr."),
    ]
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


def _build_options(kw: dict[str, Any]) -> IngestOptions:
    delimiter = None
    if kw["delimiter"] is not None:
        try:
            delimiter = re.compile(kw["delimiter"])
        except re.error as exc:
            raise click.BadParameter(f"not a valid regex: {exc}", param_hint="--delimiter") from exc
    dedupe = dataclasses.replace(
        DedupeConfig(),
        shingle=kw["shingle"],
        ngram=kw["ngram"],
        num_perm=kw["num_perm"],
        jaccard_threshold=kw["threshold"],
        containment_threshold=kw["containment"],
    )
    return IngestOptions(
        reader=ReaderOptions(delimiter=delimiter, text_field=kw["text_field"], id_field=kw["id_field"],
                             max_record_bytes=kw["max_record_bytes"]),
        rules_files=tuple(kw["rules_files"]),
        boilerplate=not kw["no_boilerplate"],
        collapse_paragraphs=not kw["no_paragraphs"],
        recurring=not kw["no_recurring"],
        recurring_min_articles=kw["recurring_min"],
        recurring_sample=kw["recurring_sample"],
        near_duplicates=not kw["no_dedupe"],
        dedupe=dedupe,
        keep=kw["keep"],
        workers=kw["workers"],
        on_error=kw["on_error"],
        explain_ids=frozenset(kw.get("explain") or ()),
        tmp_dir=kw["tmp_dir"],
        index=kw.get("index"),
        run_id=kw.get("run_id"),
        index_wait=kw.get("index_wait", IngestOptions.index_wait),
    )


def _run(kw: dict[str, Any], outputs: Outputs) -> Summary:
    """Run the pipeline and turn every failure into one line and an honest exit code."""
    quiet_console = kw["quiet"] and not kw.get("explain")
    console = None if quiet_console else stderr_console()  # (rich stays unimported in a quiet run)
    options = _build_options(kw)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        try:
            sources = list(expand_inputs(list(kw["inputs"]), kw["fmt"]))
        except InputError as exc:
            raise OneLineUsageError(str(exc)) from exc
        _check_outputs(kw, outputs)
        with progress_bar(console, not kw["quiet"]) as progress:  # type: ignore[arg-type]
            summary = _run_engine(kw, sources, options, outputs, progress)
        if kw["report"]:
            write_json_atomically(kw["report"], summary.to_report())
    except BrokenPipeError:
        # stdout's reader stopped early (`| head`): stop quietly, as Python's docs advise.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("thresher: interrupted; no output was written under its final name", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Terminated:
        click.echo("thresher: terminated; no output was written under its final name", err=True)
        sys.exit(EXIT_TERMINATED)
    except OutputError as exc:
        if outputs.corpus == "-" or outputs.clusters == "-":
            # stdout itself failed (full disk, closed): nothing more can be written to it, and
            # Python's own flush at exit must not add a second message.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        raise click.ClickException(str(exc)) from exc
    except (BadInput, InputError, AccountingError, IndexStoreError, ValueError, WorkerDied) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not kw["quiet"]:
        print_summary(console, summary)
        if summary.counts["rejected"] and not outputs.rejects:
            console.print(f"[yellow]{summary.counts['rejected']} record(s) rejected; "
                          "--rejects PATH keeps them with reasons[/]")
    if summary.index is not None and not kw["quiet"]:
        ix = summary.index
        console.print(f"index {ix['location']}: run [bold]{ix['run_id']}[/]: {ix['matched']:,} "
                      f"cluster(s) matched earlier runs ({ix['duplicates_of_earlier_runs']:,} dropped), "
                      f"{ix['added']:,} added")
    if kw.get("explain"):
        print_explanations(console, summary, list(kw["explain"]))
    return summary


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="thresher", prog_name="thresher")
def cli() -> None:
    """thresher: turn messy news-article dumps into a clean, deduplicated JSONL corpus."""


@cli.command()
@input_options
@click.option("-o", "--output", default="-", show_default=True,
              help="Corpus JSONL path; '-' writes to stdout, which then carries nothing else.")
@click.option("--duplicates", type=click.Path(dir_okay=False), default=None,
              help="Write one line per dropped duplicate: id, duplicate_of, similarity, containment, cluster.")
@cleaning_options
@dedupe_options
@run_options
@click.option("--explain", multiple=True, metavar="ID",
              help="Show, on stderr, every line removed from article ID and why. Repeatable.")
@index_options
def ingest(**kw: Any) -> None:
    """Read INPUT... (files, folders of .txt files, or - for stdin), strip boilerplate, collapse
    repeated paragraphs and near-duplicate articles, and write a clean JSONL corpus."""
    _run(kw, Outputs(corpus=kw["output"], duplicates=kw["duplicates"], rejects=kw["rejects"]))


@cli.command()
@input_options
@click.option("-o", "--output", default="-", show_default=True,
              help="Where to write {\"id\", \"cluster\"} lines; '-' is stdout.")
@cleaning_options
@dedupe_options
@run_options
def clusters(**kw: Any) -> None:
    """Write the near-duplicate cluster of every article ({"id", "cluster"}, the cluster named by
    its kept article's id) without writing a corpus: inspect before dropping anything."""
    _run(kw, Outputs(corpus=None, clusters=kw["output"], rejects=kw["rejects"]))


cli.add_command(index)


def main() -> None:
    """The console command: `cli`, then an exit that skips the interpreter's final garbage
    collections. Those walk every object still alive (~30 ms after a 50k run, 1% of a
    near-duplicate-only run) and find nothing to do: the outputs are committed and closed
    by then, and the objects are still freed one by one as their references go."""
    try:
        cli()
    finally:
        gc.freeze()
