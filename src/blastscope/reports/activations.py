"""Report sections drawn from model activations saved in ``RUN/artefacts/`` (Figs. 4, 13 and 14).

The report never runs a model: :func:`blastscope.engine.artefacts.write_report_artefacts` (called
by ``blastscope report`` before rendering) stores the arrays; when they are absent the report
says so and how to get them.
"""
from __future__ import annotations

import numpy as np

from blastscope.reports import plots
from blastscope.reports.markup import FigureWriter, note
from blastscope.reports.run_data import RunData, read_csv

__all__ = ["dct_section", "feature_maps_section", "features_section"]

_MISSING = ("Model activations are not available (RUN/artefacts/ is missing or incomplete). "
            "`blastscope report RUN_DIR` computes them with the fold-1 models before rendering; "
            "it was skipped (--no-artefacts) or failed: see its log.")


def dct_section(data: RunData, fig: FigureWriter) -> str:
    out = ['<h2 id="dct">DCT sparsity of SD-layer outputs (Fig. 4)</h2>']
    info = (data.artefacts or {}).get("dct")
    path = data.artefacts_dir / "dct_cells.npz"
    if not info or not path.exists():
        reason = (data.artefacts or {}).get("dct_reason")
        return out[0] + note(f"Not available: {reason}." if reason else _MISSING, "warning")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    png = plots.dct_sparsity(arrays["rgb"], arrays["sd"], arrays["dct_log"], [str(v) for v in arrays["labels"]],
                             arrays["energy"], arrays["coefficient_fraction"], data.class_names,
                             f"{info['arm']} (fold-1 model): SD-layer maps and their DCT")
    source = "the model's own DCT layer input" if info.get("model_has_dct_layer") else "an illustration (this model has no DCT layer)"
    out.append(fig("dct_sparsity", png, f"Two training cells per class: RGB, trained SD-layer maps and log10(1+|DCT|) "
                                        f"(paper eq. 1), {source}; bottom: energy held by the largest coefficients"))
    k95 = []
    for label, curve in zip(arrays["labels"], arrays["energy"]):
        idx = int(np.searchsorted(curve, 0.95))
        frac = arrays["coefficient_fraction"][min(idx, len(curve) - 1)]
        k95.append(f"{label}: {frac:.2%}")
    out.append(note("Share of coefficients holding 95% of the DCT energy (smaller = sparser): " + "; ".join(k95)))
    return "\n".join(out)


def feature_maps_section(data: RunData, fig: FigureWriter) -> str:
    out = ['<h2 id="maps">C5 and C6 feature maps (Fig. 13)</h2>']
    info = (data.artefacts or {}).get("feature_maps") or {}
    path = data.artefacts_dir / "feature_maps.npz"
    if not info.get("file") or not path.exists():
        return out[0] + note(f"Not available: {info['reason']}." if info.get("reason") else _MISSING, "warning")
    with np.load(path, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    labels = [str(v) for v in a["labels"]]
    png = plots.feature_maps(a["rgb"], a["c5"], a["c6"], labels, a["probability"], data.class_names,
                             f"{info['arm']} (fold-1 model): C5 and C6 maps of correctly classified validation cells")
    out.append(fig(f"feature_maps_{info['arm']}", png,
                   f"One correctly classified validation-fold cell per class ({', '.join(labels)}): the cell, then the "
                   f"first {info['n_maps']} C5 and C6 feature maps (the model's probability of the true class beside it)"))
    return "\n".join(out)


def features_section(data: RunData, fig: FigureWriter) -> str:
    out = ['<h2 id="features">First- and last-convolution features (Fig. 14)</h2>']
    features = (data.artefacts or {}).get("features") or {}
    for arm, info in features.items():
        path = data.artefacts_dir / info["file"]
        if not path.exists():
            continue
        f = read_csv(path)
        layers = {layer: (g[["pc1", "pc2"]].to_numpy(float), g["label"].to_numpy()) for layer, g in f.groupby("layer", sort=True)}
        png = plots.feature_projection(layers, info.get("explained_variance", {}), data.class_names,
                                       f"{arm} (fold-1 model): PCA of C1 ({info.get('c1_module', '')}) and C6 features")
        out.append(fig(f"features_{arm}", png, f"{arm}: 2-D PCA of first-convolution (C1, pooled to 16x16) and last "
                                               f"feature maps (C6) of {info['n_cells']} cells, coloured by class"))
    for arm, why in ((data.artefacts or {}).get("skipped") or {}).items():
        out.append(note(f"{arm}: {why}"))
    if len(out) == 1:
        out.append(note(_MISSING, "warning"))
    return "\n".join(out)


def gallery_section(data: RunData, fig: FigureWriter) -> str:
    """Per arm and class: the most confident correct, most confident wrong and most uncertain cell, with heat maps."""
    out = ['<h2 id="gallery">Why the model decided: heat-map galleries</h2>']
    galleries = (data.artefacts or {}).get("galleries") or {}
    for arm, info in galleries.items():
        path = data.artefacts_dir / info.get("file", "")
        if not info.get("file") or not path.exists():
            out.append(note(f"{arm}: not available: {info.get('reason', 'no gallery file')}.", "warning"))
            continue
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        titles = [f"true {lab}: {kind}\npredicted {pred} ({p:.2f})"
                  for lab, kind, pred, p in zip(a["labels"], a["kinds"], a["preds"], a["probability"])]
        png = plots.heatmap_gallery(a["rgb"], a["heat"], titles, 3, f"{arm} (fold-1 model), validation-fold cells")
        out.append(fig(f"gallery_{arm}", png,
                       f"{arm}: per true class, the most confident correct, most confident wrong and most uncertain cell of "
                       "fold 1's validation fold; warm colours = pixels whose change moves the predicted class's "
                       f"probability most ({info.get('method', '')})"))
    if len(out) == 1:
        out.append(note(_MISSING, "warning"))
    return "\n".join(out)
