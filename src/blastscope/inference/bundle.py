"""Model bundles: one arm of a finished run folder, packed for prediction without pickle.

Layout (``<fold>`` is 1-based, Model1..Modelk of the reports)::

    bundle.json                 schema and toolkit version, recipe, arm, model id and kwargs, class
                                names, positive class (or list of classes), theta, preprocessing,
                                model input, folds
    model_fold<k>.safetensors   the fold's CNN state dict (for an auxiliary arm: its source CNN)
    svm_fold<k>.safetensors     auxiliary arms: SpectralSVM.to_arrays() (support vectors, dual
                                coefficients, intercept, gamma, ..., and the Platt slope
                                ``platt_a`` that gives SVM-answered cells their own
                                probability), absent if the fold fell back
    input_fold<k>.safetensors   fitted model-input arrays, if the arm's input has any
    ood_fold<k>.safetensors     the fold CNN's out-of-domain check (:class:`MahalanobisOOD` arrays)
    stain_range.safetensors     the training set's stain reference and range (:class:`StainRange`)
    model_fold<k>.onnx          with ``onnx=True``: uint8 images -> log-probabilities, spectral features
    model_fold<k>.int8.onnx     with ``int8=True`` and ``onnx=True``, if accepted: the int8 graph
    int8_fold<k>.safetensors    with ``int8=True``, if accepted: PyTorch int8's activation scales and
                                zero points (:mod:`blastscope.inference.torch_int8`; the int8
                                network is rebuilt from the fold's float32 weights at load)
    manifest.json               SHA-256 of every other file (:mod:`blastscope.inference.manifest`)

:func:`load_bundle` verifies the manifest first, then the schema and toolkit major version, then
(for the torch backend) every tensor shape against a freshly built model, and parses nothing but
JSON and safetensors (ONNX files are protobuf graphs run by onnxruntime). Writing bundles is
:mod:`blastscope.inference.export`.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blastscope import __version__
from blastscope.data.preprocess import Preprocess
from blastscope.estimators.svm_arrays import SVMArrays
from blastscope.evaluation.operating_point import normalize_positive
from blastscope.inference.manifest import BundleError, verify_manifest

__all__ = ["SCHEMA_VERSION", "BUNDLE_FILE", "FORMAT", "Bundle", "BundleError", "FoldFiles", "load_bundle", "read_arrays",
           "read_ood", "read_svm"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BUNDLE_FILE = "bundle.json"
FORMAT = "blastscope-bundle"


@dataclass(frozen=True)
class FoldFiles:
    """File names (relative to the bundle) of one fold model; ``fold`` is 1-based."""

    fold: int
    weights: str
    svm: str | None = None
    input: str | None = None
    onnx: str | None = None
    ood: str | None = None
    onnx_int8: str | None = None
    torch_int8: str | None = None


@dataclass
class Bundle:
    """A verified bundle. Torch models and ONNX sessions are built on first use."""

    path: Path
    spec: dict
    folds: list[FoldFiles]
    svms: list[SVMArrays | None]
    input_arrays: list[dict[str, np.ndarray]]
    oods: list = field(default_factory=list)
    stain_range: object | None = None
    _torch: list | None = field(default=None, repr=False)
    _onnx: list | None = field(default=None, repr=False)
    _onnx_precision: str | None = field(default=None, repr=False)
    _torch_int8: list | None = field(default=None, repr=False)

    @property
    def class_names(self) -> list[str]:
        return list(self.spec["class_names"])

    @property
    def positive(self) -> str | list[str]:
        """The positive class, or the list of positive classes (``data.positive`` of the run)."""
        return self.spec["positive"]

    @property
    def theta(self) -> float | None:
        """The recipe's theta (None for an arm without SVM, or when the folds chose their own)."""
        theta = self.spec.get("theta")
        return float(theta) if isinstance(theta, (int, float)) and not isinstance(theta, bool) else None

    @property
    def fold_thetas(self) -> list[float | None]:
        """One theta per fold model: ``fold_thetas`` of bundle.json (chosen per fold on training subjects
        with ``aux.theta: auto``), else the recipe's theta for every fold."""
        thetas = self.spec.get("fold_thetas")
        if isinstance(thetas, list) and len(thetas) == len(self.folds):
            bad = [t for t in thetas if not (isinstance(t, (int, float)) and 0.0 <= float(t) <= 1.0)]
            if bad:
                raise BundleError(f"{self.path / BUNDLE_FILE}: fold_thetas must be numbers in [0, 1], got {bad}")
            return [float(t) for t in thetas]
        return [self.theta] * len(self.folds)

    @property
    def trust(self) -> dict:
        """bundle.json ``trust``: ``temperatures`` (one per fold, None = not scaled), ``theta_on``,
        ``conformal`` (``scores``: the sorted calibration scores of each class, ``alpha``, cells and
        subjects) or None, ``patient_threshold``; ``{}`` for bundles made before it existed."""
        return self.spec.get("trust") or {}

    @property
    def temperatures(self) -> list[float | None]:
        temps = self.trust.get("temperatures")
        return list(temps) if isinstance(temps, list) and len(temps) == len(self.folds) else [None] * len(self.folds)

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess(**self.spec["preprocess"])

    def torch_models(self) -> list:
        """``[(model, model_input), ...]`` per fold, weights loaded and shapes checked (eval mode)."""
        if self._torch is None:
            self._torch = [self._build_fold(i) for i in range(len(self.folds))]
        return self._torch

    @property
    def has_torch_int8(self) -> bool:
        """Whether ``export --int8`` kept PyTorch int8 parameters for every fold (they passed their checks)."""
        return bool(self.folds) and all(f.torch_int8 is not None for f in self.folds)

    def int8_refusal(self, kind: str) -> str | None:
        """Why this bundle has no int8 for ``kind`` ("torch" or "onnx"), in words; None when it has."""
        if (self.has_torch_int8 if kind == "torch" else self.has_int8):
            return None
        record = self.spec.get("int8") if kind == "torch" else (self.spec.get("onnx") or {}).get("int8")
        if record is None and kind == "torch" and (self.spec.get("onnx") or {}).get("int8") is not None:
            return "it was exported by an older blastscope, before PyTorch int8 existed (its ONNX int8 is for --backend onnx)"
        if record is None:
            return "it was exported without --int8"
        if kind == "torch" and record.get("refused"):
            return f"export made none ({record['refused']})"
        return f"its int8 {'parameters' if kind == 'torch' else 'graphs'} were rejected by their checks (bundle.json " \
               f"{'int8' if kind == 'torch' else 'onnx.int8'})"

    def torch_int8_models(self) -> list:
        """``[(int8 model, model_input), ...]`` per fold: the float32 models with their base networks
        rebuilt in int8 from the bundle's ``int8_fold<k>.safetensors`` (``export --int8``)."""
        if self._torch_int8 is None:
            why = self.int8_refusal("torch")
            if why is not None:
                raise BundleError(f"{self.path}: no PyTorch int8: {why}")
            from blastscope.inference.torch_int8 import Int8Error, load_qparams, quantize_model

            out = []
            for f, (model, model_input) in zip(self.folds, self.torch_models()):
                try:
                    out.append((quantize_model(model, load_qparams(self.path / f.torch_int8)), model_input))
                except Int8Error as e:
                    raise BundleError(f"{self.path / f.torch_int8}: {e}") from None
            self._torch_int8 = out
        return self._torch_int8

    def _build_fold(self, i: int):
        import torch

        from blastscope.engine.arm_models import build_model
        from blastscope.engine.checkpoint import CheckpointError, load_weights

        files = self.folds[i]
        where = self.path / BUNDLE_FILE
        try:
            model = build_model(self.spec["model"], len(self.class_names))
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise BundleError(f"{where}: model {self.spec['model'].get('id')!r} cannot be built from its "
                              f"kwargs {self.spec['model'].get('kwargs')!r} ({e})") from None
        try:
            load_weights(model, self.path / files.weights)
        except CheckpointError as e:
            raise BundleError(str(e)) from None
        model.eval()
        model_input = self._input()
        try:
            model_input.load_arrays(self.input_arrays[i])
        except (KeyError, ValueError) as e:
            raise BundleError(f"{self.path / (files.input or files.weights)}: model input arrays do not fit ({e})") from None
        svm = self.svms[i]
        size = self.preprocess.output_size
        if svm is not None and size is not None:
            with torch.inference_mode():
                maps = model.forward_features(model_input(torch.zeros(1, size, size, 3, dtype=torch.uint8)))
            n = int(np.prod(maps.shape[2:])) if maps.dim() == 4 else -1
            if n != svm.n_features_in_:
                raise BundleError(f"{self.path / files.svm}: SVM expects {svm.n_features_in_} spectral features, "
                                  f"the model gives {n} at {size}x{size}")
        return model, model_input

    def _input(self):
        """A fresh (unfitted) model input of the bundle's ``input`` settings."""
        from blastscope.engine.inputs import build_input

        name, kwargs = self.spec["input"]["name"], self.spec["input"].get("kwargs", {})
        try:
            return build_input(name, **kwargs)
        except (TypeError, ValueError) as e:
            raise BundleError(f"{self.path / BUNDLE_FILE}: model input {name!r} cannot be built from its kwargs {kwargs!r} ({e})") from None

    def _onnx_input(self, i: int):
        """The fold's model input for network-only ONNX graphs (None for plain RGB: no torch needed)."""
        if self.spec["input"]["name"] == "rgb":
            return None
        return self._input().load_arrays(self.input_arrays[i])

    @property
    def has_int8(self) -> bool:
        """Whether ``export --int8`` wrote int8 graphs for every fold (they passed their checks)."""
        return bool(self.folds) and all(f.onnx_int8 is not None for f in self.folds)

    def onnx_models(self, precision: str = "float32") -> list:
        """One :class:`blastscope.inference.onnx_export.OnnxModel` per fold (needs ``--onnx`` export);
        ``precision="int8"`` the int8 graphs of ``export --int8``."""
        if precision not in ("float32", "int8"):
            raise ValueError(f"precision must be float32 or int8, got precision={precision!r}")
        if self._onnx is None or self._onnx_precision != precision:
            from blastscope.inference.onnx_export import OnnxModel

            missing = [f.fold for f in self.folds if f.onnx is None]
            if missing:
                raise BundleError(f"{self.path}: no ONNX models for fold(s) {missing}; re-export with --onnx")
            if precision == "int8" and not self.has_int8:
                raise BundleError(f"{self.path}: no int8 graphs: {self.int8_refusal('onnx')}")
            self._onnx = [OnnxModel(self.path / (f.onnx_int8 if precision == "int8" else f.onnx), len(self.class_names),
                                    self._onnx_input(i)) for i, f in enumerate(self.folds)]
            self._onnx_precision = precision
            for f, m, svm in zip(self.folds, self._onnx, self.svms):
                if svm is not None and m.n_spectral != svm.n_features_in_:
                    raise BundleError(f"{self.path / f.onnx}: gives {m.n_spectral} spectral features, "
                                      f"{f.svm} expects {svm.n_features_in_}")
        return self._onnx


