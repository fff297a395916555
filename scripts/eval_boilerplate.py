#!/usr/bin/env python3
"""Run the boilerplate stripper over a multi-page text dump for scoring.

    python scripts/eval_boilerplate.py DUMP OUT.jsonl [--rules FILE ...] [--no-content]
    python3 /work/shared/eval/boilerplate/score.py truth.jsonl OUT.jsonl --quiet

DUMP holds pages each starting with a line ``<<<DOC id=ID url=URL>>>``. Each page goes through
split_paragraphs -> strip_boilerplate(load_rules(), url=url) and OUT gets one JSON line
``{"id", "text"}`` with the kept paragraphs joined by blank lines.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.rules import load_rules  # noqa: E402
from ingest.segment import split_paragraphs  # noqa: E402
from ingest.strip import strip_boilerplate  # noqa: E402

_DELIM_RE = re.compile(r"<<<DOC id=(\S+) url=(\S*)>>>")


def iter_pages(path: str) -> Iterator[tuple[str, str, str]]:
    """Yield (id, url, text) per page of a dump."""
    cur: tuple[str, str] | None = None
    buf: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = _DELIM_RE.fullmatch(line.rstrip("\n"))
            if m:
                if cur is not None:
                    yield cur[0], cur[1], "".join(buf)
                cur, buf = (m.group(1), m.group(2)), []
            elif cur is not None:
                buf.append(line)
    if cur is not None:
        yield cur[0], cur[1], "".join(buf)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dump")
    ap.add_argument("out")
    ap.add_argument("--rules", action="append", default=[], help="extra rule file(s)")
    ap.add_argument("--no-content", action="store_true", help="rules only")
    args = ap.parse_args(argv)

    rules = load_rules(args.rules)
    pages = list(iter_pages(args.dump))
    t0 = time.perf_counter()
    rows = []
    for doc_id, url, text in pages:
        res = strip_boilerplate(split_paragraphs(text), rules, url=url or None,
                                detect_content=not args.no_content)
        rows.append({"id": doc_id, "text": "\n\n".join(res.paragraphs)})
    dt = time.perf_counter() - t0
    with open(args.out, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} pages in {dt:.3f}s ({len(rows) / max(dt, 1e-9):.0f} pages/s)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
