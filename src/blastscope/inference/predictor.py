"""One predictor for the CLI and the web service: files -> per-cell predictions of a bundle.

Pipeline per chunk of files: decode (:func:`blastscope.data.decode.read_image`) -> the run's
:class:`~blastscope.data.preprocess.Preprocess` -> every fold model, batched (torch or onnxruntime)
-> for auxiliary arms the theta rule with the fold's SVM (Gehlot et al. 2020 section 3.4.2,
eqs. 4-5; :func:`~blastscope.estimators.theta_rule.theta_combine`) -> majority vote over the fold
models (section 4.3, eq. 11; :func:`~blastscope.evaluation.ensemble.majority_vote`, ties by mean
probability). This is what the cross-validation does for held-out cells, so a bundle reproduces a
run's voted predictions.

Per cell: the voted class, the class probabilities (mean over the fold models of the probability of
the classifier that answered in that fold: the CNN's softmax where the CNN answered, the auxiliary
SVM's Platt-scaled probability where the SVM answered), ``confidence`` (that mean probability of
the voted class), ``agreement`` (fraction of fold models voting for it),
``answered_by`` ("cnn", "svm" or "mixed" across folds) with ``svm_share``, and ``review`` when the
confidence is below a threshold. Files that cannot be decoded are reported, never fatal.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from blastscope.data.decode import ImageReadError, read_image
from blastscope.engine.progress import ProgressFactory, no_progress
from blastscope.estimators.theta_rule import theta_combine
from blastscope.evaluation.ensemble import majority_vote
from blastscope.inference.bundle import Bundle, load_bundle
from blastscope.inference.files import BadFile

__all__ = ["Predictor", "CellPredictions", "PredictionResult", "BACKENDS", "fold_answer"]

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")


def fold_answer(logp: np.ndarray, feats: np.ndarray | None, svm, theta: float | None, temperature: float | None,
                theta_on: str = "raw") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What one fold model answers for N cells from its CNN's log-probabilities and spectral features.

    The theta rule (Gehlot et al. 2020 eqs. 4-5) with the fold's SVM where it has one: cells whose
    CNN confidence (raw, or temperature-scaled with ``theta_on="calibrated"``) is at most ``theta``
    are answered by the SVM, with its Platt probability. Returns (CNN softmax, labels, "cnn"/"svm"
    per cell, probability of the classifier that answered, the same with the CNN's temperature).
    """
    from blastscope.evaluation.calibration import apply_temperature

    cnn_proba = np.exp(logp.astype(np.float64))
    cnn_proba /= cnn_proba.sum(axis=1, keepdims=True)
    cal_cnn = cnn_proba if temperature is None else apply_temperature(cnn_proba, temperature)
    if svm is None or theta is None:
        return cnn_proba, cnn_proba.argmax(axis=1), np.full(len(logp), "cnn"), cnn_proba, cal_cnn
    svm_pred, svm_proba = svm.predict_and_proba(feats)
    pred, source = theta_combine(cal_cnn if theta_on == "calibrated" else cnn_proba, svm_pred.astype(np.int64), theta)
    by_svm = (source == "svm")[:, None]
    return cnn_proba, pred, source, np.where(by_svm, svm_proba, cnn_proba), np.where(by_svm, svm_proba, cal_cnn)


@dataclass
class CellPredictions:
    """Arrays for N cells and F fold models (K classes).

    ``fold_proba`` (F, N, K) probabilities of the classifier that answered (CNN softmax, or the
    SVM's Platt probability where ``fold_source`` is "svm"); ``fold_cnn_proba`` (F, N, K) the CNN
    softmax alone; ``fold_pred`` (F, N) labels after the theta rule (the argmax of ``fold_proba``);
    ``fold_source`` (F, N) "cnn"/"svm"; ``pred`` (N,) voted labels; ``agreement`` (N,) in (0, 1];
    ``proba`` (N, K) mean of ``fold_proba``; ``cal_proba`` (N, K) the same mean of the calibrated
    probabilities (each fold CNN's softmax temperature-scaled, the SVM's Platt probability);
    ``ood_ratio`` (N,) the median over fold models of the out-of-domain score over its threshold
    (above 1: outside), ``out_of_domain`` (N,) True when most fold models flag the cell (None without
    out-of-domain checks); ``sets`` (N, K) the conformal prediction sets (None without calibration).
    """

    fold_proba: np.ndarray
    fold_pred: np.ndarray
    fold_source: np.ndarray
    pred: np.ndarray
    agreement: np.ndarray
    proba: np.ndarray
    fold_cnn_proba: np.ndarray | None = None
    cal_proba: np.ndarray | None = None
    ood_ratio: np.ndarray | None = None
    out_of_domain: np.ndarray | None = None
    sets: np.ndarray | None = None


