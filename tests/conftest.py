"""Shared fixtures: the real sample images of ../shared/data and small synthetic C-NMC trees on disk."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` skip, saying so, where PyTorch sees no CUDA GPU (CI has none)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=f"needs a CUDA GPU (this PyTorch {torch.__version__} sees none)")
    for item in gpu_items:
        item.add_marker(skip)


def _shared(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real sample data not found at {path} (the shared data folder is absent)")
    return path


@pytest.fixture(scope="session")
def shared():
    """``shared("cnmc-samples", "labeled")`` -> path, skipping the test when the data is absent."""
    return _shared


@pytest.fixture(scope="session")
def cnmc_samples() -> Path:
    return _shared("cnmc-samples", "labeled")


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> Path:
    """A small synthetic C-NMC tree in the official layout (real BMP files)."""
    from blastscope.data.synth import SynthConfig, write_synthetic_cnmc

    out = tmp_path_factory.mktemp("synth") / "cnmc"
    write_synthetic_cnmc(out, SynthConfig(train_subjects=3, validation_subjects=1, test_subjects=1,
                                          cells_per_subject=(4, 5), folds=3, seed=0))
    return out


# ---- reports / bundles / prediction (issue 7): one REAL tiny cross-validation per session --------
TINY_RUN_OVERRIDES = ["train.epochs=2", "data.resize=64"]


@pytest.fixture(scope="session")
def tiny_run(tiny_synthetic, tmp_path_factory) -> Path:
    """A finished, aggregated 3-fold ``sdct_auxnet`` run folder (quick profile, 2 epochs, 64 px cells)."""
    from blastscope.config import resolve_config
    from blastscope.data.readers import read_dataset
    from blastscope.evaluation.aggregate import aggregate_run
    from blastscope.evaluation.cross_validation import run_cv

    run_dir = tmp_path_factory.mktemp("tiny_run") / "run"
    config = resolve_config("sdct_auxnet", "quick", TINY_RUN_OVERRIDES)
    run_cv(config, read_dataset(tiny_synthetic, layout="auto"), run_dir)
    aggregate_run(run_dir)
    return run_dir


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run, tmp_path_factory) -> Path:
    """The tiny run's last arm (sdct_auxnet) exported with ONNX models; tests must not modify it."""
    from blastscope.inference.export import export_bundle

    return export_bundle(tiny_run, tmp_path_factory.mktemp("bundles") / "tiny", onnx=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs (needs root to mount; skipped elsewhere)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'not root'}); the full-disk test needs one")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
