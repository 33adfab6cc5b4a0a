"""Model activations the report draws but cannot compute itself (reports never import torch).

``write_report_artefacts(run_dir)`` loads the fold-1 model of every arm that trains its own
network and writes, under ``RUN/artefacts/``:

- ``dct_cells.npz`` (Gehlot et al. 2020, Fig. 4, section 3.3): for ``cells_per_class`` training
  cells of each class, the preprocessed RGB cell (uint8 N x S x S x 3), the trained SD-layer
  output Z (float32 N x 3 x S x S), ``log10(1 + |DCT(Z)|)`` (the paper's eq. 1 magnitude,
  N x 3 x S x S) and the energy compaction curve: the fraction of DCT energy held by the largest
  ``coefficient_fraction`` of coefficients (N x P, mean over the three maps). The DCT is the
  orthonormal DCT-II of :mod:`blastscope.ops.dct`, the same as the model's DCT layer before its
  log; the first arm whose model has a stain-deconvolution layer is used (one with a DCT layer
  preferred).
- ``features_<arm>.csv`` (Fig. 14, section 5): the first convolution block (C1) and the last
  feature maps (C6, ``forward_features``) of up to ``max_points`` cells (fold 1's validation fold
  and the held-out labelled sets), projected to 2-D by PCA: columns
  ``path,label,set,layer,pc1,pc2``. The paper does not name its projection; PCA is deterministic.
  C1 maps are average-pooled to at most 16 x 16 before PCA to bound memory (at 350 x 350 a C1
  map is 16 x 174 x 174). C1 is read with a forward hook on the first spatial convolution's block
  (a visualisation, not a model path, so the timm-style feature API does not reach it).
- ``feature_maps.npz`` (Fig. 13, section 5): for ONE correctly classified cell per class of fold 1's
  validation fold (by the fold-1 model of the first arm with a DCT layer, else the first with
  ``conv5``/``conv6`` blocks), the preprocessed cell (uint8 N x S x S x 3) and the first
  ``n_maps`` channels of its C5 and C6 feature maps (float32 N x n_maps x h x w), with ``labels``,
  ``paths`` and the model's ``probability`` of the true class.
- ``gallery_<arm>.npz`` (why the model decided), for every arm whose network reads pixels: for
  each true class, fold 1's most confident correct, most confident wrong and most uncertain
  validation-fold cell (by that arm's fold-1 model), the preprocessed cell, its SmoothGrad heat map in the
  image domain (:mod:`blastscope.inference.heatmaps`, needs Captum), ``labels``, ``preds``,
  ``kinds``, ``probability`` (of the predicted class) and ``paths``.
- ``artefacts.json``: what was written, from which weights (SHA-256), or why something was not.

Artefacts whose weights are unchanged are reused.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from blastscope.config import read_config
from blastscope.data.preprocess import Preprocess, load_preprocessed
from blastscope.engine.arm_models import load_fold_model
from blastscope.engine.atomic import atomic_write, atomic_write_csv, atomic_write_json, read_safe_csv
from blastscope.run_layout import fold_dir

__all__ = ["write_report_artefacts", "ARTEFACTS_DIR"]

logger = logging.getLogger(__name__)

ARTEFACTS_DIR = "artefacts"
ARTEFACTS_VERSION = 4  # 2: Fig. 13 feature maps; 3: the heat-map gallery; 4: one per pixel arm; older are recomputed
COEFFICIENT_FRACTION = np.geomspace(1e-4, 1.0, 48)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _first_block(model: nn.Module) -> tuple[str, nn.Module] | None:
    modules = dict(model.named_modules())
    for name, m in modules.items():
        if isinstance(m, nn.Conv2d) and tuple(m.kernel_size) != (1, 1):
            parent_name = name.rsplit(".", 1)[0] if "." in name else ""
            parent = modules.get(parent_name)
            if isinstance(parent, nn.Sequential) and len(parent) and parent[0] is m:
                return parent_name, parent
            return name, m
    return None


def _sd_layer(model: nn.Module) -> tuple[nn.Module | None, bool]:
    from blastscope.layers.dct import DCT2d, EnergyThresholdDCT
    from blastscope.layers.stain_deconvolution import StainDeconvolution

    sd = next((m for m in model.modules() if isinstance(m, StainDeconvolution)), None)
    has_dct = any(isinstance(m, (DCT2d, EnergyThresholdDCT)) for m in model.modules())
    return sd, has_dct


def _energy_curve(d: np.ndarray) -> np.ndarray:
    """Energy fraction of the largest coefficients; d: (C, H, W) -> (len(COEFFICIENT_FRACTION),)."""
    e = np.sort(d.reshape(d.shape[0], -1).astype(np.float64) ** 2, axis=1)[:, ::-1]
    cum = np.cumsum(e, axis=1) / np.maximum(e.sum(axis=1, keepdims=True), 1e-30)
    idx = np.clip(np.ceil(COEFFICIENT_FRACTION * e.shape[1]).astype(int) - 1, 0, e.shape[1] - 1)
    return cum[:, idx].mean(axis=0)


@torch.inference_mode()
def _dct_cells(model, model_input, sd: nn.Module, images: np.ndarray) -> dict[str, np.ndarray]:
    from blastscope.ops.dct import dct2, log_magnitude

    z = sd(model_input(torch.from_numpy(np.ascontiguousarray(images)))).float().contiguous()
    d = dct2(z)
    return {"sd": z.numpy(), "dct_log": log_magnitude(d, signed=False).numpy(),
            "energy": np.stack([_energy_curve(x) for x in d.numpy()])}


@torch.inference_mode()
def _features(model, model_input, images: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray, str]:
    found = _first_block(model)
    if found is None:
        raise ValueError(f"{type(model).__name__} has no spatial convolution")
    name, block = found
    captured: list[torch.Tensor] = []

    def hook(_m, _i, out):
        h, w = out.shape[-2:]
        captured.append(nn.functional.adaptive_avg_pool2d(out, (min(h, 16), min(w, 16))).flatten(1))

    handle = block.register_forward_hook(hook)
    last = []
    try:
        for s in range(0, len(images), batch_size):
            x = model_input(torch.from_numpy(np.ascontiguousarray(images[s:s + batch_size])))
            last.append(model.forward_features(x).flatten(1))
    finally:
        handle.remove()
    return torch.cat(captured).numpy(), torch.cat(last).numpy(), name


def _pca2(x: np.ndarray) -> tuple[np.ndarray, list[float]]:
    from sklearn.decomposition import PCA

    if len(x) < 3:
        return np.zeros((len(x), 2)), [0.0, 0.0]
    pca = PCA(n_components=2, random_state=0).fit(x.astype(np.float64))
    return pca.transform(x.astype(np.float64)), [float(v) for v in pca.explained_variance_ratio_]


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def _pick(folds: pd.DataFrame, classes: list[str], n_per_class: int, rng: np.random.Generator) -> pd.DataFrame:
    parts = []
    for c in classes:
        g = folds[folds["label"] == c]
        if len(g):
            parts.append(g.iloc[np.sort(rng.choice(len(g), size=min(n_per_class, len(g)), replace=False))])
    return pd.concat(parts) if parts else folds.iloc[:0]


@torch.inference_mode()
def _c5_c6(model: nn.Module, model_input, images: np.ndarray, n_maps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """C5 and C6 block outputs (first ``n_maps`` channels) and the softmax of ``images``, or None."""
    modules = dict(model.named_modules())
    names = {k: next((n for n in modules if n.split(".")[-1] == k), None) for k in ("conv5", "conv6")}
    if None in names.values():
        return None
    captured: dict[str, torch.Tensor] = {}
    handles = [modules[n].register_forward_hook(lambda _m, _i, out, key=k: captured.__setitem__(key, out[:, :n_maps].float()))
               for k, n in names.items()]
    try:
        proba = torch.softmax(model(model_input(torch.from_numpy(np.ascontiguousarray(images)))).float(), dim=1)
    finally:
        for h in handles:
            h.remove()
    return captured["conv5"].numpy(), captured["conv6"].numpy(), proba.numpy()


def _feature_maps(run_dir: Path, models: dict, sd_arms: list, classes: list[str], preprocess: Preprocess,
                  n_maps: int = 8) -> tuple[dict[str, np.ndarray] | None, dict]:
    """Fig. 13 arrays (module docstring) and their ``artefacts.json`` entry (or the reason for none)."""
    order = [n for n, _, has_dct in sd_arms if has_dct] + list(models)
    for name in dict.fromkeys(order):
        path = fold_dir(run_dir, name, 0) / "predictions.csv"
        if not path.exists():
            continue
        preds = read_safe_csv(path, keep_default_na=False, dtype={"subject_id": str, "label": str})
        val = preds[(preds["set"] == "oof") & (preds["pred"] == preds["y"])]
        rows = [val[val["label"] == c].iloc[0] for c in classes if (val["label"] == c).any()]
        if not rows:
            continue
        cells = np.stack([load_preprocessed(r["path"], preprocess) for r in rows])
        found = _c5_c6(*models[name], cells, n_maps)
        if found is None:
            continue
        c5, c6, proba = found
        y = np.array([int(r["y"]) for r in rows])
        arrays = {"rgb": cells, "c5": c5, "c6": c6, "labels": np.array([r["label"] for r in rows]).astype(str),
                  "paths": np.array([r["path"] for r in rows]).astype(str), "probability": proba[np.arange(len(y)), y]}
        return arrays, {"file": "feature_maps.npz", "arm": name, "n_cells": len(rows), "n_maps": int(c5.shape[1]),
                        "classes": [r["label"] for r in rows]}
    return None, {"reason": "no fold-1 model with C5/C6 blocks classified a validation cell correctly"}


GALLERY_KINDS = ("most confident correct", "most confident wrong", "most uncertain")


def _gallery(run_dir: Path, name: str, model, classes: list[str], preprocess: Preprocess) -> tuple[dict[str, np.ndarray] | None, dict]:
    """One arm's heat-map gallery (module docstring) and its ``artefacts.json`` entry (or the reason for none)."""
    from blastscope.inference.heatmaps import pixel_heatmaps

    path = fold_dir(run_dir, name, 0) / "predictions.csv"
    if not path.exists():
        return None, {"reason": "fold 1 is not finished"}
    preds = read_safe_csv(path, keep_default_na=False, dtype={"subject_id": str, "label": str})
    val = preds[preds["set"] == "oof"].copy()
    if val.empty:
        return None, {"reason": "fold 1 scored no validation-fold cells"}
    val["confidence"] = val[[f"p_{c}" for c in classes]].to_numpy(float).max(axis=1)
    rows, kinds = [], []
    for c in classes:
        g = val[val["label"] == c]
        right, wrong = g[g["pred"] == g["y"]], g[g["pred"] != g["y"]]
        for kind, pool, pick in ((GALLERY_KINDS[0], right, "max"), (GALLERY_KINDS[1], wrong, "max"), (GALLERY_KINDS[2], g, "min")):
            if len(pool):
                rows.append(pool.loc[pool["confidence"].idxmax() if pick == "max" else pool["confidence"].idxmin()])
                kinds.append(kind)
    cells = np.stack([load_preprocessed(r["path"], preprocess) for r in rows])
    pred = np.array([int(r["pred"]) for r in rows])
    heat = pixel_heatmaps([model], cells, pred)
    return ({"rgb": cells, "heat": heat.astype(np.float32), "labels": np.array([r["label"] for r in rows]).astype(str),
             "preds": np.array([classes[i] for i in pred]).astype(str), "kinds": np.array(kinds).astype(str),
             "probability": np.array([r["confidence"] for r in rows]), "paths": np.array([r["path"] for r in rows]).astype(str)},
            {"file": f"gallery_{name}.npz", "arm": name, "n_cells": len(rows),
             "method": "SmoothGrad at the pixels, through the stain and DCT layers (8 noisy copies)"})


