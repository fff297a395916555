"""The embedded index: one SQLite file, no server.

Why SQLite: one file users can copy, transactions that make a run's addition all-or-nothing
(a SIGKILL mid-way rolls back on the next open), WAL so ``index stats`` reads while a run
writes, and a B-tree on (band, key) that finds candidates without loading the index into
memory.  datasketch's ``MinHashLSH`` with its dict storage would have to be unpickled whole by
every run (~3.5 KB and ~43 us per article in RAM, dedupe/index.py) and rewritten whole after it.

Tables: ``articles`` (id, run, shingle count, 512-byte signature), ``bands`` (band, key, art)
WITHOUT ROWID -- the 28 band keys of ``dedupe.index.band_keys`` per article --, ``runs``,
``meta`` (parameters) and ``merges`` (one row per cluster absorbed into another by a later run:
the absorbed original, the surviving one, the run that merged them, and the absorbed
original's signature for later merge guards).  Articles are never rewritten by a merge: every
query follows ``merges`` from an article's original, so forgetting a run can undo its merges.
A run's articles get consecutive ``art`` numbers inside its one transaction, so ``runs``
records their range and forgetting a run needs no index on ``run``.

Locking: ``BEGIN IMMEDIATE`` takes SQLite's writer lock at query time and keeps it until the
run's articles are committed, so a second local job waits (busy timeout) and queries after the
first has added.  The OS drops the lock when a process dies, and the uncommitted WAL frames
are ignored: a killed run leaves the index as it was.
"""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import time
from itertools import repeat

import numpy as np

from dedupe.index import band_keys
from ingest.index_store import (
    StoredParams,
    Candidates,
    ClusterMerge,
    IndexParams,
    IndexStats,
    IndexStoreError,
    RunInfo,
    OriginalKey,
    check_compatible,
    failpoint,
    follow_merges,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL UNIQUE, created TEXT NOT NULL,
    articles INTEGER NOT NULL, first_art INTEGER, last_art INTEGER, originals INTEGER);
CREATE TABLE IF NOT EXISTS articles(
    art INTEGER PRIMARY KEY, run INTEGER NOT NULL, id TEXT NOT NULL, size INTEGER NOT NULL,
    sig BLOB NOT NULL, original TEXT);
