"""Cost of the persistent index per article: size, addition time, query time (medians of N).

    python scripts/bench_index.py CORPUS.jsonl --index /tmp/bench.db [--index redis://...] [--repeat 3]

Signs the texts of CORPUS (field "text", no cleaning: the index's cost does not depend on it),
then per repeat, on a fresh index: adds the first half as one run, queries the second half
against it (candidates + verification, as `ingest --index` does), adds the second half, and
reads the size of the whole index.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import orjson

from dedupe.config import DedupeConfig
from dedupe.minhash import signatures
from dedupe.shingles import shingle_hashes_many
from ingest.index_store import best_matches, open_index, params_for


def sign(path: str, limit: int, config: DedupeConfig) -> tuple[list[str], np.ndarray, np.ndarray]:
    ids, texts = [], []
    with open(path, "rb") as fh:
        for line in fh:
            row = orjson.loads(line)
            ids.append(str(row.get("id", len(ids))))
            texts.append(row["text"])
            if len(ids) >= limit:
                break
    sigs, sizes = [], []
    for lo in range(0, len(texts), 2000):
        sh = shingle_hashes_many(texts[lo : lo + 2000], config)
        sigs.append(signatures(sh, config))
        sizes.extend(len(s) for s in sh)
    return ids, np.concatenate(sigs), np.array(sizes, dtype=np.int64)


def fresh(location: str) -> str:
    if location.startswith("redis://"):
        sep = "&" if "?" in location else "?"
        return f"{location}{sep}prefix=bench{time.time_ns()}"
    import os

    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(location + suffix):
            os.remove(location + suffix)
    return location


def once(location: str, ids: list[str], sigs: np.ndarray, sizes: np.ndarray, config: DedupeConfig) -> dict[str, float]:
    half = len(ids) // 2
    store = open_index(fresh(location))
    store.ensure_params(params_for(config))
    t = time.perf_counter()
    store.lock()
    store.add("first", ids[:half], [None] * half, sigs[:half], sizes[:half])
    store.commit()
    add = (time.perf_counter() - t) / half
    t = time.perf_counter()
    store.lock()
    cands = store.candidates(sigs[half:], config.max_bucket)
    found = best_matches(sigs[half:], sizes[half:], cands, config)
    store.rollback()
    query = (time.perf_counter() - t) / (len(ids) - half)
    store.lock()
    store.add("second", ids[half:], [None] * (len(ids) - half), sigs[half:], sizes[half:])
    store.commit()
    stats = store.stats()
    store.close()
    return {"add_us": add * 1e6, "query_us": query * 1e6, "bytes_per_article": stats.bytes / stats.articles,
            "matched": len(found), "candidates": int(cands.query.size)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("--index", action="append", required=True)
    ap.add_argument("--limit", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    config = DedupeConfig()
    ids, sigs, sizes = sign(args.corpus, args.limit, config)
    print(f"{len(ids)} articles signed")
    for location in args.index:
        runs = [once(location, ids, sigs, sizes, config) for _ in range(args.repeat)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"{location.split('?')[0]}: size {med['bytes_per_article']:,.0f} B/article, "
              f"add {med['add_us']:,.0f} us/article, query {med['query_us']:,.0f} us/article "
              f"(median of {args.repeat}; {med['candidates']:,.0f} candidate pairs, {med['matched']:,.0f} matched)")


if __name__ == "__main__":
    main()
