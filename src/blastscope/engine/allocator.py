"""Keep large freed blocks in the process heap so repeated steps do not page-fault.

Training, inference and the image pipeline free and re-allocate buffers of the same sizes over
and over (activations of every step, one decoded image after another). glibc's ``malloc`` serves
every block above ``M_MMAP_THRESHOLD`` (128 KiB, adapting up to 32 MiB) with a fresh ``mmap``,
returns it to the kernel on ``free``, and the kernel zero-fills each page again on first touch.
Measured on the benchmark machine: one batch-64 SDCT-Net training step at 350 x 350 took about
560,000 minor page faults and a third of its time in the kernel; decoding a 450 x 450 BMP spent
0.7 of its 0.75 ms faulting in its output. With the threshold raised above the largest
activation, freed blocks stay in the heap and are reused: no faults after the first step.

The price is resident memory: the heap keeps its high-water mark (plus fragmentation) instead
of giving pages back between steps; the benchmark reports the peak either way. This is the
glibc counterpart of the jemalloc/tcmalloc preload PyTorch's CPU tuning guide recommends, done
in-process with ``mallopt`` so no environment variable or preload is needed.

:func:`keep_freed_memory` is called once by the command line; library users may call it
themselves. It does nothing when the C library is not glibc, when the user has set glibc's own
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` (their choice wins) or when
``BLASTSCOPE_KEEP_FREED_MEMORY=0``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

__all__ = ["keep_freed_memory", "DEFAULT_THRESHOLD"]

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 256 * 2**20
"""Bytes: above the largest activation of a batch-64 step at 350 x 350 (64 x 16 x 174 x 174 float32, 124 MB)."""

_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3
_applied: int | None = None


def keep_freed_memory(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Serve blocks up to ``threshold`` bytes from the heap and keep up to ``2 * threshold`` free there.

    Returns whether the setting is in effect for this process (after a first successful call,
    later calls return True without changing it). ``threshold`` must be a positive int below 2 GiB.
    """
    global _applied
    if not 0 < threshold < 2**31:
        raise ValueError(f"threshold must be in (0, 2**31) bytes, got threshold={threshold}")
    if _applied is not None:
        return True
    if os.environ.get("BLASTSCOPE_KEEP_FREED_MEMORY", "1") == "0":
        logger.debug("allocator left at its defaults (BLASTSCOPE_KEEP_FREED_MEMORY=0)")
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        logger.debug("allocator left to the MALLOC_*_THRESHOLD_ environment variables")
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only: other C libraries name these options differently
    except (OSError, AttributeError, TypeError):
        logger.debug("allocator left at its defaults (no glibc mallopt)")
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not (mallopt(_M_MMAP_THRESHOLD, threshold) and mallopt(_M_TRIM_THRESHOLD, min(2 * threshold, 2**31 - 1))):
        logger.debug("mallopt refused threshold=%d", threshold)
        return False
    _applied = threshold
    logger.debug("glibc malloc keeps freed blocks up to %d bytes in the heap", threshold)
    return True
