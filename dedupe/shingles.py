"""Text normalisation and shingle hashing, vectorised with numpy.

Per-shingle Python objects (a ``str`` per n-gram and a hash call each) cap throughput at
7-14k articles/s (FINDINGS), so nothing here creates a Python object per word or shingle:
the normalised text is turned into an array of code points, words are hashed with a
position-weighted sum (``numpy.add.reduceat``) and n-grams are hashed arithmetically from
the word hashes.  Batches of texts are processed in one go to amortise numpy's per-call
overhead.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from collections.abc import Sequence

import numpy as np

from .config import DedupeConfig

# The C kernels (dedupe/_kernels.c, built at install) are the fast path; the numpy code below is
# the reference the tests compare them with bit for bit. THRESHER_NO_KERNELS=1 selects the
# reference on purpose; a missing build is an error, not a silent 5x slowdown.
if os.environ.get("THRESHER_NO_KERNELS"):
    _kernels = None
else:
    try:
        from . import _kernels
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "thresher's compiled kernels (dedupe._kernels) are missing: reinstall with "
            "`pip install -e .` (needs a C compiler), or set THRESHER_NO_KERNELS=1 to run the "
            "slower numpy implementation"
        ) from exc

_SEP = np.uint32(0)  # separator: whitespace, punctuation, symbols, controls
_DIGIT = np.uint32(ord("0"))  # every decimal digit becomes "0"
_APOSTROPHES = "'\u2018\u2019\u02bc\u02b9\u0060\u00b4\u2032"
_KEEP_CATEGORIES = ("L", "M", "N")  # letters, marks, numbers (other than decimal digits)

_U64 = np.uint64
_M64_1 = _U64(0xFF51AFD7ED558CCD)
_M64_2 = _U64(0xC4CEB9FE1A85EC53)
_S33 = _U64(33)
_S32 = _U64(32)


def _build_table() -> np.ndarray:
    """Code point -> itself (letters, marks, numbers), ``0`` (decimal digits) or ``_SEP``."""
    category = unicodedata.category
    cats = [category(chr(cp)) for cp in range(sys.maxunicode + 1)]
    table = np.arange(sys.maxunicode + 1, dtype=np.uint32)
    keep = np.fromiter((c[0] in _KEEP_CATEGORIES for c in cats), dtype=bool, count=len(cats))
    digit = np.fromiter((c == "Nd" for c in cats), dtype=bool, count=len(cats))
    table[~keep] = _SEP
    table[digit] = _DIGIT
    return table


# The table depends only on the Unicode database and on the code of this module: building it
# costs ~0.5-1.5 s per process (and per spawned worker), loading it ~1 ms.  It is cached as a .npy
# file named after the Unicode version and a digest of this module's source, so a Python with
# another Unicode database, or any change here (the mapping's code among it), gets a table of its
# own; a missing, unreadable or malformed file is rebuilt, and an unwritable cache directory only
# costs the build.  (The digest used to cover `_build_table`'s source alone, found with
# `inspect.getsource`: ~18 ms of every run's start, tokenising this file.)
_TABLE_CODE_VERSION = 3  # bump when the mapping changes in a way the digest below cannot see
_TABLE: np.ndarray | None = None


def _table_cache_path() -> str | None:
    base = os.environ.get("THRESHER_CACHE_DIR")
    if base is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "thresher")
    if base == "":  # THRESHER_CACHE_DIR="" disables the cache
        return None
    import hashlib

    try:
        with open(__file__, "rb") as fh:
            source = fh.read()
    except OSError:  # no source file (a frozen or zipped install): the version number only
        source = b""
    spec = repr((_TABLE_CODE_VERSION, source, _KEEP_CATEGORIES, int(_SEP), int(_DIGIT),
                 sys.maxunicode))
    digest = hashlib.sha256(spec.encode()).hexdigest()[:16]
    return os.path.join(base, f"codepoints-{unicodedata.unidata_version}-{digest}.npy")


def _load_table(path: str) -> np.ndarray | None:
    try:
        t = np.load(path, mmap_mode="r", allow_pickle=False)  # shared by every process
    except (OSError, ValueError):
        return None
    if t.dtype != np.uint32 or t.shape != (sys.maxunicode + 1,) or not t.flags.c_contiguous:
        return None
    probes = {"a": ord("a"), "\u00e9": 0xE9, "7": int(_DIGIT), " ": int(_SEP), "\u4e00": 0x4E00}
    if any(int(t[ord(ch)]) != v for ch, v in probes.items()):  # a damaged or foreign file
        return None
    return t.view(np.ndarray)  # a plain array over the mapping (the view keeps it open)


def _store_table(path: str, table: np.ndarray) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            np.save(f, table, allow_pickle=False)
        os.replace(tmp, path)  # atomic: concurrent workers never see a partial file
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _table() -> np.ndarray:
    global _TABLE
    if _TABLE is None:
        path = _table_cache_path()
        table = _load_table(path) if path else None
        if table is None:
            table = _build_table()
            if path:
                _store_table(path, table)
        _TABLE = table
    return _TABLE


_DELETE = np.uint32(0xFFFFFFFF)
_ASCII: np.ndarray | None = None


def _ascii_map() -> np.ndarray:
    """The kernels' map of raw ASCII: case folded, apostrophes deleted, then the table."""
    global _ASCII
    if _ASCII is None:
        t = _table()
        m = np.empty(128, dtype=np.uint32)
        for c in range(128):
            ch = chr(c)
            m[c] = _DELETE if ch in _APOSTROPHES else t[ord(ch.lower())]
        _ASCII = m
    return _ASCII


