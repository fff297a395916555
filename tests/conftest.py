"""Shared fixtures: the CLI runner, and the real material in ../shared when a checkout has it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA = ROOT / "data"


def needs_shared(*parts: str) -> Path:
    """The path under ../shared, or skip the test: users' checkouts do not have it."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not present (evaluation material lives outside the repo)")
    return path


def run(*args: str, input: bytes | str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def read_jsonl(path: Path | str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line]


def parse_stdout(result: Result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line]


def word_pairs_reference(texts: list[str], threshold: float, pre: float) -> list[tuple[int, int]]:
    """The definition the C kernel `word_pairs` implements: the (k, m), m < k, of paragraphs of
    comparable lengths whose word-set Jaccard is >= pre (exact sets)."""
    out = []
    for k in range(len(texts)):
        for m in range(k):
            a, b = len(texts[k]), len(texts[m])
            if min(a, b) < threshold * max(a, b):
                continue
            wk, wm = set(texts[k].split(" ")) - {""}, set(texts[m].split(" ")) - {""}
            inter = len(wk & wm)
            if inter < pre * (len(wk) + len(wm) - inter):
                continue
            out.append((k, m))
    return out
