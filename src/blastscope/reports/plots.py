"""Every figure of the reports; the only module that touches matplotlib (optional extra ``plots``).

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no global state, no
display) and returned as PNG bytes. Inputs are plain arrays and dicts prepared by the report
sections; nothing here reads files. Layouts follow Gehlot et al. 2020: Fig. 4 (DCT sparsity of
SD-layer outputs), Fig. 10 (F1 per class and balanced accuracy against theta, a line per fold
model and the majority vote), Fig. 11 (per-subject accuracy and error rate), Fig. 14 (2-D
projection of first- and last-conv features coloured by class).
"""
from __future__ import annotations

import importlib.util
import io
from collections.abc import Sequence

import numpy as np

__all__ = ["available", "training_curves", "roc_curves", "confusion_matrices", "theta_sweep",
           "subject_accuracy", "dct_sparsity", "feature_projection"]

DPI = 100


def available() -> bool:
    """Whether matplotlib is installed (``pip install blastscope[plots]``)."""
    return importlib.util.find_spec("matplotlib") is not None


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _class_colour(i: int) -> str:
    return ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"][i % 6]


def training_curves(histories: dict[str, object], title: str) -> bytes:
    """Loss and accuracy per epoch; ``histories``: label -> DataFrame with history.csv columns."""
    fig = _figure(10, 3.6)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for i, (label, h) in enumerate(histories.items()):
        c = f"C{i % 10}"
        ax_loss.plot(h["epoch"], h["train_loss"], color=c, label=f"{label} train")
        ax_loss.plot(h["epoch"], h["val_loss"], color=c, linestyle="--", label=f"{label} val")
        ax_acc.plot(h["epoch"], h["train_accuracy"], color=c)
        ax_acc.plot(h["epoch"], h["val_accuracy"], color=c, linestyle="--")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss (solid train, dashed validation)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title="accuracy")
    ax_loss.legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    return _png(fig)


def roc_curves(curves: Sequence[dict], title: str) -> bytes:
    """ROC curves; each dict: ``label, fpr, tpr, auc, low, high`` (DeLong 95% CI)."""
    fig = _figure(5.2, 5)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.7", linestyle=":", linewidth=1)
    for i, c in enumerate(curves):
        ci = f" [{c['low']:.2f}, {c['high']:.2f}]" if c.get("low") is not None else ""
        ax.step(c["fpr"], c["tpr"], where="post", color=f"C{i % 10}", label=f"{c['label']}: AUC {c['auc']:.3f}{ci}")
    ax.set(xlabel="1 - specificity (false-positive rate)", ylabel="sensitivity (true-positive rate)",
           xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), title=title)
    ax.legend(fontsize=7, loc="lower right", title="AUC [DeLong 95% CI]", title_fontsize=7)
    return _png(fig)


def confusion_matrices(panels: Sequence[tuple[str, Sequence[Sequence[int]], Sequence[str]]], title: str) -> bytes:
    """One heat map per ``(panel title, k x k matrix rows=true, class names)``."""
    n = len(panels)
    fig = _figure(3.3 * n + 0.4, 3.4)
    axes = np.atleast_1d(fig.subplots(1, n))
    for ax, (name, matrix, classes) in zip(axes, panels):
        m = np.asarray(matrix, dtype=float)
        ax.imshow(m / max(m.sum(axis=1, keepdims=True).max(), 1), cmap="Blues", vmin=0, vmax=1)
        for (r, c), v in np.ndenumerate(m):
            share = v / max(m[r].sum(), 1)
            ax.text(c, r, f"{int(v)}\n{share:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if share > 0.6 else "black")
        ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes,
               xlabel="predicted", ylabel="true", title=name)
    fig.suptitle(title)
    return _png(fig)


