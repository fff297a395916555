"""The shared index: Redis, so jobs on one machine or many dedupe against each other.

The LSH band tables are datasketch's own Redis storage (``MinHashLSH(storage_config={"type":
"redis", ...})``, same bands/rows as ``dedupe.index``); thresher adds plain Redis keys beside
them, all under one prefix (``?prefix=NAME`` in the URL, default ``thresher``):

  PREFIX:params        the index parameters (JSON; SET NX by the first run)
  PREFIX:runs          hash run id -> {seq, articles, created}: the *committed* runs
  PREFIX:seq           counter giving each addition its sequence number
  PREFIX:pending       hash seq -> run id: additions started but not committed
  PREFIX:arts:SEQ      hash article id -> shingle count, signature, original's id; one per run
  PREFIX:merges        hash SEQ:ID of an absorbed original -> its shingle count, signature, and
                       [SEQ, ID of the original it was merged into, seq of the run that merged]
  PREFIX:absorbed:SEQ:ID  set of the SEQ:ID merged directly into original SEQ:ID
  PREFIX:lock          the writer lock

LSH keys are ``SEQ:ID``.  A run's addition writes its articles and band entries, then commits
by one MULTI/EXEC that records the run in ``PREFIX:runs`` and writes its cluster merges (so a
run's merges exist exactly when its articles do); queries ignore every key whose SEQ
is not committed, so a run killed mid-addition is invisible, and the next writer (which holds
the lock, so no one else can be adding) deletes its leftovers.

Why a lock rather than WATCH/MULTI alone: "query the index -> write the outputs -> add the
kept articles" spans thousands of keys, files on disk and minutes; an optimistic transaction
would have to watch every band bucket the run touches and redo the whole run on conflict.  The
lock (redis-py ``Lock``: SET NX PX with a random token, renewed by a thread every ttl/3) makes
a second job query only after the first has added.  If a job dies holding it, it expires after
``lock_ttl`` seconds (``?lock_ttl=``, default 30).  The commit itself is WATCH-fenced on the
lock's token, so a job that lost its lock (paused past the ttl) commits nothing.
"""

from __future__ import annotations

import datetime
import functools
import json
import struct
import threading
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import redis
from datasketch import MinHashLSH

from dedupe.config import DedupeConfig
from dedupe.minhash import to_lean_minhash
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

_OURS = ("prefix", "lock_ttl")
_BATCH = 5000
_SIZE = struct.Struct("<I")
F = TypeVar("F", bound=Callable[..., Any])


