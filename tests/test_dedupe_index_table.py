"""The code-point table cache of ``dedupe.shingles``: deterministic, rebuilt when damaged."""

from __future__ import annotations

import os

import numpy as np
import pytest

from dedupe import shingles as S


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("THRESHER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(S, "_TABLE", None)
    return tmp_path


@pytest.fixture(scope="module")
def built():
    return S._build_table()


def test_table_is_cached_and_loaded_identically(fresh, built):
    t1 = S._table()
    path = S._table_cache_path()
    assert os.path.dirname(path) == str(fresh) and os.path.exists(path)
    assert np.array_equal(t1, built)
    S._TABLE = None
    t2 = S._table()  # from the file this time
    assert type(t2) is np.ndarray and t2.dtype == np.uint32
    assert np.array_equal(t2, built)
    assert not [p for p in os.listdir(fresh) if p.endswith(".tmp")]


def test_cache_name_follows_unicode_version_and_code(fresh):
    import unicodedata

    name = os.path.basename(S._table_cache_path())
    assert unicodedata.unidata_version in name
    old = S._TABLE_CODE_VERSION
    try:
        S._TABLE_CODE_VERSION = old + 1
        assert os.path.basename(S._table_cache_path()) != name
    finally:
        S._TABLE_CODE_VERSION = old


@pytest.mark.parametrize("damage", ["truncate", "garbage", "zeros"])
def test_damaged_cache_is_rebuilt(fresh, built, damage):
    S._table()
    path = S._table_cache_path()
    if damage == "truncate":
        with open(path, "r+b") as f:
            f.truncate(1000)
    elif damage == "garbage":
        with open(path, "wb") as f:
            f.write(b"not a numpy file")
    else:
        np.save(path, np.zeros_like(built))
    S._TABLE = None
    assert np.array_equal(S._table(), built)
    S._TABLE = None
    assert np.array_equal(S._load_table(path), built)  # and the file was rewritten


def test_unwritable_or_disabled_cache_still_works(monkeypatch, tmp_path, built):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("THRESHER_CACHE_DIR", str(blocker / "sub"))  # cannot be created
    monkeypatch.setattr(S, "_TABLE", None)
    assert np.array_equal(S._table(), built)
    monkeypatch.setenv("THRESHER_CACHE_DIR", "")
    monkeypatch.setattr(S, "_TABLE", None)
    assert S._table_cache_path() is None
    assert np.array_equal(S._table(), built)


def test_shingles_identical_with_cached_table(fresh):
    from dedupe.config import DedupeConfig

    texts = ["Héllo wörld, it's 2024 — ÇA VA?", "東京の天気は晴れ 123", "plain ascii text here ok"]
    cfg = DedupeConfig()
    first = S.shingle_hashes_many(texts, cfg)
    S._TABLE = None
    again = S.shingle_hashes_many(texts, cfg)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert S.normalise_many(texts) == [S.normalise(t) for t in texts]
