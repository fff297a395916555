"""Invariants of `thresher ingest`, checked with hypothesis on generated dumps.

The dumps mix invented articles with random boilerplate lines, repeated paragraphs, near and
exact copies of earlier articles, and corruption (bad bytes, NULs, CRLF, a BOM, empty
records). Whatever the mix:

- every record ends in exactly one place: read = kept + duplicates + rejected, and each
  count matches its file;
- two runs give byte-identical outputs, and so do --workers 1 and --workers 2;
- running thresher on its own corpus changes no id and no text (idempotence);
- no corpus article is empty;
- every duplicate's id and `duplicate_of`, and every id a corpus line lists under
  `duplicates`, is a record of the run.

Example counts are bounded so the file runs in about a minute on two cores.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import run

BOILERPLATE = [
    "Share this article",
    "Follow us on Twitter and Facebook",
    "Advertisement",
    "Subscribe to our newsletter for the latest news",
    "Read more: related stories",
    "Click here to leave a comment",
    "All rights reserved.",
    "Home › News › Local",
    "Photo: staff photographer",
    "Sign up for breaking news alerts",
]
SYLLABLES = "ba ker mo lin ta ven dor sil ra pen hu gat lo mir ne fos".split()
DAYS = ["Monday", "Tuesday", "Friday", "Sunday"]

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))


def paragraphs(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(
            f"The {_word(rng)} board in {_word(rng).title()} said on {rng.choice(DAYS)} that the "
            f"{_word(rng)} and the {_word(rng)} would be {_word(rng)}ed before the {_word(rng)} season, "
            f"after {rng.randint(10, 900)} residents asked about the {_word(rng)} {_word(rng)}."
            for _ in range(rng.randint(1, 3))
        )
        for _ in range(n)
    ]


@st.composite
def records(draw: st.DrawFn, min_size: int = 1, max_size: int = 12) -> list[bytes]:
    """The bodies of a dump's records, as bytes (the ids are added by `dump_bytes`)."""
    n = draw(st.integers(min_size, max_size))
    bodies: list[list[str]] = []
    out: list[bytes] = []
    for _ in range(n):
        kind = draw(st.sampled_from(["fresh", "fresh", "fresh", "near_copy", "exact_copy", "empty", "boilerplate"]))
        if kind in ("near_copy", "exact_copy") and bodies:
            paras = list(draw(st.sampled_from(bodies)))
            if kind == "near_copy":
                i = draw(st.integers(0, len(paras) - 1))
                words = paras[i].split()
                words[draw(st.integers(0, len(words) - 1))] = "changed"
                paras[i] = " ".join(words)
        elif kind == "empty":
            out.append(draw(st.sampled_from([b"", b"\n", b"   \n\n"])))
            continue
        elif kind == "boilerplate":
            paras = draw(st.lists(st.sampled_from(BOILERPLATE), min_size=1, max_size=3))
        else:
            paras = paragraphs(draw(st.integers(0, 10**6)), draw(st.integers(1, 5)))
        if len(paras) > 1 and draw(st.booleans()):  # a repeated paragraph
            paras.insert(draw(st.integers(0, len(paras))), draw(st.sampled_from(paras)))
        lines = list(paras)
        for _ in range(draw(st.integers(0, 3))):  # boilerplate lines anywhere
            lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(BOILERPLATE)))
        bodies.append(paras)
        blank = draw(st.booleans())  # paragraphs separated by blank lines, or one per line
        body = ("\n\n" if blank else "\n").join(lines).encode()
        corruption = draw(st.sampled_from(["none", "none", "bad_byte", "nul", "crlf"]))
        if corruption == "bad_byte":
            at = draw(st.integers(0, len(body)))
            body = body[:at] + draw(st.sampled_from([b"\xff", b"\xe9", b"\xc3", b"\x80\x80"])) + body[at:]
        elif corruption == "nul":
            at = draw(st.integers(0, len(body)))
            body = body[:at] + b"\x00" + body[at:]
        elif corruption == "crlf":
            body = body.replace(b"\n", b"\r\n")
        out.append(body)
    return out