def theta_sweep(thetas: Sequence[float], series: dict[str, dict[str, Sequence[float]]],
                panels: Sequence[tuple[str, str]], title: str) -> bytes:
    """Fig. 10: a panel per ``(metric key, label)``; ``series``: model label -> metric key -> values."""
    fig = _figure(4 * len(panels), 3.6)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (key, label) in zip(axes, panels):
        for i, (name, values) in enumerate(series.items()):
            vote = name.lower().startswith("majority")
            ax.plot(thetas, values[key], marker="o", markersize=3, label=name,
                    color="black" if vote else f"C{i % 10}", linewidth=2.2 if vote else 1.2)
        ax.set(xlabel="confidence probability theta", ylabel=label, title=label)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    return _png(fig)


def _short(label: str, width: int = 24) -> str:
    """``label`` cut to its last ``width`` characters behind an ellipsis (image-level "subjects"
    are file paths, which would squeeze the bars to nothing)."""
    return label if len(label) <= width else "\u2026" + label[-(width - 1):]


def subject_accuracy(rows: Sequence[dict], class_names: Sequence[str], title: str) -> bytes:
    """Fig. 11: per subject accuracy (coloured by the subject's class) and error rate (grey), stacked."""
    rows = sorted(rows, key=lambda r: (list(class_names).index(r["label"]) if r["label"] in class_names else 99,
                                       str(r["subject_id"])))
    fig = _figure(min(max(5.0, 2 + 0.32 * len(rows)), 18), 3.8)
    ax = fig.subplots()
    x = np.arange(len(rows))
    acc = np.array([r["accuracy"] for r in rows])
    colours = [_class_colour(list(class_names).index(r["label"])) if r["label"] in class_names else "0.5" for r in rows]
    ax.bar(x, acc, color=colours)
    ax.bar(x, 1 - acc, bottom=acc, color="0.85")
    ax.set_xticks(x, [f"{_short(str(r['subject_id']))} ({r['cells']})" for r in rows], rotation=90, fontsize=7)
    ax.set(ylim=(0, 1), ylabel="accuracy (colour) / error rate (grey)", title=title)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=_class_colour(i), label=c) for i, c in enumerate(class_names)] +
              [Patch(color="0.85", label="error rate")], fontsize=7, loc="lower right")
    return _png(fig)


def dct_sparsity(rgb: np.ndarray, sd: np.ndarray, dct_log: np.ndarray, labels: Sequence[str],
                 energy: np.ndarray, fractions: np.ndarray, class_names: Sequence[str], title: str) -> bytes:
    """Fig. 4: per cell the RGB image, an SD-layer map and its log-DCT magnitude; energy compaction.

    rgb (N, S, S, 3) uint8; sd, dct_log (N, 3, S, S); energy (N, P) energy fraction of the largest
    ``fractions`` (P,) of the coefficients.
    """
    n = len(rgb)
    fig = _figure(11, 2.3 * n + 3)
    grid = fig.add_gridspec(n + 1, 5, height_ratios=[1] * n + [1.4])
    vmax = float(np.percentile(dct_log, 99.5)) or 1.0
    for i in range(n):
        c = list(class_names).index(labels[i]) if labels[i] in class_names else 0
        panels = [(rgb[i], "RGB", None), (sd[i, 0], "SD map 1", "gray"), (dct_log[i, 0], "log10(1+|DCT|) map 1", "magma"),
                  (sd[i, 1], "SD map 2", "gray"), (dct_log[i, 1], "log10(1+|DCT|) map 2", "magma")]
        for j, (img, name, cmap) in enumerate(panels):
            ax = fig.add_subplot(grid[i, j])
            kw = {"vmin": 0, "vmax": vmax} if "DCT" in name else {}
            ax.imshow(img, cmap=cmap, **kw)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=8)
            if j == 0:
                ax.set_ylabel(labels[i], color=_class_colour(c), fontsize=10)
    ax = fig.add_subplot(grid[n, :])
    for i in range(n):
        c = list(class_names).index(labels[i]) if labels[i] in class_names else 0
        ax.semilogx(fractions, energy[i], color=_class_colour(c), label=labels[i])
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.set(xlabel="fraction of DCT coefficients kept (largest first)", ylabel="fraction of energy",
           title="energy compaction: the sparser the cell, the faster the curve reaches 1")
    fig.suptitle(title)
    return _png(fig)


