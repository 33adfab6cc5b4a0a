"""Report artefacts: DCT-domain images of SD-layer outputs (Fig. 4) and 2-D feature projections (Fig. 14)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.fft
from safetensors.numpy import load_file

from blastscope.engine.artefacts import write_report_artefacts


@pytest.fixture(scope="module")
def run(tiny_run, tmp_path_factory) -> Path:
    out = Path(shutil.copytree(tiny_run, tmp_path_factory.mktemp("artefacts") / "run", ignore=shutil.ignore_patterns("cache")))
    write_report_artefacts(out)
    return out


def test_dct_cells_match_an_independent_computation(run):
    """SD map = tanh(W^T OD) with the trained 1x1 weights; the DCT image = log10(1 + |scipy dctn(SD)|)."""
    info = json.loads((run / "artefacts" / "artefacts.json").read_text())
    assert info["dct"]["arm"] == "sdct_net" and info["dct"]["model_has_dct_layer"]
    with np.load(run / "artefacts" / "dct_cells.npz", allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    assert sorted(a["labels"].tolist()) == ["all", "all", "hem", "hem"]  # two training cells per class
    folds = pd.read_csv(run / "folds.csv", keep_default_na=False).set_index("path")
    assert (folds.loc[a["paths"], "fold"] > 0).all()  # training cells of the fold-1 model
    weight = load_file(str(run / "arms" / "sdct_net" / "fold_1" / "best.safetensors"))["front.0.conv.weight"][:, :, 0, 0]
    rgb = a["rgb"].astype(np.float64) / 255.0
    od = -np.log10(np.where(rgb == 0, 1.0, np.maximum(rgb, 1e-6)))
    sd = np.tanh(np.einsum("oc,nhwc->nohw", weight.astype(np.float64), od))
    np.testing.assert_allclose(a["sd"], sd, atol=1e-4)
    reference = np.log10(1 + np.abs(scipy.fft.dctn(a["sd"].astype(np.float64), axes=(-2, -1), norm="ortho")))
    np.testing.assert_allclose(a["dct_log"], reference, atol=1e-4)


def test_energy_curves_are_cumulative_fractions(run):
    """Invariant: the energy held by the largest coefficients never decreases and reaches 1 with all of them."""
    with np.load(run / "artefacts" / "dct_cells.npz", allow_pickle=False) as z:
        energy, fraction = z["energy"], z["coefficient_fraction"]
    assert fraction[-1] == 1.0 and np.all(np.diff(fraction) > 0)
    assert np.all(np.diff(energy, axis=1) >= -1e-12)
    np.testing.assert_allclose(energy[:, -1], 1.0, atol=1e-6)
    assert np.all(energy[:, 0] > 0)


def test_feature_projections(run):
    """Invariant: PCA scores are centred and PC1 carries at least PC2's variance, for C1 and C6."""
    info = json.loads((run / "artefacts" / "artefacts.json").read_text())
    assert set(info["features"]) == {"sd_net", "sdct_net"}  # the aux arm reuses sdct_net's CNN
    folds = pd.read_csv(run / "folds.csv", keep_default_na=False)
    expected = set(folds.loc[(folds["fold"] == 0) | folds["split"].isin(["validation", "test"]), "path"])
    for meta in info["features"].values():
        side = (64 + 2 - 5) // 2 + 1  # C1: 5x5, stride 2, padding 1; then four 2x2 max-pools
        for _ in range(4):
            side //= 2
        assert meta["c1_module"] == "backbone.features.conv1" and meta["c6_dims"] == 64 * side * side
        f = pd.read_csv(run / "artefacts" / meta["file"], keep_default_na=False)
        for layer, g in f.groupby("layer"):
            assert set(g["path"]) == expected and len(g) == meta["n_cells"]
            np.testing.assert_allclose(g[["pc1", "pc2"]].mean(), 0, atol=1e-6)
            assert g["pc1"].var() >= g["pc2"].var()
            ev = meta["explained_variance"][layer]
            assert 1 >= ev[0] >= ev[1] >= 0


