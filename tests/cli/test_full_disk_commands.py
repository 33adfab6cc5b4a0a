"""A full disk under ``blastscope data synth`` and ``export``: one line naming the file being written
and the problem, exit status 2 (``small_disk``: a 3 MB tmpfs, skipped where it cannot be mounted)."""
from __future__ import annotations

import shutil

from click.testing import CliRunner

from blastscope.cli import main


def test_synth_on_a_full_disk_names_the_file_it_was_writing(small_disk):
    """Before: ``error: (file system): No space left on device`` (write() names no file)."""
    out = small_disk / "synth"
    result = CliRunner().invoke(main, ["data", "synth", str(out)])
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"error: {out}{'/'}") and line.endswith(".bmp: No space left on device"), line
    assert not list(out.rglob(".*.tmp")), "a temporary file was left behind"


def test_export_on_a_full_disk_names_the_bundle_not_the_source(tiny_run, small_disk):
    """Before: the error named the run folder's best.safetensors (copyfile names its source), which is
    on another, healthy disk."""
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(small_disk).free - 64 * 1024))  # the tiny bundle is ~1 MB
    out = small_disk / "bundle"
    result = CliRunner().invoke(main, ["export", str(tiny_run), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == f"error: {out}: No space left on device"
    assert list(small_disk.iterdir()) == [filler], "the partial bundle was left behind"