def feature_projection(layers: dict[str, tuple[np.ndarray, Sequence[str]]], explained: dict[str, Sequence[float]],
                       class_names: Sequence[str], title: str) -> bytes:
    """Fig. 14: a scatter per layer of 2-D points ``(xy (N, 2), labels (N,))`` coloured by class."""
    fig = _figure(5 * len(layers), 4.4)
    axes = np.atleast_1d(fig.subplots(1, len(layers)))
    for ax, (layer, (xy, labels)) in zip(axes, layers.items()):
        labels = np.asarray(labels)
        for i, c in enumerate(class_names):
            m = labels == c
            ax.scatter(xy[m, 0], xy[m, 1], s=12, alpha=0.75, color=_class_colour(i), label=f"{c} ({int(m.sum())})")
        ev = explained.get(layer, [0, 0])
        ax.set(xlabel=f"PC1 ({ev[0]:.0%} of variance)", ylabel=f"PC2 ({ev[1]:.0%})", title=layer)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return _png(fig)


def feature_maps(rgb: np.ndarray, c5: np.ndarray, c6: np.ndarray, labels: Sequence[str], probability: Sequence[float],
                 class_names: Sequence[str], title: str) -> bytes:
    """Fig. 13: per cell (one per class) the RGB image, then its first C5 and C6 feature maps.

    rgb (N, S, S, 3) uint8; c5, c6 (N, M, h, w) float; probability (N,) of the true class.
    """
    n, m = len(rgb), c5.shape[1]
    fig = _figure(1.3 * (1 + 2 * m), 1.6 * n + 0.6)
    axes = np.asarray(fig.subplots(n, 1 + 2 * m, squeeze=False))
    for i in range(n):
        c = list(class_names).index(labels[i]) if labels[i] in class_names else 0
        panels = [(rgb[i], "cell", None)] + [(c5[i, j], f"C5 #{j + 1}", "viridis") for j in range(m)] + \
                 [(c6[i, j], f"C6 #{j + 1}", "viridis") for j in range(m)]
        for j, (img, name, cmap) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(img, cmap=cmap)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=7)
        axes[i, 0].set_ylabel(f"{labels[i]} (p={probability[i]:.2f})", color=_class_colour(c), fontsize=8)
    fig.suptitle(title)
    return _png(fig)


def reliability_diagrams(panels: Sequence[tuple[str, dict[str, Sequence[dict]]]], title: str) -> bytes:
    """One panel per set: accuracy against mean confidence per equal-mass bin, raw and calibrated,
    with the diagonal (perfect calibration); marker area grows with the bin's cells."""
    fig = _figure(3.6 * max(len(panels), 1), 3.4)
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)[0]
    for ax, (label, curves) in zip(axes, panels):
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect")
        for i, (name, points) in enumerate(curves.items()):
            if points:
                ax.plot([p["confidence"] for p in points], [p["accuracy"] for p in points], marker="o", lw=1.2,
                        color=_class_colour(i), label=name, markersize=4)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("mean confidence (top class)")
        ax.set_ylabel("accuracy")
        import textwrap

        ax.set_title("\n".join(textwrap.wrap(label, 42)[:3]), fontsize=8)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def heatmap_gallery(rgb: np.ndarray, heat: np.ndarray, titles: Sequence[str], columns: int, title: str) -> bytes:
    """A grid of cells, each blended with its heat map (:func:`blastscope.inference.heatmaps.overlay`)."""
    from blastscope.inference.heatmaps import overlay

    rows = max(1, -(-len(rgb) // columns))
    fig = _figure(2.3 * columns, 2.5 * rows)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (image, h, t) in enumerate(zip(rgb, heat, titles)):
        ax = axes.ravel()[i]
        ax.imshow(overlay(image, h))
        ax.set_title(t, fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _png(fig)
