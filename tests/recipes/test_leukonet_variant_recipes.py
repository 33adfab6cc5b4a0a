"""The LeukoNet Table 1 variant recipes (PReLU, P-TELU, Normal aug) run end to end on tiny data."""
from __future__ import annotations

import pytest
from safetensors.torch import load_file

from blastscope.config import list_recipes

VARIANTS = [r for r in list_recipes() if r.startswith(("leukonet_stage1_", "leukonet_stage2c_"))]


def test_variants_are_shipped():
    assert set(VARIANTS) == {"leukonet_stage1_normal_aug", "leukonet_stage1_prelu", "leukonet_stage1_ptelu",
                             "leukonet_stage2c_prelu", "leukonet_stage2c_ptelu"}


@pytest.mark.parametrize("recipe", VARIANTS)
def test_variant_runs_end_to_end(recipe, tiny_cnmc_index, tmp_path, run_quick):
    out = tmp_path / "run"
    config, metrics = run_quick(recipe, tiny_cnmc_index, out)
    (arm,) = config.arms
    weights = load_file(str(out / "arms" / arm.name / "fold_1" / "best.safetensors"))
    activation = arm.kwargs.get("activation", "relu")
    # the trained checkpoint carries the activation's parameters: PReLU one slope per channel
    # ("weight"), P-TELU "alpha" and "beta"; ReLU none
    stored = {"prelu": "backbone.features.conv1.2.weight" in weights, "ptelu": "backbone.features.conv1.2.alpha" in weights}
    assert stored == {"prelu": activation == "prelu", "ptelu": activation == "ptelu"}
    assert set(metrics["arms"]) == {arm.name}
