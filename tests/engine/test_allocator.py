"""glibc malloc keeps freed large blocks, so re-allocating them does not page-fault."""
from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys

import pytest

from blastscope.engine.allocator import keep_freed_memory

_PROBE = """
import json, resource, sys
import numpy as np
from blastscope.engine.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
for _ in range(3):  # warm: the first allocation faults in either setting
    np.ones(48 * 2**20 // 8)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    np.ones(48 * 2**20 // 8)  # 48 MiB, allocated, touched and freed
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"applied": applied, "faults": after - before}))
"""

needs_glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None,
                                 reason="glibc malloc tuning applies to Linux only")


def _probe(mode: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "BLASTSCOPE_KEEP_FREED_MEMORY"}
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True,
                         env={**clean, **env}, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_glibc
def test_freed_blocks_are_reused_without_page_faults():
    """Ten 48 MiB allocations fault in fresh pages each time by default, and (almost) none once kept.

    A fresh 48 MiB mapping takes at least 24 faults even with 2 MiB huge pages (hundreds with 4 KiB pages).
    """
    default, kept = _probe("default"), _probe("keep")
    assert kept["applied"] is True
    assert default["faults"] >= 10 * 24
    assert kept["faults"] <= default["faults"] // 20


@needs_glibc
def test_user_settings_win():
    assert _probe("keep", BLASTSCOPE_KEEP_FREED_MEMORY="0")["applied"] is False
    probe = _probe("keep", MALLOC_MMAP_THRESHOLD_="131072")
    assert probe["applied"] is False
    assert probe["faults"] >= 10 * 24  # glibc's own variable is honoured, not overridden


@pytest.mark.parametrize("threshold", [0, -5, 2**31])
def test_threshold_is_validated(threshold):
    with pytest.raises(ValueError, match="threshold must be in"):
        keep_freed_memory(threshold)