def write_report_artefacts(run_dir: Path | str, cells_per_class: int = 2, max_points: int = 300,
                           force: bool = False) -> dict:
    """Compute the Fig. 4, 13 and 14 artefacts of a run folder (see module docstring).

    Returns the ``artefacts.json`` content. Arms whose fold-1 model is not trained are listed
    with the reason instead of failing.
    """
    run_dir = Path(run_dir)
    out = run_dir / ARTEFACTS_DIR
    config = read_config(run_dir / "config.yaml")
    classes = list(config.data.classes)
    folds = read_safe_csv(run_dir / "folds.csv", keep_default_na=False, dtype={"subject_id": str, "label": str})
    preprocess = Preprocess(canvas=config.data.canvas, resize=config.data.resize)
    own = [a for a in config.arms if a.model is not None]
    weights = {a.name: fold_dir(run_dir, a.name, 0) / "best.safetensors" for a in own}
    hashes = {n: _sha256(p) for n, p in weights.items() if p.exists()}
    previous = out / "artefacts.json"
    if not force and previous.exists():
        old = json.loads(previous.read_text())
        if (old.get("weights") == hashes and old.get("max_points") == max_points and old.get("cells_per_class") == cells_per_class
                and old.get("version") == ARTEFACTS_VERSION):
            return old
    rng = np.random.default_rng(0)
    labelled = folds[folds["label"].isin(classes)]
    dct_rows = _pick(labelled[labelled["fold"] > 0], classes, cells_per_class, rng)
    points = labelled[(labelled["fold"] == 0) | labelled["split"].isin(["validation", "test"])]
    if len(points) > max_points:
        points = points.iloc[np.sort(rng.choice(len(points), size=max_points, replace=False))]
    images = np.stack([load_preprocessed(p, preprocess) for p in points["path"]]) if len(points) else None
    info: dict = {"version": ARTEFACTS_VERSION, "fold": 1, "weights": hashes, "max_points": max_points, "cells_per_class": cells_per_class,
                  "dct": None, "features": {}, "skipped": {}}
    models = {}
    for arm in own:
        try:
            models[arm.name] = load_fold_model(run_dir, config, arm.name, 0)
        except (FileNotFoundError, ValueError) as e:
            info["skipped"][arm.name] = str(e)
    sd_arms = [(n, *_sd_layer(m)) for n, (m, _) in models.items()]
    sd_arms = [x for x in sd_arms if x[1] is not None]
    sd_arms.sort(key=lambda x: not x[2])  # an arm with a DCT layer first
    if sd_arms and len(dct_rows):
        name, sd, has_dct = sd_arms[0]
        cells = np.stack([load_preprocessed(p, preprocess) for p in dct_rows["path"]])
        arrays = _dct_cells(*models[name], sd, cells)
        arrays.update(rgb=cells, labels=dct_rows["label"].to_numpy().astype(str),
                      paths=dct_rows["path"].to_numpy().astype(str), coefficient_fraction=COEFFICIENT_FRACTION)
        atomic_write(out / "dct_cells.npz", lambda p: _savez(p, arrays))
        info["dct"] = {"file": "dct_cells.npz", "arm": name, "model_has_dct_layer": has_dct, "n_cells": len(cells)}
    elif not sd_arms:
        info["dct_reason"] = "no arm has a stain-deconvolution layer"
    maps, info["feature_maps"] = _feature_maps(run_dir, models, sd_arms, classes, preprocess)
    if maps is not None:
        atomic_write(out / "feature_maps.npz", lambda p: _savez(p, maps))
    info["galleries"] = {}
    from importlib.util import find_spec

    pixel_arms = [a.name for a in own if a.input == "rgb" and a.name in models]
    for name in pixel_arms:  # every CNN arm that reads pixels
        if find_spec("captum") is None:
            info["galleries"][name] = {"reason": "Captum is not installed (pip install 'blastscope[explain]')"}
            continue
        arrays, info["galleries"][name] = _gallery(run_dir, name, models[name][0], classes, preprocess)
        if arrays is not None:
            atomic_write(out / f"gallery_{name}.npz", lambda p, a=arrays: _savez(p, a))
    for name, (model, model_input) in models.items():
        if images is None:
            break
        try:
            c1, c6, block = _features(model, model_input, images)
        except ValueError as e:
            info["skipped"][name] = str(e)
            continue
        frames, explained = [], {}
        for layer, x in (("C1", c1), ("C6", c6)):
            xy, explained[layer] = _pca2(x)
            frames.append(pd.DataFrame({"path": points["path"].to_numpy(), "label": points["label"].to_numpy(),
                                        "set": np.where(points["fold"].to_numpy() == 0, "oof", points["split"].to_numpy()),
                                        "layer": layer, "pc1": xy[:, 0], "pc2": xy[:, 1]}))
        atomic_write_csv(out / f"features_{name}.csv", pd.concat(frames))
        info["features"][name] = {"file": f"features_{name}.csv", "c1_module": block, "explained_variance": explained,
                                  "n_cells": len(images), "c1_dims": int(c1.shape[1]), "c6_dims": int(c6.shape[1])}
    atomic_write_json(out / "artefacts.json", info)
    return info