def _prepare_for_kernel(text: str) -> str:
    """ASCII text as is (the kernel folds case and drops apostrophes itself), other text
    prepared; NFKC and casefold are the identity and ``lower`` on ASCII."""
    return text if text.isascii() else _prepare(text)


def _prepared_for_kernel(texts: Sequence[str]) -> list[str]:
    """`_prepare_for_kernel` of each text, without a Python call per (nearly always ASCII) text."""
    return [t if t.isascii() else _prepare(t) for t in texts]


# 64 odd 64-bit multipliers, one per position in an n-gram (position j % 64): numpy's
# ``Generator(PCG64(0x5A1E)).integers(0, 2**63, 64, dtype=uint64) * 2 + 1``, written out (a test
# draws them again) because importing numpy.random cost ~20 ms of every start.
_GRAM_WEIGHTS = np.array([
    0x0396A01B4BC0E6AB, 0xEC4E3D41B61B8EA1, 0xEF0CC7F084889999, 0x23502D418ECF2781,
    0xC6FC9B81FEFB2709, 0x4521A51A173EA2F3, 0xB6F25C8D7F841DAD, 0x7EAD4872EB720BBB,
    0x7AE146BFBCF81177, 0x5EF2E866EA227A83, 0x3D62A766E7C46CFF, 0x0846B5F211F99A93,
    0x901421BAF7013D2F, 0x0E44FB8E336330B1, 0x5E4E95E21F51ABCF, 0x019C9E3D06A28BE9,
    0xED9AA427C0B97455, 0x682E49C427CB4A55, 0x191042A0A2D313E1, 0x4AD32B5B1EB4BB3F,
    0x0B1B84090E24B1DD, 0xD2DB7D15851E8ABF, 0xFDEC3747644F6BC1, 0x1896903CA606EC39,
    0x963E902D6652BDD3, 0x50B06A0962902B9F, 0xBD353E1560E43A97, 0xCB8ACDC2DB21480B,
    0x08C1971336133AFB, 0x874298B247A17F33, 0x21B0AFE39C796AAF, 0x2FE938C0E06E472B,
    0x3A59ECD2F66EC0C3, 0xEFC055C85F8DCA31, 0x90B1BCC7C5D64A4F, 0x8CAE52FF266DA237,
    0x3FA602A3D348AF77, 0x917023F41D3CA239, 0x5569B43600F4E033, 0x3173BA7EF8516C21,
    0x2A9F3CF09CFD12BD, 0x8CCBF67FD7D66FAD, 0x9C26D2A544C39397, 0xDF18855AAE1D0DC1,
    0x0449F34BBD89F401, 0x0DC000E0AA72FE35, 0x4930E9C9425F068D, 0xAD29135D51D8B4A9,
    0x53A22F712156FE8B, 0xF40D7BBFD4859E2F, 0xEB02F7D54D36BB03, 0x91B2E83A06495D11,
    0xCF84150B773E129D, 0xB2D8476EDFFEB041, 0x1E600F093EC98061, 0x4D42B18769C30AFF,
    0x75162DBDF47037FD, 0x87154B0B95C99AF5, 0x9644727D9C610285, 0x1053F8CDAE8BB3D7,
    0xBBE8E68C982448F1, 0x8AD1A6969A495789, 0x3DEDBD5ECE76E7E5, 0x3D1651728CC30FE5,
], dtype=np.uint64)
_GRAM_WEIGHTS.setflags(write=False)


def fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser (a bijection) applied element-wise, wrapping."""
    x = x ^ (x >> _S33)
    x *= _M64_1
    x ^= x >> _S33
    x *= _M64_2
    x ^= x >> _S33
    return x


def _prepare(text: str) -> str:
    """NFKC, casefold and apostrophes removed (so "it's" and "its" are one word)."""
    t = unicodedata.normalize("NFKC", text).casefold()
    for ch in _APOSTROPHES:
        if ch in t:
            t = t.replace(ch, "")
    return t


def _codes(text: str) -> np.ndarray:
    """The mapped code points of one prepared text."""
    cp = np.frombuffer(_prepare(text).encode("utf-32-le"), dtype=np.uint32)
    return _table()[cp]


def normalise(text: str) -> str:
    """NFKC, casefold, apostrophes removed, other punctuation/symbols -> space, decimal digits
    -> ``0``, whitespace collapsed.  The same mapping ``shingle_hashes`` uses, as a string."""
    return normalise_many([text])[0]


def normalise_many(texts: Sequence[str]) -> list[str]:
    """``normalise`` for many texts in one numpy pass (paragraphs: ~10x less overhead)."""
    if not texts:
        return []
    if _kernels is not None:
        return _kernels.normalise(_prepared_for_kernel(texts), _table(), _ascii_map())
    return _normalise_many_numpy(texts)


def _normalise_many_numpy(texts: Sequence[str]) -> list[str]:
    """The numpy reference of ``normalise_many``."""
    if not texts:
        return []
    parts = [_prepare(t).encode("utf-32-le") for t in texts]
    cp = np.frombuffer(b"".join(parts), dtype=np.uint32)
    mapped = _table()[cp]
    mapped[mapped == _SEP] = 32
    whole = mapped.tobytes().decode("utf-32-le")
    out = []
    pos = 0
    for p in parts:
        n = len(p) >> 2
        out.append(" ".join(whole[pos : pos + n].split()))
        pos += n
    return out


_X = _U64(0x9E3779B97F4A7C15 | 1)  # odd: invertible modulo 2**64
_X_INV = _U64(pow(int(_X), -1, 1 << 64))
_POW = np.empty(0, _U64)
_INV = np.empty(0, _U64)


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """X**i and X**-i modulo 2**64 for i < n (cached, grown on demand)."""
    global _POW, _INV
    if _POW.size < n:
        size = max(n, 1 << 16, 2 * _POW.size)
        _POW = np.cumprod(np.full(size, _X, dtype=_U64))
        _POW[1:] = _POW[:-1].copy()
        _POW[0] = 1
        _INV = np.cumprod(np.full(size, _X_INV, dtype=_U64))
        _INV[1:] = _INV[:-1].copy()
        _INV[0] = 1
    return _POW, _INV


def _word_units(c: np.ndarray, doc_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Word hashes and their document ids for the mapped code points of a batch.

    A word's hash is the polynomial sum(c_i * X**(i - start)) modulo 2**64, computed for all
    words at once from one prefix sum over absolute positions (sum c_i X**i, then times
    X**-start), then avalanched with fmix64.  Documents never share a word.
    """
    n = c.size
    if n == 0:
        return np.empty(0, _U64), np.empty(0, np.int64)
    pw, inv = _powers(n + 1)
    is_word = c != _SEP
    newdoc = np.zeros(n + 1, dtype=bool)
    newdoc[doc_starts] = True
    newdoc[n] = True
    prev = np.empty(n, dtype=bool)
    prev[0] = False
    prev[1:] = is_word[:-1]
    nxt = np.empty(n, dtype=bool)
    nxt[-1] = False
    nxt[:-1] = is_word[1:]
    starts = np.flatnonzero(is_word & (~prev | newdoc[:n]))
    if starts.size == 0:
        return np.empty(0, _U64), np.empty(0, np.int64)
    ends = np.flatnonzero(is_word & (~nxt | newdoc[1:]))  # inclusive
    prefix = np.empty(n + 1, dtype=_U64)
    prefix[0] = 0
    np.cumsum(c.astype(_U64) * pw[:n], out=prefix[1:])
    wh = prefix[ends + 1] - prefix[starts]
    wh *= inv[starts]
    udoc = np.searchsorted(doc_starts, starts, side="right") - 1
    return fmix64(wh), udoc


