"""Decoded-and-preprocessed image cache: one memory-mapped uint8 array per (files, settings).

The key is a SHA-256 over the preprocessing settings and the content hash of every file in index
order, so a changed, renamed-but-identical or reordered file set gets the right entry. Content
hashes are remembered per (path, size, mtime) in a small JSON sidecar, so after the first pass no
image file is opened again: epochs read only the memory map. Files are written atomically; an
interrupted build leaves no entry behind and is simply redone. A build decodes every file even
after a failure, then raises one :class:`~blastscope.data.decode.UnreadableImagesError` listing
every unreadable file with its reason (and leaves no entry behind).
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from blastscope.data.decode import ImageReadError, UnreadableImagesError
from blastscope.data.preprocess import Preprocess, load_preprocessed
from blastscope.engine.atomic import atomic_write, atomic_write_json

__all__ = ["ImageCache", "file_digest"]

logger = logging.getLogger(__name__)


def file_digest(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _reserve(path: Path, folder: Path) -> None:
    """Allocate every block of the just-created memory-map file ``path`` now, so that a full disk is an
    error naming the folder and the bytes needed (the temporary file is removed by the atomic write)."""
    size = path.stat().st_size
    free = shutil.disk_usage(folder).free
    try:
        with open(path, "r+b") as fh:
            os.posix_fallocate(fh.fileno(), 0, size)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            if e.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # the file system cannot preallocate: check the space
                if free < size:
                    raise _no_space(folder, size, free) from None
                return
            raise
        raise _no_space(folder, size, free) from None


def _no_space(folder: Path, size: int, free: int) -> OSError:
    return OSError(errno.ENOSPC, f"not enough free space for the image cache: it needs {size / 1e6:.1f} MB, "
                                 f"{free / 1e6:.1f} MB are free (free space or give another --out / cache folder)", str(folder))


class ImageCache:
    """Build or open the cached array for ``paths`` under ``root``.

    ``array(paths, preprocess)`` returns an N x S x S x 3 uint8 array (memory-mapped, read-only).
    """

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self._digests_path = self.root / "digests.json"
        self._digests: dict[str, str] | None = None

    def _digest_of(self, path: str) -> str:
        if self._digests is None:
            try:
                self._digests = json.loads(self._digests_path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                self._digests = {}
        try:
            st = os.stat(path)
        except OSError:
            return f"unreadable:{path}"  # the build reports it with the reason (read_image)
        stamp = f"{path}|{st.st_size}|{st.st_mtime_ns}"
        digest = self._digests.get(stamp)
        if digest is None:
            digest = file_digest(Path(path))
            self._digests[stamp] = digest
        return digest

    def digests(self, paths: Sequence[str]) -> list[str]:
        """SHA-1 of every file's bytes, in order (remembered per path, size and mtime)."""
        out = [self._digest_of(p) for p in paths]
        if self._digests is not None:
            atomic_write_json(self._digests_path, self._digests)
        return out

    def key(self, paths: Sequence[str], preprocess: Preprocess) -> str:
        h = hashlib.sha256(json.dumps(preprocess.to_dict(), sort_keys=True).encode())
        for digest in self.digests(paths):
            h.update(digest.encode())
        return h.hexdigest()[:24]

    def array(
        self,
        paths: Sequence[str],
        preprocess: Preprocess,
        progress: Callable[[int], None] | None = None,
        loader: Callable[[str], np.ndarray] | None = None,
    ) -> np.ndarray:
        size = preprocess.output_size
        if size is None:
            raise ValueError("caching needs a fixed output size: set canvas or resize")
        path = self.root / f"{self.key(paths, preprocess)}.npy"
        if path.exists():
            try:  # never unpickles (allow_pickle stays False); a damaged entry is rebuilt
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:
                logger.warning("cache entry %s is unreadable (%s), rebuilding", path, e)
                arr = None
            if arr is not None and arr.shape == (len(paths), size, size, 3) and arr.dtype == np.uint8:
                return arr
            if arr is not None:
                logger.warning("cache entry %s has shape %s and type %s, rebuilding", path, arr.shape, arr.dtype)
        load = loader or (lambda p: load_preprocessed(p, preprocess))

        def write(tmp: Path) -> None:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3))
            _reserve(tmp, self.root)  # a sparse memory map on a full disk dies of SIGBUS, not of an error
            errors: list[ImageReadError] = []
            for i, p in enumerate(paths):
                try:
                    out[i] = load(p)
                except ImageReadError as e:
                    errors.append(e)
                if progress:
                    progress(1)
            if errors:
                del out
                raise UnreadableImagesError(errors)
            out.flush()
            del out

        atomic_write(path, write)
        return np.load(path, mmap_mode="r")
