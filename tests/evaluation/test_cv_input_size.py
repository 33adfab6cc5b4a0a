"""run_cv checks every arm's model against the configured image size before decoding or training."""
from __future__ import annotations

import pytest

from blastscope.config import resolve_config
from blastscope.data.readers import read_dataset
from blastscope.evaluation import cross_validation as cv


def test_run_cv_refuses_before_decoding_or_training(tiny_synthetic, tmp_path, monkeypatch):
    monkeypatch.setattr(cv, "fit", lambda *a, **k: pytest.fail("training started"))
    monkeypatch.setattr(cv, "_decode_all", lambda *a, **k: pytest.fail("images decoded"))
    config = resolve_config("sdct_auxnet", "quick", ["data.resize=20"])
    with pytest.raises(ValueError, match=r"arm 'sd_net': model 'sd_net' needs images of at least 33 x 33 .* 20 x 20"):
        cv.run_cv(config, read_dataset(tiny_synthetic), tmp_path / "run")
    assert not (tmp_path / "run").exists()