def _char_units(c: np.ndarray, doc_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Character units: separator runs collapsed to one space, separators at document ends
    stripped, each character spread over 64 bits; with their document ids."""
    n = c.size
    if n == 0:
        return np.empty(0, _U64), np.empty(0, np.int64)
    lens = np.diff(np.append(doc_starts, n))
    doc = np.repeat(np.arange(doc_starts.size, dtype=np.int64), lens)
    newdoc = np.zeros(n + 1, dtype=bool)
    newdoc[doc_starts] = True
    newdoc[n] = True
    is_sep = c == _SEP
    prev_sep = np.empty(n, dtype=bool)
    prev_sep[0] = True
    prev_sep[1:] = is_sep[:-1]
    keep = ~is_sep | ~(prev_sep | newdoc[:n] | newdoc[1:])
    cc = np.where(is_sep, np.uint32(32), c)[keep]
    dd = doc[keep]
    if cc.size:
        end = np.empty(cc.size, dtype=bool)
        end[-1] = True
        end[:-1] = dd[1:] != dd[:-1]
        bad = end & (cc == 32)
        if bad.any():
            cc, dd = cc[~bad], dd[~bad]
    return fmix64(cc.astype(_U64) + _U64(0x9E3779B97F4A7C15)), dd


def _gram_hashes(units: np.ndarray, n: int) -> np.ndarray:
    """Hashes (uint64, before folding) of all windows of n units (one window when shorter)."""
    m = units.size
    if m == 0:
        return np.empty(0, _U64)
    if m < n:
        n = m
    k = m - n + 1
    g = units[:k] * _GRAM_WEIGHTS[0]
    for j in range(1, n):
        g += units[j : j + k] * _GRAM_WEIGHTS[j % _GRAM_WEIGHTS.size]
    return fmix64(g)


_CHUNK_CHARS = 1 << 18  # code points per numpy batch


def shingle_hashes_many(texts: Sequence[str], config: DedupeConfig) -> list[np.ndarray]:
    """``shingle_hashes`` for many texts at once (identical results, far less numpy overhead).

    Each result is the sorted unique uint32 shingle hashes of one text.
    """
    if _kernels is not None:
        return _shingle_hashes_many_kernel(texts, config)
    return _shingle_hashes_many_numpy(texts, config)


def _shingle_hashes_many_kernel(texts: Sequence[str], config: DedupeConfig) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    char = config.shingle == "char"
    table, amap = _table(), _ascii_map()
    i = 0
    while i < len(texts):
        batch: list[str] = []
        size = 0
        while i < len(texts) and (not batch or size < _CHUNK_CHARS):
            t = _prepare_for_kernel(texts[i])
            batch.append(t)
            size += len(t) + 1
            i += 1
        buf = np.empty(size, dtype=np.uint32)
        counts = np.empty(len(batch), dtype=np.int64)
        total = _kernels.shingle(batch, table, amap, _GRAM_WEIGHTS, config.ngram, char, buf, counts)
        flat = buf[:total].copy()
        ends = np.cumsum(counts).tolist()
        start = 0
        for e in ends:
            out.append(flat[start:e])
            start = e
    return out


def _shingle_hashes_many_numpy(texts: Sequence[str], config: DedupeConfig) -> list[np.ndarray]:
    """The numpy reference of ``shingle_hashes_many``."""
    out: list[np.ndarray] = []
    i = 0
    while i < len(texts):
        parts: list[bytes] = []
        size = 0
        while i < len(texts) and (not parts or size < _CHUNK_CHARS):
            b = _prepare(texts[i]).encode("utf-32-le")
            parts.append(b)
            size += len(b) >> 2
            i += 1
        out.extend(_batch(parts, config))
    return out


def _batch(parts: list[bytes], config: DedupeConfig) -> list[np.ndarray]:
    nd = len(parts)
    lens = np.fromiter((len(p) >> 2 for p in parts), dtype=np.int64, count=nd)
    doc_starts = np.zeros(nd, dtype=np.int64)
    np.cumsum(lens[:-1], out=doc_starts[1:])
    cp = np.frombuffer(b"".join(parts), dtype=np.uint32)
    mapped = _table()[cp]
    if config.shingle == "word":
        units, udoc = _word_units(mapped, doc_starts)
    else:
        units, udoc = _char_units(mapped, doc_starts)
    n = config.ngram
    counts = np.bincount(udoc, minlength=nd)
    m = units.size
    keys_list = []
    if m >= n:
        k = m - n + 1
        g = _gram_hashes(units, n)[:k]
        valid = udoc[:k] == udoc[n - 1 :]
        keys = udoc[:k][valid].astype(_U64) << _S32
        keys |= g[valid] >> _S32
        keys_list.append(keys)
    short = np.flatnonzero((counts > 0) & (counts < n))
    if short.size:
        ends = np.cumsum(counts)
        for d in short.tolist():
            g = _gram_hashes(units[ends[d] - counts[d] : ends[d]], n)
            keys_list.append((_U64(d) << _S32) | (g >> _S32))
    if not keys_list:
        return [np.empty(0, np.uint32) for _ in range(nd)]
    keys = np.concatenate(keys_list) if len(keys_list) > 1 else keys_list[0]
    keys.sort()
    if keys.size > 1:
        uniq = np.empty(keys.size, dtype=bool)
        uniq[0] = True
        np.not_equal(keys[1:], keys[:-1], out=uniq[1:])
        keys = keys[uniq]
    kdoc = (keys >> _S32).astype(np.int64)
    hashes = keys.astype(np.uint32)  # low 32 bits
    bounds = np.searchsorted(kdoc, np.arange(1, nd, dtype=np.int64))
    return np.split(hashes, bounds)


def shingle_hashes(text: str, config: DedupeConfig) -> np.ndarray:
    """Sorted unique uint32 hashes of the text's shingles (word or char n-grams of the
    normalised text).  A text with fewer than ``ngram`` units gives one shingle of all of
    them; an empty text gives an empty array."""
    return shingle_hashes_many([text], config)[0]
