"""The decoded-image cache: built once, keyed by content and settings, no image file read afterwards."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

import blastscope.data.cache as cache_mod
from blastscope.data.cache import ImageCache
from blastscope.data.preprocess import Preprocess, load_preprocessed


def test_cache_matches_direct_loading_and_reads_no_image_later(tmp_path, cnmc_samples, monkeypatch):
    paths = [str(p) for p in sorted(cnmc_samples.glob("*.bmp"))[:4]]
    pre = Preprocess(canvas=350, resize=64)
    cache = ImageCache(tmp_path)
    arr = cache.array(paths, pre)
    assert arr.shape == (4, 64, 64, 3) and arr.dtype == np.uint8
    for i, p in enumerate(paths):
        np.testing.assert_array_equal(arr[i], load_preprocessed(p, pre))

    def boom(*a, **k):
        raise AssertionError("an image file was decoded although the cache is warm")

    monkeypatch.setattr(cache_mod, "load_preprocessed", boom)
    monkeypatch.setattr(cache_mod, "file_digest", boom)  # content hashes are remembered too
    again = ImageCache(tmp_path).array(paths, pre)
    np.testing.assert_array_equal(np.asarray(again), np.asarray(arr))


def test_key_depends_on_settings_and_content(tmp_path, cnmc_samples):
    src = sorted(cnmc_samples.glob("*.bmp"))
    work = tmp_path / "imgs"
    work.mkdir()
    a = shutil.copy(src[0], work / "a.bmp")
    cache = ImageCache(tmp_path / "c")
    k1 = cache.key([str(a)], Preprocess(canvas=350))
    assert k1 != cache.key([str(a)], Preprocess(canvas=300))
    shutil.copy(src[1], a)  # same path, new content
    assert cache.key([str(a)], Preprocess(canvas=350)) != k1


def test_needs_fixed_size(tmp_path):
    with pytest.raises(ValueError, match="fixed output size"):
        ImageCache(tmp_path).array([], Preprocess(canvas=None, resize=None))