# -------------------------------------------------------------------------------------------- load
def read_arrays(root: Path, name: str | None) -> dict[str, np.ndarray]:
    if name is None:
        return {}
    from safetensors.numpy import load_file

    try:
        return load_file(str(root / name))
    except Exception as e:  # safetensors has its own error types for a damaged header
        raise BundleError(f"{root / name}: not a valid safetensors file ({e})") from None


def read_svm(root: Path, name: str | None) -> SVMArrays | None:
    """A fold's SVM (``svm_fold<k>.safetensors``), None for a fold without one."""
    if name is None:
        return None
    try:
        svm = SVMArrays.from_arrays(_scalars_0d(read_arrays(root, name)))
    except ValueError as e:
        raise BundleError(f"{root / name}: not usable SVM arrays ({e})") from None
    if svm.platt_a_ is None:
        raise BundleError(f"{root / name}: the SVM has no probability (no Platt scaling, 'platt_a'); it was made by "
                          "an older blastscope whose SVM-answered cells showed the CNN's probability. Run the "
                          "cross-validation again with this version and export a new bundle")
    return svm


def _scalars_0d(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``gamma``/``C``/``platt_a`` as 0-d arrays: run folders may store them with shape (1,) because
    ``np.ascontiguousarray`` promotes 0-d arrays, which ``SpectralSVM.from_arrays`` cannot take."""
    return {k: (v.reshape(()) if k in ("gamma", "C", "platt_a") and v.shape == (1,) else v) for k, v in arrays.items()}


def read_ood(root: Path, name: str | None):
    if name is None:
        return None
    from blastscope.estimators.ood import MahalanobisOOD

    try:
        return MahalanobisOOD.from_arrays(read_arrays(root, name))
    except (KeyError, ValueError) as e:
        raise BundleError(f"{root / name}: not usable out-of-domain arrays ({e})") from None


def _stain(root: Path, meta: dict, verified) -> object | None:
    name = (meta.get("trust") or {}).get("stain_range")
    if name is None:
        return None
    if not isinstance(name, str) or name not in verified:
        raise BundleError(f"{root / BUNDLE_FILE}: trust.stain_range names {name!r}, which is not a verified file of the bundle")
    from blastscope.estimators.ood import StainRange

    try:
        return StainRange.from_arrays(read_arrays(root, name))
    except (KeyError, ValueError) as e:
        raise BundleError(f"{root / name}: not usable stain-range arrays ({e})") from None


def _check_meta(path: Path, meta: Any) -> None:
    where = path / BUNDLE_FILE
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BundleError(f"{where}: not a blastscope bundle description (format must be {FORMAT!r})")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(f"{where}: unknown bundle schema version {meta.get('schema_version')!r}; "
                          f"this toolkit ({__version__}) reads schema {SCHEMA_VERSION}")
    theirs = str(meta.get("toolkit_version", ""))
    if theirs.split(".")[0] != __version__.split(".")[0]:
        raise BundleError(f"{where}: written by blastscope {theirs or '(unknown)'}, this is {__version__}; "
                          "bundles are read only by the same major version (re-export from the run folder)")
    need = ("model", "class_names", "positive", "preprocess", "input", "folds", "arm")
    missing = [k for k in need if k not in meta]
    if missing:
        raise BundleError(f"{where}: missing key(s) {missing}")
    if not meta["folds"]:
        raise BundleError(f"{where}: lists no fold models")
    _check_bounds(where, meta)
    try:
        normalize_positive(meta["class_names"], meta["positive"])
    except (TypeError, ValueError) as e:
        raise BundleError(f"{where}: bad positive {meta['positive']!r} ({e})") from None


MAX_SIDE = 2048  # pixels: a cell image side; the papers use 100-450
MAX_FOLDS = 64
MAX_CLASSES = 64


def _check_bounds(where: Path, meta: dict) -> None:
    """Settings that size allocations must be sane before anything is allocated: a manifest proves the
    files are unchanged, not that their author chose sane values (``canvas: 60000`` would ask for
    ~11 GB per image batch)."""
    prep = meta["preprocess"]
    if not isinstance(prep, dict):
        raise BundleError(f"{where}: preprocess must be a mapping, got {prep!r}")
    unknown = set(prep) - {"canvas", "resize", "threshold"}
    if unknown:
        raise BundleError(f"{where}: preprocess has unknown key(s) {sorted(unknown)}")
    threshold = prep.get("threshold", 0)
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 0 <= threshold <= 255:
        raise BundleError(f"{where}: preprocess.threshold must be an integer in [0, 255], got {threshold!r}")
    for key in ("canvas", "resize"):
        value = prep.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 16 <= value <= MAX_SIDE):
            raise BundleError(f"{where}: preprocess.{key} must be null or an integer in [16, {MAX_SIDE}], got {value!r}")
    if not isinstance(meta["folds"], list) or len(meta["folds"]) > MAX_FOLDS:
        raise BundleError(f"{where}: folds must be a list of at most {MAX_FOLDS} fold models")
    classes = meta["class_names"]
    if (not isinstance(classes, list) or not 2 <= len(classes) <= MAX_CLASSES or not all(isinstance(c, str) for c in classes)
            or len(set(classes)) < len(classes)):
        raise BundleError(f"{where}: class_names must be 2 to {MAX_CLASSES} distinct names, got {classes!r}")
    for key, name_key in (("model", "id"), ("input", "name")):
        part = meta[key]
        if (not isinstance(part, dict) or not isinstance(part.get(name_key), str)
                or not isinstance(part.get("kwargs", {}), dict)):
            raise BundleError(f"{where}: {key} must be a mapping with the string {name_key!r} and the mapping 'kwargs', got {part!r}")
    theta = meta.get("theta")
    if theta is not None and theta != "auto" and not (isinstance(theta, (int, float)) and not isinstance(theta, bool)
                                                     and 0.0 <= theta <= 1.0):
        raise BundleError(f"{where}: theta must be a number in [0, 1], got {theta!r}")
    _check_trust(where, meta)


MAX_CALIBRATION_CELLS = 1_000_000


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def _check_trust(where: Path, meta: dict) -> None:
    """bundle.json ``trust``: every number in range before anything uses it."""
    trust = meta.get("trust")
    if trust is None:
        return
    if not isinstance(trust, dict):
        raise BundleError(f"{where}: trust must be a mapping, got {trust!r}")
    temps = trust.get("temperatures")
    if temps is not None and (not isinstance(temps, list) or len(temps) != len(meta["folds"])
                              or not all(t is None or (_number(t) and 0 < t <= 1000) for t in temps)):
        raise BundleError(f"{where}: trust.temperatures must be one number > 0 (or null) per fold, got {temps!r}")
    if trust.get("theta_on", "raw") not in ("raw", "calibrated"):
        raise BundleError(f"{where}: trust.theta_on must be raw or calibrated, got {trust.get('theta_on')!r}")
    t = trust.get("patient_threshold")
    if t is not None and not (_number(t) and 0 < t < 1):
        raise BundleError(f"{where}: trust.patient_threshold must be in (0, 1), got {t!r}")
    conformal = trust.get("conformal")
    if conformal is None:
        return
    scores = conformal.get("scores") if isinstance(conformal, dict) else None
    if (not isinstance(scores, list) or len(scores) != len(meta["class_names"])
            or not all(isinstance(s, list) and len(s) <= MAX_CALIBRATION_CELLS and all(_number(x) and 0 <= x <= 1 for x in s)
                       for s in scores)):
        raise BundleError(f"{where}: trust.conformal.scores must be one list of scores in [0, 1] per class")
    alpha = conformal.get("alpha")
    if not (_number(alpha) and 0 < alpha < 1):
        raise BundleError(f"{where}: trust.conformal.alpha must be in (0, 1), got {alpha!r}")


def load_bundle(path: Path | str, backend: str = "torch") -> Bundle:
    """Verify and open a bundle; ``backend`` ("torch", "onnx" or "none") also builds its models.

    Raises:
        BundleError: naming the file at fault (manifest, schema, version, arrays, tensor shapes).
    """
    if backend not in ("torch", "onnx", "none"):
        raise ValueError(f"backend must be torch, onnx or none, got backend={backend!r}")
    path = Path(path)
    verified = verify_manifest(path)
    try:
        meta = json.loads((path / BUNDLE_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{path / BUNDLE_FILE}: unreadable ({e})") from None
    _check_meta(path, meta)
    try:
        folds = [FoldFiles(**f) for f in meta["folds"]]
    except TypeError as e:
        raise BundleError(f"{path / BUNDLE_FILE}: malformed folds entry ({e})") from None
    for f in folds:
        for name in (f.weights, f.svm, f.input, f.onnx, f.ood, f.onnx_int8, f.torch_int8):
            if name is not None and (not isinstance(name, str) or name not in verified):
                raise BundleError(f"{path / BUNDLE_FILE}: fold {f.fold} names {name!r}, which is not a verified file of the bundle")
    svms = [read_svm(path, f.svm) for f in folds]
    bundle = Bundle(path, meta, folds, svms, [read_arrays(path, f.input) for f in folds],
                    oods=[read_ood(path, f.ood) for f in folds], stain_range=_stain(path, meta, verified))
    if backend == "torch":
        bundle.torch_models()
    elif backend == "onnx":
        bundle.onnx_models()
    return bundle