def test_unchanged_weights_reuse_artefacts(run):
    stamp = (run / "artefacts" / "features_sd_net.csv").stat().st_mtime_ns
    write_report_artefacts(run)
    assert (run / "artefacts" / "features_sd_net.csv").stat().st_mtime_ns == stamp
    write_report_artefacts(run, force=True)
    assert (run / "artefacts" / "features_sd_net.csv").stat().st_mtime_ns != stamp


def test_fig13_feature_maps_are_the_c5_c6_outputs_of_correct_cells(run):
    """Fig. 13: one correctly classified validation cell per class; the stored maps equal C5/C6 outputs
    recomputed with forward hooks of the fold-1 model, and the stored probability is its softmax."""
    import torch

    from blastscope.config import read_config
    from blastscope.engine.arm_models import load_fold_model

    info = json.loads((run / "artefacts" / "artefacts.json").read_text())["feature_maps"]
    if "reason" in info:
        pytest.skip(f"the 2-epoch tiny model classified no validation cell correctly: {info['reason']}")
    with np.load(run / "artefacts" / "feature_maps.npz", allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    assert info["arm"] == "sdct_net" and len(set(a["labels"].tolist())) == len(a["labels"]) == info["n_cells"]
    preds = pd.read_csv(run / "arms" / info["arm"] / "fold_1" / "predictions.csv", keep_default_na=False)
    chosen = preds[preds["path"].isin(a["paths"].tolist()) & (preds["set"] == "oof")]
    assert len(chosen) == len(a["paths"]) and (chosen["pred"] == chosen["y"]).all()
    model, model_input = load_fold_model(run, read_config(run / "config.yaml"), info["arm"], 0)
    model.eval()
    seen = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, k=n: seen.__setitem__(k, out))
             for n, m in model.named_modules() if n.split(".")[-1] in ("conv5", "conv6")]
    with torch.no_grad():
        logits = model(model_input(torch.from_numpy(a["rgb"])))
    for h in hooks:
        h.remove()
    (c5,), (c6,) = [[v for k, v in seen.items() if k.endswith(name)] for name in ("conv5", "conv6")]
    m = a["c5"].shape[1]
    np.testing.assert_allclose(a["c5"], c5[:, :m].numpy(), atol=1e-5)
    np.testing.assert_allclose(a["c6"], c6[:, :m].numpy(), atol=1e-5)
    y = chosen.set_index("path").loc[a["paths"].tolist(), "y"].to_numpy()
    np.testing.assert_allclose(a["probability"], torch.softmax(logits, 1).numpy()[np.arange(len(y)), y], atol=1e-5)


def test_heat_map_gallery_picks_the_extreme_cells_of_each_class(run):
    """Per class, the most confident correct and wrong and the most uncertain validation-fold cell of
    fold 1 (recomputed from predictions.csv), each with a heat map of the cell's size in [0, 1]."""
    pytest.importorskip("captum")
    galleries = json.loads((run / "artefacts" / "artefacts.json").read_text())["galleries"]
    assert set(galleries) == {"sd_net", "sdct_net"}  # every CNN arm that reads pixels
    info = galleries["sdct_net"]
    assert "reason" not in info, info
    with np.load(run / "artefacts" / info["file"], allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    assert a["heat"].shape == a["rgb"].shape[:3] and 0 <= a["heat"].min() and a["heat"].max() <= 1
    preds = pd.read_csv(run / "arms" / info["arm"] / "fold_1" / "predictions.csv", keep_default_na=False)
    oof = preds[preds["set"] == "oof"].copy()
    oof["conf"] = oof[["p_hem", "p_all"]].max(axis=1)
    expected = []
    for c in ("hem", "all"):
        g = oof[oof["label"] == c]
        for kind, pool, best in (("most confident correct", g[g["pred"] == g["y"]], max),
                                 ("most confident wrong", g[g["pred"] != g["y"]], max), ("most uncertain", g, min)):
            if len(pool):
                expected.append((c, kind, best(pool["conf"])))
    assert [(lab, kind) for lab, kind, _ in expected] == list(zip(a["labels"].tolist(), a["kinds"].tolist()))
    np.testing.assert_allclose(a["probability"], [p for _, _, p in expected])
