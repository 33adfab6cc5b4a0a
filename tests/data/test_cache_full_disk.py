"""A full disk while the image cache is written: an error naming the folder and the bytes, no SIGBUS."""
from __future__ import annotations

import subprocess
import sys


def test_full_disk_is_a_clear_error_and_leaves_no_temporary_file(tiny_synthetic, small_disk):
    """Before the fix the memory map was sparse and the process died of SIGBUS (exit -7/135) with
    nothing printed, leaving a .npy.*.tmp that kept the disk full. Run in a child process."""
    out = small_disk / "run"
    args = [sys.executable, "-m", "blastscope", "cv", "sd_net", "--profile", "quick", "--data", str(tiny_synthetic),
            "--out", str(out), "--set", "data.resize=300", "--set", "train.epochs=1"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert f"error: {out / 'cache'}: not enough free space for the image cache: it needs" in done.stderr
    assert "MB are free" in done.stderr and "Traceback" not in done.stderr
    assert not list((out / "cache").glob(".*.tmp")), "the temporary cache file was left behind"
