"""``blastscope cv`` with an image size the model cannot take: a clear error before anything is decoded or trained."""
from __future__ import annotations

from click.testing import CliRunner

from blastscope.cli import main


def test_cv_refuses_a_resize_below_the_models_minimum(tiny_synthetic, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["cv", "sd_net", "--profile", "quick", "--data", str(tiny_synthetic), "--out", str(run),
                                       "--set", "data.resize=32", "--set", "train.epochs=1"])
    assert result.exit_code == 2, result.output
    error = next(line for line in result.output.splitlines() if line.startswith("error: "))
    assert "model 'sd_net' needs images of at least 33 x 33 pixels" in error and "32 x 32" in error
    assert "Traceback" not in result.output
    assert not run.exists()  # refused before the cache or any run file was written
