"""Micro-benchmarks of the near-duplicate engine (``dedupe/``), per stage, in µs per article.

    .venv/bin/python scripts/bench_dedupe.py /tmp/bench50k/corpus.jsonl [--docs 20000] [--repeat 3]

The corpus is ``../shared/bench/gen_corpus.py --docs 50000 --out /tmp/bench50k``.  Articles are
split into paragraphs at blank lines, as the pipeline does.  Every stage runs ``--repeat`` times
and the median is printed (one core, no worker processes):

- ``shingle``: ``shingle_hashes_many`` over the article texts (normalisation included), batched
  in chunks of ``--batch`` articles as the pipeline's workers do;
- ``signatures``: ``signatures`` over those shingle sets, same batches;
- ``finder``: ``NearDuplicateFinder.add`` for every article, then ``finish``; the peak of
  Python-traced memory (tracemalloc, numpy included) during ``finish`` is reported per article;
- ``collapse``: ``collapse_repeated_paragraphs`` per article;
- ``observe``: ``RecurringParagraphs.observe`` per article (the learning sample), ``freeze``
  once; ``mask``: ``recurring_mask`` per article afterwards.

``--save-ref FILE`` stores every stage's output; ``--check-ref FILE`` compares against it bit
for bit (use it to prove an optimisation changes nothing).
"""

from __future__ import annotations

import argparse
import gc
import pickle
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dedupe.clusters import NearDuplicateFinder  # noqa: E402
from dedupe.config import DedupeConfig  # noqa: E402
from dedupe.minhash import signatures  # noqa: E402
from dedupe.paragraphs import collapse_repeated_paragraphs  # noqa: E402
from dedupe.recurring import RecurringParagraphs  # noqa: E402
from dedupe.shingles import shingle_hashes_many  # noqa: E402


def load(path: str, n: int) -> list[list[str]]:
    out = []
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            text = orjson.loads(line)["text"]
            out.append([p.strip() for p in text.split("\n\n") if p.strip()])
            if len(out) >= n:
                break
    return out


def timed(fn, repeat: int):
    times = []
    result = None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus")
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128, help="articles per shingle/signature call")
    ap.add_argument("--stages", default="shingle,signatures,finder,collapse,observe,mask")
    ap.add_argument("--finder-docs", type=int, default=None,
                    help="articles for the finder stage (default --docs); e.g. 50000 for memory")
    ap.add_argument("--save-ref")
    ap.add_argument("--check-ref")
    args = ap.parse_args()
    stages = set(args.stages.split(","))
    nf = args.finder_docs or args.docs
    arts = load(args.corpus, max(args.docs, nf))
    fin_arts = arts[:nf]
    arts = arts[: args.docs]
    n = len(arts)
    texts = ["\n\n".join(p) for p in arts]
    words = sum(len(t.split()) for t in texts) / n
    paras = sum(len(p) for p in arts) / n
    print(f"# {n} articles, {words:.0f} words and {paras:.1f} paragraphs each; batch {args.batch}")
    cfg = DedupeConfig()
    ref: dict[str, object] = {}
    res: dict[str, float] = {}
    B = args.batch

    def batches(items):
        return [items[i : i + B] for i in range(0, len(items), B)]

    tb = batches(texts)
    sh = None
    if stages & {"shingle", "signatures", "finder"}:
        t, sh = timed(lambda: [s for b in tb for s in shingle_hashes_many(b, cfg)], args.repeat)
        res["shingle"] = t
        ref["shingle"] = sh
    sigs = None
    if stages & {"signatures", "finder"}:
        sb = batches(sh)
        t, sigs = timed(lambda: np.concatenate([signatures(b, cfg) for b in sb]), args.repeat)
        res["signatures"] = t
        ref["signatures"] = sigs
    if "finder" in stages:
        if nf != n:
            ftexts = ["\n\n".join(p) for p in fin_arts]
            fsh = [s for b in batches(ftexts) for s in shingle_hashes_many(b, cfg)]
            fsig = np.concatenate([signatures(b, cfg) for b in batches(fsh)])
        else:
            ftexts, fsh, fsig = texts, sh, sigs

        def run_add():
            f = NearDuplicateFinder(cfg)
            for t_, s_, g_ in zip(ftexts, fsh, fsig):
                f.add(g_, s_, length=len(t_))
            return f

        t_add, finder = timed(run_add, args.repeat)
        t_fin, clusters = timed(lambda: finder.finish(), args.repeat)
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        finder.finish()
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        res["finder add"] = t_add * n / nf
        res["finder finish"] = t_fin * n / nf
        print(f"# finder on {nf} articles: add {t_add / nf * 1e6:.2f} µs, finish "
              f"{t_fin / nf * 1e6:.2f} µs/article; finish peak traced memory "
              f"{peak / nf:.0f} B/article ({peak / 2**20:.1f} MiB); "
              f"clusters {len(clusters.groups())}, dropped {int((~clusters.kept).sum())}")
        ref["clusters"] = (clusters.cluster, clusters.kept,
                           sorted((k, v.kept, v.cluster, v.cluster_size, v.similarity, v.containment)
                                  for k, v in clusters.links.items()))
    if "collapse" in stages:
        t, out = timed(lambda: [collapse_repeated_paragraphs(p) for p in arts], args.repeat)
        res["collapse"] = t
        ref["collapse"] = out
        print(f"# collapse dropped {sum(len(d) for _, d in out)} paragraphs in "
              f"{sum(bool(d) for _, d in out)} articles")
    rec = None
    if stages & {"observe", "mask"}:
        def run_observe():
            r = RecurringParagraphs()
            for p in arts:
                r.observe(p)
            return r

        t, rec = timed(run_observe, args.repeat)
        res["observe"] = t
        t0 = time.perf_counter()
        rec.freeze()
        print(f"# freeze {time.perf_counter() - t0:.2f} s, recurring {rec.recurring_count}")
    if "mask" in stages:
        t, masks = timed(lambda: [rec.recurring_mask(p) for p in arts], args.repeat)
        res["mask"] = t
        ref["mask"] = masks
        print(f"# mask: {sum(sum(m) for m in masks)} recurring paragraphs")
    for k, v in res.items():
        print(f"{k:14s} {v / n * 1e6:9.2f} µs/article  {n / v:10.0f} articles/s")
    if args.save_ref:
        with open(args.save_ref, "wb") as f:
            pickle.dump(ref, f)
    if args.check_ref:
        with open(args.check_ref, "rb") as f:
            old = pickle.load(f)
        bad = []
        for k, v in ref.items():
            if k not in old:
                continue
            if not _equal(v, old[k]):
                bad.append(k)
        print("# reference check:", "IDENTICAL" if not bad else f"DIFFERENT in {bad}")
        if bad:
            sys.exit(1)


def _equal(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and bool(np.array_equal(a, b)))
    if isinstance(a, (list, tuple)):
        return (isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(_equal(x, y) for x, y in zip(a, b)))
    return a == b


if __name__ == "__main__":
    main()
