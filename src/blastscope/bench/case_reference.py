"""The straightforward reference of the ``predict_case`` benchmark, run as its own process:
what the authors' released test script does, one image at a time and one fold model after another.

``python -m blastscope.bench.case_reference BUNDLE FOLDER OUT.csv``: for every image (sorted):
read it, preprocess it, and for each fold model in turn run the CNN on that one image, apply the
theta rule with the fold's SVM on that one image's spectral features, then take the mode of the
fold labels; one CSV row per image. The models and SVMs are the bundle's (same weights), so the
labels must equal ``blastscope predict``'s.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np


def main(bundle: str, folder: str, out: str) -> None:
    import torch

    from blastscope.data.decode import IMAGE_SUFFIXES, read_image
    from blastscope.engine.tensors import to_model_input
    from blastscope.inference.bundle import load_bundle
    from blastscope.layers.spectral_average import SpectralAverage, spectral_mode

    b = load_bundle(bundle)
    models = b.torch_models()
    names = b.class_names
    thetas = b.fold_thetas
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    rows = []
    with torch.inference_mode():
        for path in files:
            image = b.preprocess(read_image(path))
            x = to_model_input(torch.from_numpy(image[None]))
            labels = []
            for (model, model_input), svm, theta in zip(models, b.svms, thetas):
                maps = model.forward_features(model_input(torch.from_numpy(image[None])) if model_input else x)
                p = torch.softmax(model.forward_head(maps), dim=1)[0].numpy()
                label = int(p.argmax())
                if svm is not None and theta is not None and p.max() <= theta:
                    feats = SpectralAverage(spectral_mode(model))(maps).reshape(1, -1).numpy()
                    label = int(svm.predict(feats)[0])
                labels.append(label)
            counts = np.bincount(labels, minlength=len(names))
            rows.append({"file": str(path), "pred": names[int(counts.argmax())], "votes": "|".join(names[v] for v in labels)})
    with open(out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "pred", "votes"])
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main(*sys.argv[1:4])
