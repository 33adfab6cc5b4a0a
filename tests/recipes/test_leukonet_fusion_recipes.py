"""LeukoNet Stage-3 / Stage-3C recipes run end to end: the stage arms, then the fusion arm on them."""
from __future__ import annotations

import pytest
from safetensors.torch import load_file


@pytest.mark.parametrize("recipe, first, second, fusion",
                         [("leukonet_stage3", "stage1", "stage2", "stage3"), ("leukonet_stage3c", "stage1", "stage2c", "stage3c")])
def test_fusion_recipe_runs_end_to_end(recipe, first, second, fusion, tiny_cnmc_index, tmp_path, run_quick):
    """Invariant: the fused model's sub-networks are the trained stage arms' best weights, unchanged."""
    out = tmp_path / "run"
    _, metrics = run_quick(recipe, tiny_cnmc_index, out)
    assert list(metrics["arms"]) == [first, second, fusion]
    for k in range(2):
        fused = load_file(str(out / "arms" / fusion / f"fold_{k + 1}" / "best.safetensors"))
        for prefix, arm in (("first.", first), ("second.", second)):
            stage = load_file(str(out / "arms" / arm / f"fold_{k + 1}" / "best.safetensors"))
            assert stage and all(fused[prefix + key].equal(value) for key, value in stage.items())
