#!/usr/bin/env python3
"""Run thresher's near-duplicate detection over {"id","text"} JSONL and write {"id","cluster"}.

    scripts/eval_neardup.py DOCS.jsonl OUT.jsonl [--units lines|paragraphs] [--no-recurring]
        [--exact] [--keep first] [--jaccard T] [--containment T] [--candidate T] ...

Mimics the pipeline: recurring units (outlet headers/footers) learned over the whole file with
RecurringParagraphs are dropped, repeated paragraphs inside an article are collapsed, then
shingles -> signatures -> NearDuplicateFinder.  Score with
    python3 /work/shared/eval/neardup/score.py GOLD OUT.jsonl --pairs PAIRS
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dedupe.clusters import NearDuplicateFinder  # noqa: E402
from dedupe.config import DedupeConfig  # noqa: E402
from dedupe.minhash import signatures  # noqa: E402
from dedupe.paragraphs import collapse_repeated_paragraphs  # noqa: E402
from dedupe.recurring import RecurringParagraphs  # noqa: E402
from dedupe.shingles import shingle_hashes_many  # noqa: E402

_BLANK = re.compile(r"\n\s*\n")


def split_units(text: str, units: str) -> list[str]:
    if units == "lines":
        return [ln for ln in text.splitlines() if ln.strip()]
    return [p for p in _BLANK.split(text) if p.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("docs")
    ap.add_argument("out")
    ap.add_argument("--units", choices=("lines", "paragraphs"), default="lines",
                    help="unit of recurring-boilerplate removal (default lines: outlet headers "
                         "and footers are lines inside the first/last paragraph)")
    ap.add_argument("--no-recurring", action="store_true")
    ap.add_argument("--no-collapse", action="store_true")
    ap.add_argument("--min-articles", type=int, default=None)
    ap.add_argument("--exact", action="store_true", help="verify with exact shingle sets")
    ap.add_argument("--keep", default="first")
    ap.add_argument("--dump-edges", help="write candidate similarities here (analysis)")
    for f in dataclasses.fields(DedupeConfig):
        ap.add_argument("--" + f.name.replace("_", "-"), type=type(f.default) if f.default is not None else str,
                        default=None)
    args = ap.parse_args()
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(DedupeConfig)
                 if getattr(args, f.name) is not None}
    config = DedupeConfig(**overrides)

    docs = [orjson.loads(line) for line in open(args.docs, "rb") if line.strip()]
    t0 = time.perf_counter()
    units = [split_units(d["text"], args.units) for d in docs]
    dropped = 0
    if not args.no_recurring:
        kw = {} if args.min_articles is None else {"min_articles": args.min_articles}
        rec = RecurringParagraphs(**kw)
        for u in units:
            rec.observe(u)
        rec.freeze()
        new_units = []
        for u in units:
            mask = rec.recurring_mask(u)
            keep = [p for p, m in zip(u, mask) if not m]
            dropped += len(u) - len(keep)
            new_units.append(keep)
        units = new_units
    texts = []
    for d, u in zip(docs, units):
        if args.units == "lines":
            paras = [p for p in _BLANK.split("\n".join(u)) if p.strip()] if u else []
            # lines were filtered; rebuild paragraphs from the original blank-line structure
            kept = set(u)
            paras = []
            for p in _BLANK.split(d["text"]):
                lines = [ln for ln in p.splitlines() if ln.strip() and ln in kept]
                if lines:
                    paras.append("\n".join(lines))
        else:
            paras = u
        if not args.no_collapse:
            paras, _ = collapse_repeated_paragraphs(paras)
        texts.append("\n\n".join(paras))
    t1 = time.perf_counter()
    shingles = shingle_hashes_many(texts, config)
    sigs = signatures(shingles, config)
    t2 = time.perf_counter()
    finder = NearDuplicateFinder(config, shingle_store="memory" if args.exact else None)
    for t, s, g in zip(texts, shingles, sigs):
        finder.add(g, s, length=len(t))
    res = finder.finish(keep=args.keep)
    t3 = time.perf_counter()
    with open(args.out, "wb") as f:
        for d, c in zip(docs, res.cluster.tolist()):
            f.write(orjson.dumps({"id": d["id"], "cluster": docs[c]["id"]}) + b"\n")
    print(f"# {len(docs)} docs, recurring units dropped {dropped}, clusters {len(set(res.cluster.tolist()))}, "
          f"prep {t1 - t0:.2f}s shingle+sign {t2 - t1:.2f}s finder {t3 - t2:.2f}s  config {config}",
          file=sys.stderr)
    if args.dump_edges:
        _dump_edges(args.dump_edges, docs, shingles, sigs, config)


def _dump_edges(path, docs, shingles, sigs, config) -> None:
    """All LSH candidate pairs with exact and estimated Jaccard/containment (analysis only)."""
    import numpy as np
    from dedupe.clusters import containment_from_jaccard, exact_similarity
    from dedupe.index import band_keys, candidate_pairs, lsh_params
    b, r = lsh_params(config.candidate_threshold, config.num_perm)
    pairs = candidate_pairs([band_keys(sigs, k, r) for k in range(b)], config.max_bucket)
    sizes = np.array([len(s) for s in shingles])
    with open(path, "wb") as f:
        for i, j in pairs.tolist():
            je, ce = exact_similarity(shingles[i], shingles[j])
            est = float(np.mean(sigs[i] == sigs[j]))
            cest = float(containment_from_jaccard(np.array(est), sizes[i], sizes[j]))
            f.write(orjson.dumps({"a": docs[i]["id"], "b": docs[j]["id"], "j": je, "c": ce,
                                  "j_est": est, "c_est": cest, "na": int(sizes[i]),
                                  "nb": int(sizes[j])}) + b"\n")


if __name__ == "__main__":
    main()