CREATE TABLE IF NOT EXISTS bands(
    band INTEGER NOT NULL, key INTEGER NOT NULL, art INTEGER NOT NULL,
    PRIMARY KEY(band, key, art)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS merges(
    run INTEGER NOT NULL, id TEXT NOT NULL, into_run INTEGER NOT NULL, into_id TEXT NOT NULL,
    by_run INTEGER NOT NULL, size INTEGER NOT NULL, sig BLOB NOT NULL,
    PRIMARY KEY(run, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS merges_into ON merges(into_run, into_id);
"""
_CHUNK = 500  # host parameters per IN (...) query


class SqliteIndex(StoredParams):
    def __init__(self, path: str, wait: float) -> None:
        self.location = path
        self.params: IndexParams | None = None
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise IndexStoreError(f"index {path}: folder {parent!r} does not exist; create it first")
        if os.path.isdir(path):
            raise IndexStoreError(f"index {path}: is a folder; give a file name")
        try:
            self.db = sqlite3.connect(path, timeout=wait, isolation_level=None)
            _use_wal(self.db, path, wait)
            self.db.execute("PRAGMA synchronous=FULL")  # the commit that follows a written corpus must last
            self.db.executescript(_SCHEMA)
            _add_originals_column(self.db)
        except sqlite3.DatabaseError as exc:
            raise IndexStoreError(f"index {path}: not a thresher index ({exc})") from exc
        self._in_txn = False
        self._seq: int | None = None  # this run's addition, once started

    # -- parameters and runs --------------------------------------------------------------

    def stored_params(self) -> IndexParams | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'params'").fetchone()
        return IndexParams.from_json(json.loads(row[0])) if row else None

    def ensure_params(self, params: IndexParams) -> None:
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('params', ?)", (json.dumps(params.to_json()),))
        stored = self.stored_params()
        assert stored is not None
        check_compatible(self.location, stored, params)
        self.params = stored

    def has_run(self, run_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is not None

    # -- the writer section ---------------------------------------------------------------

    def lock(self) -> None:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise IndexStoreError(f"index {self.location}: still locked by another run ({exc}); "
                                  "try again when it has finished") from exc
        self._in_txn = True

    def candidates(self, sigs: np.ndarray, max_bucket: int) -> Candidates:
        params = self._params()
        n = sigs.shape[0]
        if n == 0:
            return Candidates.empty(params.num_perm)
        db = self.db
        db.execute("CREATE TEMP TABLE IF NOT EXISTS q(band INTEGER, key INTEGER, qi INTEGER)")
        db.execute("DELETE FROM q")
        qi = np.arange(n, dtype=np.int64).tolist()
        for b in range(params.bands):
            keys = band_keys(sigs, b, params.rows).view(np.int64).tolist()
            db.executemany("INSERT INTO q VALUES (?, ?, ?)", zip(repeat(b), keys, qi))
        rows = db.execute("SELECT q.rowid, q.qi, b.art FROM q JOIN bands b ON b.band = q.band AND b.key = q.key "
                          "ORDER BY q.rowid, b.art").fetchall()
        db.execute("DELETE FROM q")
        if not rows:
            return Candidates.empty(params.num_perm)
        found_rows = np.array(rows, dtype=np.int64)
        capped = _cap_buckets(found_rows, max_bucket)
        code = np.unique((capped[:, 1] << 32) | capped[:, 2])  # (query, art) pairs, once each
        pairs = np.stack([code >> 32, code & 0xFFFFFFFF], axis=1)
        arts = np.unique(pairs[:, 1]).tolist()
        found: dict[int, tuple[int, str, int, bytes, str]] = {}
        for lo in range(0, len(arts), _CHUNK):
            part = arts[lo : lo + _CHUNK]
            marks = ",".join("?" * len(part))
            for art, run, aid, size, sig, original in db.execute(
                    f"SELECT art, run, id, size, sig, original FROM articles WHERE art IN ({marks})", part):
                found[art] = (run, aid, size, sig, original or aid)
        run_ids = dict(db.execute("SELECT seq, run_id FROM runs").fetchall())
        keep = [k for k, art in enumerate(pairs[:, 1].tolist()) if art in found]
        pairs = pairs[keep]
        info = [found[a] for a in pairs[:, 1].tolist()]
        seqs = np.array([i[0] for i in info], dtype=np.int64)
        runs = [run_ids[i[0]] for i in info]
        return follow_merges(Candidates(
            query=pairs[:, 0].copy(),
            ids=[i[1] for i in info],
            originals=[i[4] for i in info],
            runs=runs,
            seqs=seqs,
            sigs=np.frombuffer(b"".join(i[3] for i in info), dtype="<u4").reshape(len(info), params.num_perm)
            if info else np.empty((0, params.num_perm), np.uint32),
            sizes=np.array([i[2] for i in info], dtype=np.int64),
            original_seqs=seqs.copy(),
            original_runs=list(runs),
        ), self.merged_into, run_ids)

    def add(self, run_id: str, ids: list[str], originals: list[str | None], sigs: np.ndarray,
            sizes: np.ndarray) -> None:
        if not self._in_txn:
            raise RuntimeError("add() outside the writer section")
        if self.has_run(run_id):
            raise IndexStoreError(f"index {self.location}: run {run_id!r} is already there; "
                                  "choose another --run-id or forget that run first")
        params = self._params()
        db = self.db
        created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        seq = db.execute("INSERT INTO runs(run_id, created, articles, originals) VALUES (?, ?, ?, ?)",
                         (run_id, created, len(ids), sum(o is None for o in originals))).lastrowid
        self._seq = seq
        first = db.execute("SELECT COALESCE(MAX(art), 0) + 1 FROM articles").fetchone()[0]
        arts = np.arange(first, first + len(ids), dtype=np.int64)
        sigs = np.ascontiguousarray(sigs, dtype="<u4")
        db.executemany("INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?)",
                       zip(arts.tolist(), repeat(seq), ids, sizes.tolist(), (s.tobytes() for s in sigs),
                           originals))
        failpoint("index-add")
        for b in range(params.bands):
            keys = band_keys(sigs, b, params.rows).view(np.int64)
            order = np.argsort(keys, kind="stable")  # B-tree order: far fewer page splits
            db.executemany("INSERT INTO bands VALUES (?, ?, ?)",
                           zip(repeat(b), keys[order].tolist(), arts[order].tolist()))
        db.execute("UPDATE runs SET first_art = ?, last_art = ? WHERE seq = ?",
                   (first, first + len(ids) - 1, seq))

    # -- merges ---------------------------------------------------------------------------

    def merged_into(self, keys: list[OriginalKey]) -> dict[OriginalKey, OriginalKey]:
        if not keys or self.db.execute("SELECT NOT EXISTS (SELECT 1 FROM merges)").fetchone()[0]:
            return {}
        out: dict[OriginalKey, OriginalKey] = {}
        for key in keys:  # point lookups on the primary key: a few microseconds each
            row = self.db.execute("SELECT into_run, into_id FROM merges WHERE run = ? AND id = ?",
                                  key).fetchone()
            if row is not None:
                out[key] = (int(row[0]), str(row[1]))
        return out

    def merged_members(self, key: OriginalKey) -> list[ClusterMerge]:
        return [ClusterMerge((run, aid), key, size, np.frombuffer(sig, dtype="<u4"))
                for run, aid, size, sig in self.db.execute(
                    "SELECT run, id, size, sig FROM merges WHERE into_run = ? AND into_id = ? "
                    "ORDER BY by_run, run, id", key)]

    def record_merges(self, merges: list[ClusterMerge]) -> None:
        """Inside the run's transaction, after ``add``: committed with its articles or not at all."""
        if not self._in_txn or self._seq is None:
            raise RuntimeError("record_merges() before add()")
        self.db.executemany(
            "INSERT INTO merges VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(m.absorbed[0], m.absorbed[1], m.into[0], m.into[1], self._seq, int(m.size),
              np.ascontiguousarray(m.signature, dtype="<u4").tobytes()) for m in merges])

    def commit(self) -> None:
        self._seq = None
        if self._in_txn:
            self.db.execute("COMMIT")
            self._in_txn = False

    def rollback(self) -> None:
        self._seq = None
        if self._in_txn:
            self._in_txn = False
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.OperationalError:
                pass  # SQLite already rolled back (e.g. after an I/O error)

    # -- maintenance ----------------------------------------------------------------------

    def stats(self) -> IndexStats:
        runs = [RunInfo(r, s, a, c) for s, r, a, c in
                self.db.execute("SELECT seq, run_id, articles, created FROM runs ORDER BY seq")]
        size = sum(os.path.getsize(p) for p in (self.location, self.location + "-wal")
                   if os.path.exists(p))
        # runs added before `originals` was recorded are counted from their articles
        originals = self.db.execute(
            "SELECT COALESCE(SUM(COALESCE(originals, (SELECT COUNT(*) FROM articles a WHERE a.art "
            "BETWEEN r.first_art AND r.last_art AND a.original IS NULL))), 0) FROM runs r").fetchone()[0]
        merged = self.db.execute("SELECT COUNT(*) FROM merges").fetchone()[0]
        return IndexStats(self.location, "sqlite", sum(r.articles for r in runs), runs,
                          self.stored_params(), size, clusters=originals - merged, merged_clusters=merged)

    def forget(self, run_id: str) -> int:
        self.lock()
        try:
            row = self.db.execute("SELECT seq, first_art, last_art FROM runs WHERE run_id = ?",
                                  (run_id,)).fetchone()
            if row is None:
                raise IndexStoreError(f"index {self.location}: no run {run_id!r} "
                                      "(thresher index stats lists the runs)")
            seq, first, last = row
            params = self._params()
            removed = 0
            if first is not None:
                cur = self.db.execute("SELECT art, sig FROM articles WHERE art BETWEEN ? AND ? ORDER BY art",
                                      (first, last))
                while batch := cur.fetchmany(10_000):
                    arts = [a for a, _ in batch]
                    sigs = np.frombuffer(b"".join(s for _, s in batch), dtype="<u4").reshape(len(batch), -1)
                    for b in range(params.bands):
                        keys = band_keys(sigs, b, params.rows).view(np.int64).tolist()
                        self.db.executemany("DELETE FROM bands WHERE band = ? AND key = ? AND art = ?",
                                            zip(repeat(b), keys, arts))
                    removed += len(batch)
                self.db.execute("DELETE FROM articles WHERE art BETWEEN ? AND ?", (first, last))
            # merges it made, and merges of or into its originals, go with it: the clusters they
            # joined are separate again
            self.db.execute("DELETE FROM merges WHERE run = ? OR into_run = ? OR by_run = ?", (seq, seq, seq))
            self.db.execute("DELETE FROM runs WHERE seq = ?", (seq,))
            self.commit()
            return removed
        finally:
            self.rollback()

    def close(self) -> None:
        self.rollback()
        self.db.close()


def _use_wal(db: sqlite3.Connection, path: str, wait: float) -> None:
    """Put the file in WAL mode (it stays so: later opens find it done). Turning it on needs the
    file to itself, and SQLite does not wait for that with the busy timeout: two jobs opening a
    new index at once, one still creating it, made the other fail at once with "database is
    locked". So it is retried here, up to `wait` seconds."""
    deadline = time.monotonic() + wait
    delay = 0.005
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            if db.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() == "wal":
                return  # (a switch it cannot make now returns the old mode, or raises)
            why = "another connection is using it"
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            why = str(exc)
        if time.monotonic() >= deadline:
            raise IndexStoreError(f"index {path}: still locked by another run ({why}); "
                                  "try again when it has finished")
        time.sleep(delay)
        delay = min(2 * delay, 0.1)


def _add_originals_column(db: sqlite3.Connection) -> None:
    """Indexes created before ``runs.originals`` existed get the column (NULL for old runs,
    which ``stats`` counts from their articles).  Two processes may race here: the loser's
    "duplicate column" error means the column is there."""
    if any(row[1] == "originals" for row in db.execute("PRAGMA table_info(runs)")):
        return
    try:
        db.execute("ALTER TABLE runs ADD COLUMN originals INTEGER")
    except sqlite3.OperationalError as exc:
        if "duplicate column" not in str(exc):
            raise


def _cap_buckets(rows: np.ndarray, max_bucket: int) -> np.ndarray:
    """(probe, query, art) rows, grouped by probe (one query band), arts ascending: keep each
    bucket's first max_bucket articles, as the in-run index pairs a huge bucket only with its
    first members (a flood costs O(max_bucket) per query, not O(bucket))."""
    if rows.shape[0] <= max_bucket:
        return rows
    probe = rows[:, 0]
    start = np.ones(probe.size, dtype=bool)
    start[1:] = probe[1:] != probe[:-1]
    first = np.flatnonzero(start)
    pos = np.arange(probe.size) - first[np.cumsum(start) - 1]
    return rows[pos < max_bucket]
