"""Shared fixtures: the real sample images of ../shared/data and small synthetic C-NMC trees on disk."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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