def dump_bytes(bodies: list[bytes], bom: bool = False) -> bytes:
    data = b"".join(f"===== r{i}\n".encode() + body + b"\n" for i, body in enumerate(bodies))
    return (b"\xef\xbb\xbf" if bom else b"") + data


def ingest(folder: Path, inputs: list[Path], name: str, *extra: str) -> dict[str, bytes]:
    paths = {k: folder / f"{name}.{k}.json{'' if k == 'report' else 'l'}" for k in ("corpus", "dups", "rejects", "report")}
    result = run("ingest", *map(str, inputs), "-o", str(paths["corpus"]), "--duplicates", str(paths["dups"]),
                 "--rejects", str(paths["rejects"]), "--report", str(paths["report"]), "-q", *extra)
    assert result.exit_code == 0, result.output
    return {k: p.read_bytes() for k, p in paths.items()}


def lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines()]


def check_invariants(out: dict[str, bytes], n_records: int) -> None:
    corpus, dups, rejects = lines(out["corpus"]), lines(out["dups"]), lines(out["rejects"])
    counts = json.loads(out["report"])["counts"]
    assert counts["read"] == counts["kept"] + counts["duplicates"] + counts["rejected"]
    assert counts["read"] == n_records
    assert (counts["kept"], counts["duplicates"], counts["rejected"]) == (len(corpus), len(dups), len(rejects))
    assert all(r["text"].strip() for r in corpus)
    kept_ids = [r["id"] for r in corpus]
    dup_ids = [d["id"] for d in dups]
    reject_ids = [r["id"] for r in rejects if r["id"] is not None]
    every = kept_ids + dup_ids + reject_ids
    assert len(every) == len(set(every))  # one place each
    assert set(every) == {f"r{i}" for i in range(n_records)}
    for d in dups:
        assert d["duplicate_of"] in kept_ids
    assert sorted(i for r in corpus for i in r["duplicates"]) == sorted(dup_ids)
    for r in corpus:
        for i in r["duplicates"]:
            assert next(d for d in dups if d["id"] == i)["duplicate_of"] == r["id"]


@SETTINGS
@given(bodies=records(), bom=st.booleans())
def test_accounting_determinism_and_idempotence(bodies: list[bytes], bom: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dump = folder / "dump.txt"
        dump.write_bytes(dump_bytes(bodies, bom))
        first = ingest(folder, [dump], "a", "--workers", "1")
        check_invariants(first, len(bodies))
        second = ingest(folder, [dump], "b", "--workers", "1")
        assert {k: v for k, v in second.items() if k != "report"} == {k: v for k, v in first.items() if k != "report"}

        # Idempotence: the corpus, read back as JSONL, comes out with the same ids and texts.
        corpus = folder / "a.corpus.jsonl"
        again = ingest(folder, [corpus], "c", "--workers", "1")
        before = [(r["id"], r["text"]) for r in lines(first["corpus"])]
        assert [(r["id"], r["text"]) for r in lines(again["corpus"])] == before
        assert lines(again["dups"]) == []
        if before:
            assert lines(again["rejects"]) == []
        else:  # an empty corpus is an empty input, and says so
            assert [r["reason"] for r in lines(again["rejects"])] == ["empty_file"]


@settings(max_examples=3, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bodies=records(min_size=5, max_size=12), copies=st.integers(30, 40))
def test_workers_do_not_change_the_output(bodies: list[bytes], copies: int) -> None:
    """Over 128 records (one chunk), so --workers 2 really runs a pool."""
    many = [b.replace(b"board", f"board{k}".encode()) if k % 3 else b for k in range(copies) for b in bodies]
    assert len(many) > 128
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dump = folder / "dump.txt"
        dump.write_bytes(dump_bytes(many))
        one = ingest(folder, [dump], "one", "--workers", "1")
        two = ingest(folder, [dump], "two", "--workers", "2")
        assert {k: v for k, v in two.items() if k != "report"} == {k: v for k, v in one.items() if k != "report"}
        check_invariants(one, len(many))
        report_one, report_two = json.loads(one["report"]), json.loads(two["report"])
        for report in (report_one, report_two):
            report.pop("seconds")
            report.pop("stages")
        assert report_one == report_two
