"""The image cache with bad inputs: unreadable files are all listed at once, damaged entries are rebuilt,
and a planted pickle is never unpickled."""
from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest

from blastscope.data.cache import ImageCache
from blastscope.data.decode import UnreadableImagesError, read_image
from blastscope.data.preprocess import Preprocess, load_preprocessed

PRE = Preprocess(canvas=350, resize=32)


@pytest.fixture
def cells(tmp_path, cnmc_samples) -> list[str]:
    out = []
    for src in sorted(cnmc_samples.glob("*.bmp"))[:4]:
        shutil.copy(src, tmp_path / src.name)
        out.append(str(tmp_path / src.name))
    return out


def test_every_unreadable_file_is_listed_and_no_entry_is_left(tmp_path, cells):
    (tmp_path / "a.bmp").write_bytes(b"")
    (tmp_path / "b.bmp").write_bytes(open(cells[0], "rb").read()[:100])
    paths = [cells[0], str(tmp_path / "a.bmp"), cells[1], str(tmp_path / "b.bmp"), str(tmp_path / "gone.bmp")]
    seen = []
    cache = ImageCache(tmp_path / "cache")
    with pytest.raises(UnreadableImagesError) as err:
        cache.array(paths, PRE, progress=seen.append)
    assert [e.path for e in err.value.errors] == paths[1:2] + paths[3:]
    assert [e.reason.split(" ")[0] for e in err.value.errors] == ["empty", "truncated", "file"]
    assert all(p in str(err.value) for p in paths[1:2] + paths[3:])
    assert len(seen) == len(paths)  # every file was tried despite the first failure
    assert not list((tmp_path / "cache").glob("*.npy")) and not list((tmp_path / "cache").glob(".*.tmp"))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_planted_pickle_in_the_cache_is_never_unpickled(tmp_path, cells):
    cache = ImageCache(tmp_path / "cache")
    good = cache.array(cells, PRE)
    entry = next((tmp_path / "cache").glob("*.npy"))
    del good
    marker = tmp_path / "payload_ran"
    evil = np.empty(1, dtype=object)
    evil[0] = _Payload(marker)
    with open(entry, "wb") as fh:  # a valid .npy whose data is a pickle
        np.save(fh, evil, allow_pickle=True)
    np.load(entry, allow_pickle=True)
    assert marker.exists()  # the payload is live ...
    marker.unlink()
    again = ImageCache(tmp_path / "cache").array(cells, PRE)
    assert not marker.exists()  # ... and the cache never ran it: it rebuilt the entry instead
    expected = np.stack([load_preprocessed(p, PRE) for p in cells])
    np.testing.assert_array_equal(np.asarray(again), expected)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "shape"])
def test_damaged_entry_is_rebuilt(tmp_path, cells, damage):
    cache = ImageCache(tmp_path / "cache")
    del_me = cache.array(cells, PRE)
    entry = next((tmp_path / "cache").glob("*.npy"))
    del del_me
    if damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:200])
    elif damage == "garbage":
        entry.write_bytes(pickle.dumps("not an array"))
    else:
        np.save(entry, np.zeros((2, 8, 8, 3), np.uint8))
    again = ImageCache(tmp_path / "cache").array(cells, PRE)
    assert again.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(np.asarray(again[2]), PRE(read_image(cells[2])))
