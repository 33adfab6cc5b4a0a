"""Threads: one per physical core this process may use, and --threads N everywhere."""
from __future__ import annotations

import os

import pytest
import torch

from blastscope.engine import threads


def test_default_counts_physical_cores_of_the_affinity_mask(monkeypatch):
    monkeypatch.setattr(threads, "idle_cpus", lambda seconds=0.1: 3.9)
    # 4 logical CPUs, two per core (hyper-threading): CPUs 0, 1 are core 0 and 2, 3 core 1
    monkeypatch.setattr(threads, "_cpu_core_map", lambda: {0: ("0", "0"), 1: ("0", "0"), 2: ("0", "1"), 3: ("0", "1")})
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert threads.default_threads() == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {2, 3})  # a batch system gave us one core
    assert threads.default_threads() == 1
    monkeypatch.setattr(threads, "_cpu_core_map", lambda: {})  # no /proc/cpuinfo: count the CPUs
    assert threads.default_threads() == 2
    monkeypatch.setattr(threads, "idle_cpus", lambda seconds=0.1: 1.1)  # another process keeps one core busy
    assert threads.default_threads() == 1 and threads.physical_cores() == 2
    monkeypatch.setattr(threads, "idle_cpus", lambda seconds=0.1: 0.0)
    assert threads.default_threads() == 1
    monkeypatch.setattr(threads, "idle_cpus", lambda seconds=0.1: None)  # no /proc/stat: every core
    assert threads.default_threads() == 2


def test_idle_cpus_sees_a_busy_process():
    import subprocess
    import sys

    if threads.idle_cpus() is None:
        pytest.skip("no /proc/stat")
    quiet = threads.idle_cpus(0.3)
    hog = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 5: pass"])
    try:
        import time

        time.sleep(0.3)
        busy = threads.idle_cpus(0.3)
    finally:
        hog.kill()
    assert busy < quiet - 0.5  # one CPU less idle


def test_configure_sets_torch_opencv_and_onnxruntime():
    import cv2

    before = torch.get_num_threads()
    try:
        assert threads.configure_threads(1) == 1
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1 and threads.onnx_threads() == 1
        assert threads.worker_threads() == 1  # side-by-side ONNX sessions and predict's decoding follow --threads
        with pytest.raises(ValueError, match="threads must be"):
            threads.configure_threads(0)
    finally:
        threads.configure_threads(before)


def test_predict_records_the_threads(tiny_bundle, tmp_path):
    import json
    from pathlib import Path

    from click.testing import CliRunner

    from blastscope.cli import main

    cells = sorted((Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cnmc-samples" / "labeled").glob("*.bmp"))[:2]
    if not cells:
        pytest.skip("C-NMC sample cells not found")
    before = torch.get_num_threads()
    try:
        r = CliRunner().invoke(main, ["predict", str(tiny_bundle), *map(str, cells), "--out", str(tmp_path / "p.csv"),
                                      "--threads", "1"])
        assert r.exit_code == 0, r.output
        assert json.loads((tmp_path / "p.json").read_text())["settings"]["threads"] == 1
        r = CliRunner().invoke(main, ["predict", str(tiny_bundle), *map(str, cells), "--out", str(tmp_path / "q.csv"),
                                      "--threads", "0"])
        assert r.exit_code == 2 and "--threads" in r.output
    finally:
        threads.configure_threads(before)


def test_threads_reach_a_torch_imported_later_and_onnx_predict_never_imports_torch(tiny_bundle, tmp_path):
    """``--threads`` before torch is imported still sets its pool; ``predict --backend onnx`` (a lab
    without PyTorch) runs without importing it."""
    import subprocess
    import sys

    code = ("import sys; from blastscope.engine import threads; threads.configure_threads(1); "
            "assert 'torch' not in sys.modules; import torch; print(torch.get_num_threads())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
    import numpy as np
    import cv2

    cells = tmp_path / "cells"
    cells.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(cells / f"UID_1_{i}_1_all.bmp"), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    code = ("import sys; from blastscope.cli import main; sys.argv = ['blastscope', 'predict', sys.argv[1], sys.argv[2], "
            "'--out', sys.argv[3], '--backend', 'onnx', '--threads', '1']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('torch imported' if 'torch' in sys.modules else 'no torch')")
    done = subprocess.run([sys.executable, "-c", code, str(tiny_bundle), str(cells), str(tmp_path / "p.csv")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "3 cells predicted" in done.stdout and done.stdout.strip().endswith("no torch")