@dataclass
class PredictionResult:
    """``cells``: one row per requested file (``status`` "ok" or "error"); ``bad``: the failures."""

    cells: pd.DataFrame
    bad: list[BadFile] = field(default_factory=list)
    seconds: float = 0.0


class Predictor:
    """Predict cell images with a bundle.

    Args:
        bundle: a :class:`Bundle` or the path of a bundle directory (verified on load).
        backend: "torch" or "onnx" (the bundle must have been exported with ``--onnx``).
        batch_size: images per forward pass, >= 1; files are decoded in chunks of 8 batches.
        theta: override the bundle's confidence probability for auxiliary arms, in [0, 1].
        alpha: the conformal error rate per class, in (0, 0.5); default the bundle's.
        device: "cpu" (default), "auto", "cuda" or "cuda:N" for the torch backend (the bundle's
            weights are CPU float32 whatever device trained them).
        precision: "auto" (default: int8 where the bundle has accepted int8 from ``export --int8``
            for this backend, and for torch the device is the CPU; else float32), "float32" or
            "int8"; the precision that ran is ``self.precision``.
        progress: progress factory (the CLI passes a tqdm one).
    """

    def __init__(self, bundle: Bundle | Path | str, backend: str = "torch", batch_size: int = 32,
                 theta: float | None = None, progress: ProgressFactory = no_progress, alpha: float | None = None,
                 device: str = "cpu", precision: str = "auto") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got backend={backend!r}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got batch_size={batch_size}")
        if theta is not None and not 0.0 <= float(theta) <= 1.0:
            raise ValueError(f"theta must be in [0, 1], got theta={theta}")
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle, backend=backend)
        self.backend = backend
        self.batch_size = int(batch_size)
        self.theta = self.bundle.theta if theta is None else float(theta)
        self.thetas = self.bundle.fold_thetas if theta is None else [float(theta)] * len(self.bundle.folds)
        self.progress = progress
        self.preprocess = self.bundle.preprocess
        if precision not in ("auto", "float32", "int8"):
            raise ValueError(f"precision must be auto, float32 or int8, got precision={precision!r}")
        if backend == "torch":
            from blastscope.engine.device import resolve_device

            self.device = resolve_device(device)
        elif device not in ("cpu", "auto"):
            raise ValueError(f"the onnx backend runs on the CPU; --device {device} needs --backend torch")
        else:
            self.device = "cpu"  # onnxruntime's CPU provider; the onnx backend needs no PyTorch at all
        on_cpu = backend == "onnx" or self.device.type == "cpu"
        if precision == "auto":
            if backend == "onnx":
                has = self.bundle.has_int8
            else:
                from blastscope.inference.torch_int8 import engine_available

                has = self.bundle.has_torch_int8 and engine_available()  # else float32, as on any other machine
            precision = "int8" if on_cpu and has else "float32"
        self.precision = precision
        if precision == "int8" and not on_cpu:
            raise ValueError(f"PyTorch int8 runs on the CPU (its quantized engine), not on {self.device}; "
                             "use --device cpu or --precision float32")
        if backend == "onnx":
            self._models = self.bundle.onnx_models(precision)
        elif precision == "int8":
            self._models = self.bundle.torch_int8_models()
        else:
            self._models = self.bundle.torch_models()
            if self.device.type != "cpu":
                for model, _ in self._models:
                    model.to(self.device)
        trust = self.bundle.trust
        self.temperatures = self.bundle.temperatures
        self.theta_on = trust.get("theta_on", "raw")
        self.calibrated = any(t is not None for t in self.temperatures)
        conformal = trust.get("conformal")
        self.alpha = None
        self.set_thresholds = None
        if alpha is not None and not 0.0 < float(alpha) < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got alpha={alpha}")
        if conformal is not None:
            from blastscope.evaluation.conformal import mondrian_thresholds

            self.alpha = float(conformal["alpha"] if alpha is None else alpha)
            self.set_thresholds = mondrian_thresholds([np.asarray(s) for s in conformal["scores"]], self.alpha)
        elif alpha is not None:
            logger.warning("this bundle has no conformal calibration (trust.calibration was not set); --alpha is ignored")
        self.patient_threshold = trust.get("patient_threshold")

    @property
    def class_names(self) -> list[str]:
        return self.bundle.class_names

    def _fold_outputs(self, i: int, images: np.ndarray, spectral: bool) -> tuple[np.ndarray, np.ndarray | None]:
        if self.backend == "torch":
            from blastscope.engine.inference import predict_arrays

            model, model_input = self._models[i]
            return predict_arrays(model, images, self.batch_size, spectral=spectral, input_fn=model_input)
        logps, feats = [], []
        for start in range(0, len(images), self.batch_size):
            lp, f = self._models[i](images[start:start + self.batch_size])
            logps.append(lp)
            feats.append(f)
        return np.concatenate(logps), (np.concatenate(feats) if spectral else None)

    def predict_images(self, images: np.ndarray) -> CellPredictions:
        """Predict preprocessed images, uint8 N x S x S x 3 (``self.preprocess`` output)."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(images) == 0:
            raise ValueError(f"images must be a non-empty uint8 N x H x W x 3 array, got {images.dtype} {images.shape}")
        from blastscope.evaluation.conformal import prediction_sets

        probas, cal_probas, cnn_probas, preds, sources, ratios, flags = [], [], [], [], [], [], []
        oods = self.bundle.oods or [None] * len(self.bundle.svms)
        for i, svm in enumerate(self.bundle.svms):
            logp, feats = self._fold_outputs(i, images, spectral=svm is not None or oods[i] is not None)
            cnn_proba, pred, source, proba, cal = fold_answer(logp, feats, svm, self.thetas[i], self.temperatures[i],
                                                              self.theta_on)
            if oods[i] is not None:
                score, flag = oods[i].flag(feats)
                ratios.append(score / max(oods[i].threshold_, 1e-12))
                flags.append(flag)
            probas.append(proba)
            cal_probas.append(cal)
            cnn_probas.append(cnn_proba)
            preds.append(pred)
            sources.append(source)
        fold_proba, fold_pred = np.stack(probas), np.stack(preds).astype(np.int64)
        vote, agreement = majority_vote(fold_pred, fold_proba)
        cal_proba = np.stack(cal_probas).mean(axis=0)
        ood_ratio = np.median(np.stack(ratios), axis=0) if ratios else None
        out_of_domain = np.stack(flags).mean(axis=0) > 0.5 if flags else None
        sets = prediction_sets(cal_proba, self.set_thresholds) if self.set_thresholds is not None else None
        return CellPredictions(fold_proba, fold_pred, np.stack(sources), vote, agreement, fold_proba.mean(axis=0),
                               np.stack(cnn_probas), cal_proba, ood_ratio, out_of_domain, sets)

    def load(self, path: Path) -> np.ndarray:
        """The cell at ``path`` decoded and preprocessed as the bundle's models read it."""
        return self.preprocess(read_image(path))

    def predict_files(self, files: Sequence[Path | str], subject_ids: Sequence[str] | None = None,
                      review_below: float = 0.9) -> PredictionResult:
        """Predict image files; unreadable ones get ``status="error"`` and are listed in ``bad``.

        Args:
            files: image paths (see :func:`blastscope.inference.files.collect_inputs`).
            subject_ids: one id per file (``""`` = unknown); default all unknown.
            review_below: flag cells whose confidence is below this, in [0, 1].
        """
        if not 0.0 <= float(review_below) <= 1.0:
            raise ValueError(f"review_below must be in [0, 1], got review_below={review_below}")
        files = [Path(f) for f in files]
        subject_ids = list(subject_ids) if subject_ids is not None else [""] * len(files)
        if len(subject_ids) != len(files):
            raise ValueError(f"need one subject id per file, got {len(subject_ids)} for {len(files)} files")
        t0 = time.perf_counter()
        rows: list[dict] = []
        bad: list[BadFile] = []
        chunk = self.batch_size * 8

        def load(j: int) -> np.ndarray | str:
            try:
                return self.load(files[j])
            except (ImageReadError, ValueError) as e:
                return e.reason if isinstance(e, ImageReadError) else str(e)

        from concurrent.futures import ThreadPoolExecutor

        from blastscope.engine.threads import worker_threads

        # decoding and resizing release the GIL (OpenCV): one thread per core the run may use
        with self.progress(total=len(files), desc="predict") as bar, \
                ThreadPoolExecutor(worker_threads(), thread_name_prefix="decode") as pool:
            for start in range(0, len(files), chunk):
                part = list(range(start, min(start + chunk, len(files))))
                images, ok = [], []
                for j, got in zip(part, pool.map(load, part)):
                    if isinstance(got, str):
                        bad.append(BadFile(str(files[j]), got))
                        rows.append(self._error_row(files[j], subject_ids[j], got))
                    else:
                        images.append(got)
                        ok.append(j)
                if ok:
                    result = self.predict_images(np.stack(images))
                    rows += self.cell_rows(result, [files[j] for j in ok], [subject_ids[j] for j in ok], review_below)
                bar.update(len(part))
        cells = pd.DataFrame(rows, columns=self.columns)
        order = {str(f): i for i, f in enumerate(files)}
        cells = cells.sort_values("file", key=lambda s: s.map(order)).reset_index(drop=True)
        return PredictionResult(cells, bad, time.perf_counter() - t0)

    @property
    def columns(self) -> list[str]:
        return (["file", "subject_id", "status", "error", "pred"] + [f"p_{c}" for c in self.class_names]
                + ["confidence", "agreement", "answered_by", "svm_share", "fold_preds", "prediction_set",
                   "out_of_domain", "ood_score", "review", "review_reason"] + [f"raw_p_{c}" for c in self.class_names])

    def _error_row(self, file: Path, subject: str, reason: str) -> dict:
        return {"file": str(file), "subject_id": subject, "status": "error", "error": reason}

    def cell_rows(self, r: CellPredictions, files: list[Path] | list[str], subjects: list[str], review_below: float = 0.9) -> list[dict]:
        """One output row per cell of ``r`` (the columns of :attr:`columns`), named by ``files``."""
        names = self.class_names
        svm_share = (r.fold_source == "svm").mean(axis=0)
        rows = []
        proba = r.cal_proba if r.cal_proba is not None else r.proba
        if r.sets is not None:
            from blastscope.evaluation.conformal import set_flags

            flags = set_flags(r.sets, r.pred)  # the rule the cross-validation's review rate uses
        for n, (file, subject) in enumerate(zip(files, subjects)):
            confidence = float(proba[n, r.pred[n]])
            share = float(svm_share[n])
            row = {"file": str(file), "subject_id": subject, "status": "ok", "error": "", "pred": names[r.pred[n]]}
            row.update({f"p_{c}": float(proba[n, i]) for i, c in enumerate(names)})
            row.update({f"raw_p_{c}": float(r.proba[n, i]) for i, c in enumerate(names)})
            ood = bool(r.out_of_domain[n]) if r.out_of_domain is not None else False
            in_set = [names[i] for i in np.flatnonzero(r.sets[n])] if r.sets is not None else None
            reasons = self._reasons(in_set, flags[n] if r.sets is not None else None, names[r.pred[n]], confidence,
                                    review_below, ood, r.ood_ratio[n] if r.ood_ratio is not None else None)
            row.update(confidence=confidence, agreement=float(r.agreement[n]),
                       answered_by="cnn" if share == 0 else "svm" if share == 1 else "mixed", svm_share=share,
                       fold_preds="|".join(names[p] for p in r.fold_pred[:, n]),
                       prediction_set="|".join(in_set) if in_set is not None else "",
                       out_of_domain=ood, ood_score=float(r.ood_ratio[n]) if r.ood_ratio is not None else float("nan"),
                       review=bool(reasons), review_reason="; ".join(reasons))
            rows.append(row)
        return rows

    def _reasons(self, in_set: list[str] | None, flag: str | None, pred: str, confidence: float, review_below: float,
                 ood: bool, ood_ratio: float | None) -> list[str]:
        """Why a cell is flagged for review, in words (empty: not flagged); ``flag`` is
        :func:`~blastscope.evaluation.conformal.set_flags`' word for the cell's prediction set."""
        reasons = []
        if in_set is not None:
            if flag == "empty":
                reasons.append(f"empty prediction set at alpha {self.alpha:g}: unlike any cell the model was calibrated on")
            elif flag == "ambiguous":
                reasons.append(f"prediction set {{{', '.join(in_set)}}} at alpha {self.alpha:g}: the model cannot tell "
                               "these classes apart at this error rate")
            elif flag == "disagrees":
                reasons.append(f"prediction set {{{in_set[0]}}} at alpha {self.alpha:g} disagrees with the voted class {pred}")
        elif confidence < review_below:
            reasons.append(f"confidence {confidence:.2f} below {review_below:g} (this bundle has no conformal calibration)")
        if ood:
            reasons.append(f"out of domain: its features are {ood_ratio:.1f}x the distance threshold from the training cells")
        return reasons
