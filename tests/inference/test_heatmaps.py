"""Heat maps in the image domain: they find the pixels a model reads, through the stain and DCT layers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("captum")

from blastscope.inference.heatmaps import overlay, pixel_heatmaps, write_overlays  # noqa: E402


class _Corner(nn.Module):
    """Class 1's logit is the mean red value of the top-left 8x8 corner: only those pixels matter."""

    def forward(self, x):
        score = x[:, 0, :8, :8].mean(dim=(1, 2)) * 10
        return torch.stack([-score, score], dim=1)


def test_the_map_points_at_the_pixels_the_model_reads():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    maps = pixel_heatmaps([_Corner()], images, np.array([1, 1, 0]), samples=4, sigma=0.5)
    assert maps.shape == (3, 32, 32) and maps.max() == pytest.approx(1.0) and maps.min() >= 0
    for m in maps:
        assert m[:8, :8].mean() > 20 * max(m[12:, 12:].mean(), 1e-9)


def test_the_gradient_flows_through_the_stain_and_dct_layers():
    from blastscope.models import create_model

    torch.manual_seed(0)
    model = create_model("sdct_net", num_classes=2).eval()
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    images[:, :, :32] = 0  # a black half has no stain: the model's pixels are the other half
    maps = pixel_heatmaps([model], images, np.array([0, 1]), samples=2, sigma=0.0)
    assert np.isfinite(maps).all() and (maps.reshape(2, -1).max(1) > 0).all()


def test_overlays_are_written_beside_the_cell(tmp_path):
    import cv2

    image = np.full((16, 16, 3), 120, np.uint8)
    heat = np.zeros((16, 16))
    heat[4:8, 4:8] = 1.0
    out = overlay(image, heat)
    assert (out[0, 0] == image[0, 0]).all() and not (out[5, 5] == image[5, 5]).all()  # cold pixels unchanged
    paths = write_overlays(tmp_path / "maps", ["a", "b"], np.stack([image, image]), np.stack([heat, heat]))
    assert [p.name for p in paths] == ["a.heatmap.png", "b.heatmap.png"]
    assert cv2.imread(str(paths[0])).shape == (16, 32, 3)


def test_predict_writes_one_heat_map_per_cell_and_keeps_a_full_folder(tiny_bundle, tmp_path):
    from pathlib import Path

    from click.testing import CliRunner

    from blastscope.cli import main

    cells = sorted((Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cnmc-samples" / "labeled").glob("*.bmp"))[:3]
    if not cells:
        pytest.skip("real C-NMC sample cells not found")
    maps = tmp_path / "maps"
    args = ["predict", str(tiny_bundle), *map(str, cells), "--out", str(tmp_path / "p.csv"), "--heatmaps", str(maps)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert len(list(maps.glob("*.heatmap.png"))) == 3
    again = CliRunner().invoke(main, [*args[:-4], "--out", str(tmp_path / "q.csv"), "--heatmaps", str(maps)])
    assert again.exit_code == 2 and "not empty" in again.output