def _redis_errors(fn: F) -> F:
    """Redis failures become one-line IndexStoreErrors naming the index."""

    @functools.wraps(fn)
    def wrapper(self: RedisIndex, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except redis.RedisError as exc:
            raise IndexStoreError(f"index {self.location}: {exc}") from exc

    return wrapper  # type: ignore[return-value]


def redact(url: str) -> str:
    """The URL without its password, for messages and reports."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisIndex(StoredParams):
    def __init__(self, url: str, wait: float) -> None:
        self.location = redact(url)
        parts = urlsplit(url)
        ours = {k: v for k, v in parse_qsl(parts.query) if k in _OURS}
        rest = [(k, v) for k, v in parse_qsl(parts.query) if k not in _OURS]
        self.prefix = ours.get("prefix", "thresher")
        try:
            self.lock_ttl = float(ours.get("lock_ttl", 30))
        except ValueError as exc:
            raise IndexStoreError(f"index {self.location}: lock_ttl must be a number of seconds") from exc
        self.wait = wait
        self.r = redis.Redis.from_url(urlunsplit(parts._replace(query=urlencode(rest))))
        try:
            self.r.ping()
        except redis.RedisError as exc:
            raise IndexStoreError(f"index {self.location}: cannot reach Redis ({exc})") from exc
        self.params: IndexParams | None = None
        self._lsh: MinHashLSH | None = None
        self._lock: Any = None
        self._renewer: threading.Thread | None = None
        self._stop = threading.Event()
        self._lost = False
        self._seq: int | None = None  # this run's addition, once started
        self._merges: list[ClusterMerge] = []  # written by the commit's MULTI/EXEC

    def _key(self, *parts: object) -> str:
        return ":".join((self.prefix, *map(str, parts)))

    def _storage_config(self) -> dict[str, Any]:
        kw = self.r.connection_pool.connection_kwargs
        conn = {k: kw[k] for k in ("host", "port", "db", "username", "password") if kw.get(k) is not None}
        if kw.get("path"):
            conn["unix_socket_path"] = kw["path"]
        return {"type": "redis", "basename": self._key("lsh").encode(), "redis": conn}

    @property
    def lsh(self) -> MinHashLSH:
        if self._lsh is None:
            p = self._params()
            self._lsh = MinHashLSH(num_perm=p.num_perm, params=(p.bands, p.rows),
                                   storage_config=self._storage_config(), prepickle=False)
        return self._lsh

    # -- parameters and runs --------------------------------------------------------------

    @_redis_errors
    def stored_params(self) -> IndexParams | None:
        raw = self.r.get(self._key("params"))
        return IndexParams.from_json(json.loads(raw)) if raw else None

    @_redis_errors
    def ensure_params(self, params: IndexParams) -> None:
        self.r.set(self._key("params"), json.dumps(params.to_json()), nx=True)
        stored = self.stored_params()
        assert stored is not None
        check_compatible(self.location, stored, params)
        self.params = stored

    @_redis_errors
    def has_run(self, run_id: str) -> bool:
        return bool(self.r.hexists(self._key("runs"), run_id))

    def _committed(self) -> dict[int, str]:
        return {json.loads(v)["seq"]: k.decode() for k, v in self.r.hgetall(self._key("runs")).items()}

    # -- the writer section ---------------------------------------------------------------

    @_redis_errors
    def lock(self) -> None:
        self._lock = self.r.lock(self._key("lock"), timeout=self.lock_ttl, sleep=0.05,
                                 blocking_timeout=self.wait, thread_local=False)
        if not self._lock.acquire():
            self._lock = None
            raise IndexStoreError(f"index {self.location}: still locked by another run after "
                                  f"{self.wait:.0f} s; try again when it has finished")
        self._lost = False
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, name="thresher-index-lock", daemon=True)
        self._renewer.start()
        self._collect_dead_additions()

    def _renew(self) -> None:
        while not self._stop.wait(self.lock_ttl / 3):
            try:
                self._lock.reacquire()
            except (redis.RedisError, redis.exceptions.LockError):
                self._lost = True
                return

    def _release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        if self._lock is not None:
            try:
                self._lock.release()
            except (redis.RedisError, redis.exceptions.LockError):
                pass  # expired: someone else may hold it now, and that is theirs
            self._lock = None

    @_redis_errors
    def candidates(self, sigs: np.ndarray, max_bucket: int) -> Candidates:
        p = self._params()
        n = sigs.shape[0]
        committed = self._committed()
        if n == 0 or not committed:
            return Candidates.empty(p.num_perm)
        found: set[tuple[int, int, str]] = set()  # (query row, seq, article id)
        for b, (start, end) in enumerate(self.lsh.hashranges):
            # datasketch's band key: the band's uint32 values as big-endian bytes
            block = np.ascontiguousarray(sigs[:, start:end]).astype(">u4")
            table = self.lsh.hashtables[b]
            for lo in range(0, n, _BATCH):
                keys = [block[i].tobytes() for i in range(lo, min(n, lo + _BATCH))]
                for q, members in enumerate(table.getmany(*keys), start=lo):
                    if not members:
                        continue
                    bucket = []
                    for m in members:
                        seq, aid = m.split(b":", 1)
                        if int(seq) in committed:
                            bucket.append((int(seq), aid.decode()))
                    if len(bucket) > max_bucket:
                        bucket = sorted(bucket)[:max_bucket]
                    found.update((q, s, a) for s, a in bucket)
        if not found:
            return Candidates.empty(p.num_perm)
        rows = sorted(found)
        wanted = sorted({(s, a) for _, s, a in rows})
        pipe = self.r.pipeline(transaction=False)
        for s, a in wanted:
            pipe.hget(self._key("arts", s), a)
        packed = dict(zip(wanted, pipe.execute()))
        rows = [r for r in rows if packed[(r[1], r[2])] is not None]
        blobs = [packed[(s, a)] for _, s, a in rows]
        width = _SIZE.size + 4 * p.num_perm
        seqs = np.array([s for _, s, _ in rows], dtype=np.int64)
        runs = [committed[s] for _, s, _ in rows]
        return follow_merges(Candidates(
            query=np.array([q for q, _, _ in rows], dtype=np.int64),
            ids=[a for _, _, a in rows],
            originals=[x[width:].decode() or a for (_, _, a), x in zip(rows, blobs)],
            runs=runs,
            seqs=seqs,
            sigs=np.frombuffer(b"".join(x[_SIZE.size:width] for x in blobs), dtype="<u4").reshape(len(rows), p.num_perm)
            if rows else np.empty((0, p.num_perm), np.uint32),
            sizes=np.array([_SIZE.unpack_from(x)[0] for x in blobs], dtype=np.int64),
            original_seqs=seqs.copy(),
            original_runs=list(runs),
        ), self.merged_into, committed)

    @_redis_errors
    def add(self, run_id: str, ids: list[str], originals: list[str | None], sigs: np.ndarray,
            sizes: np.ndarray) -> None:
        if self._lock is None:
            raise RuntimeError("add() outside the writer section")
        if self.has_run(run_id):
            raise IndexStoreError(f"index {self.location}: run {run_id!r} is already there; "
                                  "choose another --run-id or forget that run first")
        p = self._params()
        seq = int(self.r.incr(self._key("seq")))
        self.r.hset(self._key("pending"), str(seq), run_id)
        self._seq = seq
        sigs = np.ascontiguousarray(sigs, dtype="<u4")
        arts = self._key("arts", seq)
        pipe = self.r.pipeline(transaction=False)
        for lo in range(0, len(ids), _BATCH):
            pipe.hset(arts, mapping={
                aid: _SIZE.pack(int(size)) + sig.tobytes() + (original or "").encode()
                for aid, original, size, sig in zip(ids[lo : lo + _BATCH], originals[lo : lo + _BATCH],
                                                    sizes[lo : lo + _BATCH], sigs[lo : lo + _BATCH])})
            pipe.execute()
        failpoint("index-add")
        config = DedupeConfig(num_perm=p.num_perm, seed=p.seed)
        with self.lsh.insertion_session(buffer_size=_BATCH * 10) as session:
            for aid, sig in zip(ids, sigs):
                session.insert(f"{seq}:{aid}".encode(), to_lean_minhash(sig, config), check_duplication=False)
        self._articles = len(ids)
        self._originals = sum(o is None for o in originals)
        self._run_id = run_id

    # -- merges ---------------------------------------------------------------------------

    def _merge_value(self, raw: bytes) -> tuple[int, np.ndarray, OriginalKey, int]:
        """(size, signature, merged into, by run) of one PREFIX:merges value."""
        width = _SIZE.size + 4 * self._params().num_perm
        into_seq, into_id, by = json.loads(raw[width:])
        sig = np.frombuffer(raw[_SIZE.size:width], dtype="<u4")
        return _SIZE.unpack_from(raw)[0], sig, (into_seq, into_id), by

    @_redis_errors
    def merged_into(self, keys: list[OriginalKey]) -> dict[OriginalKey, OriginalKey]:
        out: dict[OriginalKey, OriginalKey] = {}
        if not keys or not self.r.exists(self._key("merges")):
            return out
        for lo in range(0, len(keys), _BATCH):
            part = keys[lo : lo + _BATCH]
            for key, raw in zip(part, self.r.hmget(self._key("merges"), [f"{s}:{a}" for s, a in part])):
                if raw is not None:
                    into = self._merge_value(raw)[2]
                    out[key] = (int(into[0]), str(into[1]))
        return out

    @_redis_errors
    def merged_members(self, key: OriginalKey) -> list[ClusterMerge]:
        fields = sorted(self.r.smembers(self._key("absorbed", *key)))
        if not fields:
            return []
        found = []
        for field, raw in zip(fields, self.r.hmget(self._key("merges"), fields)):
            if raw is None:
                continue
            size, sig, _, by = self._merge_value(raw)
            seq, aid = field.decode().split(":", 1)
            found.append((by, int(seq), aid, ClusterMerge((int(seq), aid), key, size, sig)))
        return [m for *_, m in sorted(found, key=lambda f: f[:3])]

    def record_merges(self, merges: list[ClusterMerge]) -> None:
        """After ``add``; written by the commit's MULTI/EXEC, together with the run."""
        if self._seq is None:
            raise RuntimeError("record_merges() before add()")
        self._merges = list(merges)

    @_redis_errors
    def commit(self) -> None:
        if self._lock is None:
            return
        try:
            if self._seq is not None:
                self._commit_addition()
        finally:
            self._seq = None
            self._merges = []
            self._release()

    def _commit_addition(self) -> None:
        token = self._lock.local.token
        created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        record = json.dumps({"seq": self._seq, "articles": self._articles, "created": created,
                             "originals": self._originals})
        with self.r.pipeline() as pipe:
            try:
                pipe.watch(self._key("lock"))
                if self._lost or pipe.get(self._key("lock")) != token:
                    raise IndexStoreError(
                        f"index {self.location}: this run lost the index lock (paused longer than "
                        f"lock_ttl={self.lock_ttl:g} s); its articles were not added -- the outputs "
                        "are written, re-run to index them")
                pipe.multi()
                pipe.hset(self._key("runs"), self._run_id, record)
                pipe.hdel(self._key("pending"), str(self._seq))
                for m in self._merges:
                    field = f"{m.absorbed[0]}:{m.absorbed[1]}"
                    sig = np.ascontiguousarray(m.signature, dtype="<u4").tobytes()
                    value = _SIZE.pack(int(m.size)) + sig + json.dumps([m.into[0], m.into[1], self._seq]).encode()
                    pipe.hset(self._key("merges"), field, value)
                    pipe.sadd(self._key("absorbed", *m.into), field)
                pipe.execute()
            except redis.WatchError as exc:
                raise IndexStoreError(f"index {self.location}: the index lock changed hands while "
                                      "committing; this run's articles were not added") from exc

    def rollback(self) -> None:
        if self._lock is None:
            return
        try:
            if self._seq is not None and not self._lost:
                self._remove_addition(self._seq)  # invisible anyway; tidy up while we hold the lock
                self.r.hdel(self._key("pending"), str(self._seq))
        except redis.RedisError:
            pass  # the next writer removes it
        finally:
            self._seq = None
            self._merges = []
            self._release()

    # -- removal (forget, and leftovers of dead runs) ---------------------------------------

    def _collect_dead_additions(self) -> None:
        """Called with the lock held: any pending addition belongs to a run that died."""
        for seq in self.r.hkeys(self._key("pending")):
            self._remove_addition(int(seq))
            self.r.hdel(self._key("pending"), seq)

    def _remove_addition(self, seq: int) -> int:
        """Delete one addition's band entries, key lists and article records."""
        p = self._params()
        lsh = self.lsh
        arts = self._key("arts", seq)
        removed = 0
        batch: list[tuple[bytes, bytes]] = []
        for item in self.r.hscan_iter(arts, count=_BATCH):
            batch.append(item)
            if len(batch) >= _BATCH:
                removed += self._remove_batch(seq, batch, p, lsh)
                batch = []
        if batch:
            removed += self._remove_batch(seq, batch, p, lsh)
        self.r.unlink(arts)
        return removed

    def _remove_batch(self, seq: int, batch: list[tuple[bytes, bytes]], p: IndexParams, lsh: MinHashLSH) -> int:
        keys = [b"%d:%s" % (seq, aid) for aid, _ in batch]
        width = _SIZE.size + 4 * p.num_perm
        sigs = np.frombuffer(b"".join(x[_SIZE.size:width] for _, x in batch), dtype="<u4").reshape(len(batch), p.num_perm)
        touched: list[list[bytes]] = []
        for b, (start, end) in enumerate(lsh.hashranges):
            block = np.ascontiguousarray(sigs[:, start:end]).astype(">u4")
            hs = [block[i].tobytes() for i in range(len(batch))]
            table = lsh.hashtables[b]
            for h, k in zip(hs, keys):
                table.remove_val(h, k, buffer=True)
            table.empty_buffer()
            touched.append(hs)
        for k in keys:
            lsh.keys.remove(k, buffer=True)
        lsh.keys.empty_buffer()
        # buckets left empty: drop their entry in datasketch's per-band bucket hash too
        for b, hs in enumerate(touched):
            table = lsh.hashtables[b]
            empty = [h for h, members in zip(hs, table.getmany(*hs)) if not members]
            if empty:
                table.remove(*empty)
        return len(batch)

    @_redis_errors
    def forget(self, run_id: str) -> int:
        self.lock()
        try:
            raw = self.r.hget(self._key("runs"), run_id)
            if raw is None:
                raise IndexStoreError(f"index {self.location}: no run {run_id!r} "
                                      "(thresher index stats lists the runs)")
            seq = json.loads(raw)["seq"]
            # merges it made, and merges of or into its originals, go with it (in the same
            # MULTI/EXEC: no merge may point at an original that queries cannot see)
            undo = []
            for field, value in self.r.hgetall(self._key("merges")).items():
                _, _, into, by = self._merge_value(value)
                if seq in (int(field.split(b":", 1)[0]), into[0], by):
                    undo.append((field, into))
            with self.r.pipeline() as pipe:  # invisible at once; finished by the next writer if we die
                pipe.hdel(self._key("runs"), run_id)
                pipe.hset(self._key("pending"), str(seq), run_id)
                for field, into in undo:
                    pipe.hdel(self._key("merges"), field)
                    pipe.srem(self._key("absorbed", *into), field)
                pipe.execute()
            removed = self._remove_addition(seq)
            self.r.hdel(self._key("pending"), str(seq))
            return removed
        finally:
            self._release()

    @_redis_errors
    def stats(self) -> IndexStats:
        runs = []
        originals = 0
        for run_id, raw in self.r.hgetall(self._key("runs")).items():
            d = json.loads(raw)
            runs.append(RunInfo(run_id.decode(), d["seq"], d["articles"], d["created"]))
            originals += d["originals"] if "originals" in d else self._count_originals(d["seq"])
        runs.sort(key=lambda r: r.seq)
        merged = int(self.r.hlen(self._key("merges")))
        used = 0
        pipe = self.r.pipeline(transaction=False)
        for i, key in enumerate(self.r.scan_iter(match=_glob_escape(self.prefix) + ":*", count=1000), 1):
            pipe.memory_usage(key, samples=0)
            if i % 1000 == 0:
                used += sum(x or 0 for x in pipe.execute())
        used += sum(x or 0 for x in pipe.execute())
        return IndexStats(self.location, "redis", sum(r.articles for r in runs), runs,
                          self.stored_params(), used, int(self.r.hlen(self._key("pending"))),
                          clusters=originals - merged, merged_clusters=merged)

    def _count_originals(self, seq: int) -> int:
        """Originals of a run committed before run records counted them: its articles stored
        without an original's id."""
        width = _SIZE.size + 4 * self._params().num_perm
        values = self.r.hscan_iter(self._key("arts", seq), count=_BATCH)
        return sum(len(value) == width for _, value in values)

    def close(self) -> None:
        self.rollback()
        self.r.close()
