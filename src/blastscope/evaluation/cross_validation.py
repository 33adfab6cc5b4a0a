"""Subject-level k-fold cross-validation with a model per fold and the majority vote.

Gehlot et al. 2020 section 4.3: one model per validation fold (7 folds, subject-level), each
evaluated on its validation fold and on the held-out test set, the final test prediction being the
mode of the fold models' labels (eq. 11). Each recipe "arm" is trained per fold: a plain model, an
auxiliary-SVM arm on another arm's trained CNN (SDCT-AuxNet-theta, section 3.4), or a fusion of
two trained arms (LeukoNet Stage-3) of this run folder or, with ``fuse_from``, of other run
folders on the same data and folds; fused sub-models are loaded, never retrained. Every arm trains
with its own augmentation and sampling: ``data`` with the arm's ``augment``,
``augment_minority_only`` and ``balance`` overrides (:meth:`RunConfig.arm_data`, recorded per arm
in run.json ``training`` by :func:`blastscope.config.arm_training`), so e.g. LeukoNet "Stage-3C w/
aug" (Stage-1 with, Stage-2C without augmentation, the FC layer with its own setting) is one run.

The run folder is the interface: ``config.yaml``, ``index.csv``, ``folds.csv``, and per arm and
fold ``arms/<arm>/fold_<k>/`` (k 1-based, :mod:`blastscope.run_layout`) with ``best.safetensors``, ``history.csv``, ``predictions.csv`` and
``fold.json`` (written last: the fold is complete). Completed folds are never recomputed, so an
interrupted run resumes where it stopped, and folds run as separate processes (``folds=[k]``)
merge by running the aggregation once all are done.

Data-parallel (every process of a :mod:`blastscope.engine.distributed` group calls :func:`run_cv`):
all processes train every CNN together, but only rank 0 decodes the images into the cache, writes
the run files, evaluates the trained models and writes ``predictions.csv``, ``svm.safetensors``
and ``fold.json``; the other ranks open the cache rank 0 built and wait for each step (a failure
there reaches them as :class:`~blastscope.engine.distributed.MainProcessError`).
"""
from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from blastscope.config import ArmConfig, RunConfig, arm_training, config_to_dict, read_config, save_config
from blastscope.data.cache import ImageCache
from blastscope.data.check import CALIB, HELD_OUT, index_problems
from blastscope.data.decode import UnreadableImagesError
from blastscope.data.index import validate_index, write_index_csv
from blastscope.data.preprocess import Preprocess
from blastscope.engine import distributed as ddp
from blastscope.engine.arm_models import check_input_sizes, load_fold_model, network_arm
from blastscope.engine.atomic import atomic_write_csv, atomic_write_json, read_safe_csv
from blastscope.engine.inference import predict_arrays
from blastscope.engine.inputs import ModelInput, build_input
from blastscope.engine.progress import ProgressFactory, no_progress
from blastscope.engine.provenance import now, provenance
from blastscope.engine.trainer import fit
from blastscope.evaluation.splits import assign_folds, check_no_leakage
from blastscope.models import create_model, model_info
from blastscope.transforms.factory import build_transform
from blastscope.run_layout import fold_dir

__all__ = ["CVPlan", "FoldRows", "fold_rows", "plan_cv", "run_cv", "build_arm_model", "RunFolderError"]

logger = logging.getLogger(__name__)


class RunFolderError(ValueError):
    """A run folder that does not match the requested run (different config, data or folds)."""


@dataclass
class CVPlan:
    """What a cross-validation run works on: the index with folds, class ids and held-out sets."""

    config: RunConfig
    index: pd.DataFrame  # train rows first (with ``fold``), then held-out rows
    y: np.ndarray
    train_rows: np.ndarray
    held_out: dict[str, np.ndarray]
    image_level: bool


def _select(index: pd.DataFrame, config: RunConfig) -> pd.DataFrame:
    labelled = index[index["label"].str.len() > 0].copy()
    unknown = sorted(set(labelled["label"]) - set(config.data.classes))
    if unknown:
        raise ValueError(
            f"the data has labels {unknown} that are not among the recipe's classes {list(config.data.classes)}; "
            "set data.classes (e.g. --set 'data.classes=[a,b,c]') or map folders with data.class_map"
        )
    return labelled


def plan_cv(config: RunConfig, index: pd.DataFrame) -> CVPlan:
    """Validate the index and assign the cross-validation folds of the training rows."""
    data = config.data
    index = _calibration_rows(validate_index(_select(index, config), grouping=data.grouping), config)
    is_train = ~index["split"].isin(HELD_OUT + (CALIB,))
    train = index[is_train].copy().reset_index(drop=True)
    counts = train["label"].value_counts()
    missing = [c for c in data.classes if counts.get(c, 0) == 0]
    if missing:
        raise ValueError(f"the training data has no images of class(es) {missing}")
    train["fold"] = assign_folds(train, data.folds, seed=config.train.seed, mode=data.fold_mode)
    n_folds = int(train["fold"].max()) + 1
    for k in range(n_folds):
        present = set(train.loc[train["fold"] == k, "label"])
        if present != set(data.classes):
            logger.warning("validation fold %d lacks class(es) %s", k, sorted(set(data.classes) - present))
    if data.fold_mode != "image":
        check_no_leakage(train["fold"].to_numpy(), train["subject_id"].to_numpy())
    held = index[~is_train].copy()
    held["fold"] = -1
    full = pd.concat([train, held], ignore_index=True)
    full.attrs["grouping"] = data.grouping
    errors = [p["problem"] for p in index_problems(full, _check_grouping(config)) if p["severity"] == "error"]
    if errors:  # the checks `blastscope data check` reports as errors
        raise ValueError("; ".join(errors))
    y = full["label"].map({c: i for i, c in enumerate(data.classes)}).to_numpy(np.int64)
    return CVPlan(
        config=config,
        index=full,
        y=y,
        train_rows=np.arange(len(train)),
        held_out={s: np.flatnonzero(full["split"].to_numpy() == s) for s in HELD_OUT + (CALIB,) if (full["split"] == s).any()},
        image_level=data.grouping == "image" or data.fold_mode == "image",
    )


def _calibration_rows(index: pd.DataFrame, config: RunConfig) -> pd.DataFrame:
    """``index`` with the conformal calibration cells (``trust.calibration``) marked ``split = "calib"``:
    a held-out split by name, or a share of the training subjects (by subject, stratified by class,
    seeded by ``train.seed``; by image under image-level grouping)."""
    from blastscope.evaluation.splits import inner_split

    choice = config.trust.calibration
    if choice is None:
        return index
    out = index.copy()
    out.attrs.update(index.attrs)
    if isinstance(choice, str):
        rows = out["split"] == choice
        if not rows.any():
            raise ValueError(f"trust.calibration={choice!r}, but the data has no {choice!r} split "
                             f"(splits: {sorted(set(out['split']) - {''}) or 'none'}); use a share, e.g. 0.2")
        out.loc[rows, "split"] = CALIB
        return out
    train = np.flatnonzero(~out["split"].isin(HELD_OUT).to_numpy())
    frame = out.iloc[train]
    groups = frame["subject_id"].to_numpy()
    _, calib = inner_split(frame["label"].to_numpy(), groups, max(2, round(1.0 / float(choice))),
                           seed=config.train.seed + 7919)
    out.iloc[train[calib], out.columns.get_loc("split")] = CALIB
    return out


def _check_grouping(config: RunConfig) -> str:
    """The grouping of the shared index checks: image-level folds make every image its own group."""
    return "image" if config.data.fold_mode == "image" else config.data.grouping


def _check_content(run_dir: Path, plan: CVPlan, digests: list[str]) -> None:
    """Refuse to continue a run whose image files changed content under unchanged names (``content.csv``:
    the SHA-1 of every file's bytes when the run started)."""
    path = run_dir / "content.csv"
    if not path.exists():
        return
    old = read_safe_csv(path, keep_default_na=False, dtype=str)
    before = dict(zip(old["path"], old["sha1"]))
    changed = [p for p, d in zip(plan.index["path"], digests) if before.get(p, d) != d]
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise RunFolderError(f"{run_dir}: {len(changed)} image file(s) changed content since this run started ({shown}); "
                             "finished folds trained on the old pixels: use a new --out folder")


def _check_or_write_run_files(run_dir: Path, plan: CVPlan, skipped: list[tuple[str, str]], data_dir: Path | None = None,
                              digests: list[str] | None = None) -> None:
    config_path, folds_path = run_dir / "config.yaml", run_dir / "folds.csv"
    folds = plan.index[["path", "subject_id", "label", "split", "fold"]]
    if config_path.exists():
        if digests is not None:
            _check_content(run_dir, plan, digests)
        existing = config_to_dict(read_config(config_path))
        if _identity(existing) != _identity(config_to_dict(plan.config)):
            raise RunFolderError(f"{run_dir} holds a run with a different configuration; use a new --out folder")
        if not _same_folds(folds_path, plan):
            raise RunFolderError(f"{run_dir} was run on other data or other folds; use a new --out folder")
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    write_index_csv(plan.index, run_dir / "index.csv")
    if digests is not None:
        atomic_write_csv(run_dir / "content.csv", pd.DataFrame({"path": plan.index["path"], "sha1": digests}))
    atomic_write_csv(folds_path, folds)
    atomic_write_json(run_dir / "run.json", {
        "recipe": plan.config.recipe, "paper": plan.config.paper, "class_names": list(plan.config.data.classes),
        "positive": pos if isinstance(pos := plan.config.data.positive, str) else list(pos),  # a name, or a list of names
        "grouping": plan.config.data.grouping,
        "fold_mode": plan.config.data.fold_mode, "image_level": plan.image_level,
        "selection": plan.config.data.selection, "inner_folds": plan.config.data.inner_folds,
        "n_folds": int(plan.index["fold"].max()) + 1, "arms": [a.name for a in plan.config.arms],
        "skipped": len(skipped), "training": arm_training(plan.config),
        "trust": config_to_dict(plan.config.trust),
        "provenance": provenance(plan.index, data_dir),
    })
    atomic_write_csv(run_dir / "skipped.csv", pd.DataFrame(skipped, columns=["file", "reason"]))
    save_config(plan.config, config_path)


def _identity(config: dict) -> dict:
    """The configuration a resumed run must match: everything but ``train.device`` and
    ``train.num_workers`` (a run may continue on another machine; loader workers do not change the
    batches; mixed precision, ``train.amp``, does count)."""
    out = {**config, "train": {k: v for k, v in config.get("train", {}).items() if k not in ("device", "num_workers")}}
    return out


def _same_folds(folds_path: Path, plan: CVPlan) -> bool:
    old = read_safe_csv(folds_path, keep_default_na=False, dtype={"subject_id": str, "label": str})
    return old["path"].tolist() == plan.index["path"].tolist() and old["fold"].tolist() == plan.index["fold"].tolist()


def _check_fuse_sources(plan: CVPlan) -> None:
    """Every run folder named by a ``fuse_from`` holds the arm, on this run's data, folds, classes and input size."""
    data = plan.config.data
    for arm in plan.config.arms:
        for name, folder in (arm.fuse_from or {}).items():
            folder = Path(folder)
            if not (folder / "config.yaml").exists() or not (folder / "folds.csv").exists():
                raise RunFolderError(f"arm {arm.name!r}: fuse_from {name!r}: {folder} is not a run folder (no config.yaml/folds.csv)")
            other = read_config(folder / "config.yaml")
            if name not in [a.name for a in other.arms]:
                raise RunFolderError(f"arm {arm.name!r}: run folder {folder} has no arm {name!r}; its arms: {[a.name for a in other.arms]}")
            if (other.data.classes, other.data.canvas, other.data.resize) != (data.classes, data.canvas, data.resize):
                raise RunFolderError(
                    f"arm {arm.name!r}: run folder {folder} used classes={list(other.data.classes)} canvas={other.data.canvas} "
                    f"resize={other.data.resize}, this run classes={list(data.classes)} canvas={data.canvas} resize={data.resize}")
            if not _same_folds(folder / "folds.csv", plan):
                raise RunFolderError(f"arm {arm.name!r}: run folder {folder} was run on other data or other folds; its "
                                     f"{name!r} models would have trained on this run's validation cells")
            mine = (data.selection, data.inner_folds, plan.config.train.seed)
            theirs = (other.data.selection, other.data.inner_folds, other.train.seed)
            if data.selection == "inner" and theirs != mine:
                raise RunFolderError(
                    f"arm {arm.name!r}: run folder {folder} chose its models with selection={theirs[0]} inner_folds={theirs[1]} "
                    f"seed={theirs[2]}, this run selection={mine[0]} inner_folds={mine[1]} seed={mine[2]}; the inner "
                    "selection subjects would differ")


def build_arm_model(arm: ArmConfig, num_classes: int, stain_matrix: np.ndarray | None = None,
                    sub_models: dict[str, nn.Module] | None = None) -> nn.Module:
    """Instantiate an arm's model; ``stain_matrix`` goes to entrypoints that take one."""
    kwargs = dict(arm.kwargs)
    params = inspect.signature(model_info(arm.model).fn).parameters
    if stain_matrix is not None and "stain_matrix" in params and "stain_matrix" not in kwargs:
        kwargs["stain_matrix"] = stain_matrix
    if arm.fuse:
        kwargs["first"], kwargs["second"] = (sub_models or {})[arm.fuse[0]], (sub_models or {})[arm.fuse[1]]
    return create_model(arm.model, num_classes=num_classes, **kwargs)


def _reference_stain(images: np.ndarray, od_log: str = "log10") -> np.ndarray | None:
    """Macenko estimate from one reference training cell (the released code uses one cell, with ``od_log="ln"``)."""
    from blastscope.ops.stain import macenko_stain_matrix

    try:
        return macenko_stain_matrix(np.asarray(images[0]), od_log=od_log)
    except ValueError as e:
        logger.warning("Macenko stain estimate failed on the reference cell (%s); using the default matrix", e)
        return None


@dataclass(frozen=True)
class FoldRows:
    """Rows of the plan's index (positions) that each part of fold ``k`` reads.

    ``fit``: train the network and the SVM; ``select``: every choice (best epoch, Platt scaling,
    operating point); ``scored``: the outer validation fold, scored. With ``data.selection=inner``
    ``fit`` and ``select`` are disjoint subject groups of the training folds and ``scored`` is
    read by no choice; with ``selection=fold`` (the papers' protocol) ``select`` IS ``scored``.
    """

    fit: np.ndarray
    select: np.ndarray
    scored: np.ndarray
    inner: bool


def fold_rows(plan: CVPlan, k: int) -> FoldRows:
    """The :class:`FoldRows` of fold ``k`` (deterministic: seeded by ``train.seed`` and ``k``)."""
    from blastscope.evaluation.splits import inner_split

    fold = plan.index["fold"].to_numpy()
    train, scored = np.flatnonzero((fold >= 0) & (fold != k)), np.flatnonzero(fold == k)
    data = plan.config.data
    if data.selection == "fold":
        return FoldRows(train, scored, scored, inner=False)
    frame = plan.index.iloc[train]
    groups = (frame["path"] if plan.image_level else frame["subject_id"]).to_numpy()
    fit_pos, select_pos = inner_split(plan.y[train], groups, data.inner_folds, seed=plan.config.train.seed + k)
    missing = sorted(set(data.classes) - set(frame["label"].to_numpy()[select_pos]))
    if missing:
        logger.warning("fold %d: the inner selection subjects lack class(es) %s", k + 1, missing)
    return FoldRows(train[fit_pos], train[select_pos], scored, inner=True)


def _fold_sets(plan: CVPlan, rows: FoldRows) -> dict[str, np.ndarray]:
    """Sets a fold model predicts: ``oof`` (the outer fold), the held-out sets, and with an inner
    split ``select`` (kept for the operating point, never scored)."""
    sets = {"oof": rows.scored, **plan.held_out}
    if rows.inner:
        sets["select"] = rows.select
    return sets


def _rows_info(plan: CVPlan, rows: FoldRows) -> dict:
    subjects = plan.index["subject_id"].to_numpy()
    return {"selection": "inner" if rows.inner else "fold", "n_fit": int(len(rows.fit)), "n_select": int(len(rows.select)),
            "select_subjects": sorted(set(subjects[rows.select].tolist())) if rows.inner else "the validation fold"}


def _prediction_frame(plan: CVPlan, rows: np.ndarray, logp: np.ndarray, set_name: str) -> pd.DataFrame:
    classes = plan.config.data.classes
    proba = np.exp(logp)
    frame = pd.DataFrame({
        "set": set_name,
        "path": plan.index["path"].to_numpy()[rows],
        "subject_id": plan.index["subject_id"].to_numpy()[rows],
        "label": plan.index["label"].to_numpy()[rows],
        "y": plan.y[rows],
        "pred": proba.argmax(1),
    })
    for i, c in enumerate(classes):
        frame[f"p_{c}"] = proba[:, i]
    frame["answered_by"] = "cnn"
    return frame


def _fit_arm(plan: CVPlan, arm: ArmConfig, k: int, arm_dir: Path, arrays: dict[str, np.ndarray],
             trained: dict[str, nn.Module], progress: ProgressFactory) -> tuple[nn.Module, dict]:
    """Train ``arm`` on fold ``k``'s training cells with the arm's own augmentation and sampling
    (:meth:`RunConfig.arm_data`: ``data`` with the arm's overrides); a fusion arm trains only its new layer."""
    cfg, data = plan.config, plan.config.arm_data(arm)
    rows = fold_rows(plan, k)
    train_rows, val_rows = rows.fit, rows.select  # the trainer's "validation" = the rows that choose the best epoch
    train_images = arrays["all"][train_rows]
    stain = _reference_stain(train_images, arm.stain_od) if "stain_matrix" in inspect.signature(model_info(arm.model).fn).parameters else None
    torch.manual_seed(cfg.train.seed)  # the initial weights must not depend on earlier folds: a resumed run skips them
    model = build_arm_model(arm, len(data.classes), stain, {n: m for n, (m, _) in trained.items()})
    model_input = _fitted_input(arm, arm_dir, train_images)
    augment_mask = None
    if data.augment_minority_only:
        counts = np.bincount(plan.y[train_rows], minlength=len(data.classes))
        augment_mask = plan.y[train_rows] == int(np.argmin(counts))
    result = fit(model, train_images, plan.y[train_rows], arrays["all"][val_rows], plan.y[val_rows], cfg.arm_train(arm), arm_dir,
                 transform=build_transform(data.augment, train_images), balance=data.balance, augment_mask=augment_mask,
                 progress=progress, desc=f"{arm.name} fold {k + 1}", input_fn=model_input)
    info = {"best_epoch": result.best_epoch, "best_select_accuracy": result.best_val_accuracy, "train_seconds": result.seconds,
            "n_train": int(len(train_rows)), "n_val": int(len(rows.scored)), **_rows_info(plan, rows),
            "stain_matrix": stain.tolist() if stain is not None else None}
    info.update(getattr(model_input, "summary", dict)())  # e.g. PCA explained variance of a fitted input
    return (model, model_input), info


def _plan_without(config: RunConfig, index: pd.DataFrame, skipped: list[tuple[str, str]]) -> CVPlan:
    """The plan of ``index`` without the ``(file, reason)`` files (folds are assigned afresh)."""
    files = {f for f, _ in skipped}
    return plan_cv(config, index[~index["path"].map(lambda p: str(Path(p))).isin(files)])


def _decode_all(plan: CVPlan, index: pd.DataFrame, cache: ImageCache, preprocess: Preprocess, skip_invalid: bool,
                progress: ProgressFactory) -> tuple[np.ndarray, CVPlan, list[tuple[str, str]], list[str]]:
    """Decode every image once (building the cache) before anything is trained.

    Unreadable files raise one :class:`UnreadableImagesError` listing all of them with reasons; with
    ``skip_invalid`` they are left out (the folds are planned without them) and returned as
    (file, reason). Identical files under two subjects or classes are logged as warnings. Also
    returns the SHA-1 of every indexed file (the run's ``content.csv``).
    """
    skipped: list[tuple[str, str]] = []
    for attempt in range(2):
        paths = plan.index["path"].tolist()
        try:
            with progress(total=len(paths), desc="decode + cache images") as bar:
                images = cache.array(paths, preprocess, progress=bar.update)
            break
        except UnreadableImagesError as e:
            if not skip_invalid or attempt:
                raise UnreadableImagesError(e.errors, hint="fix or remove them, or leave them out with skip_invalid "
                                            "(blastscope cv --skip-invalid), which lists them in RUN/skipped.csv") from None
            skipped = [(err.path, err.reason) for err in e.errors]
            logger.warning("leaving out %d unreadable image file(s); they are listed in skipped.csv", len(skipped))
            plan = _plan_without(plan.config, index, skipped)
    frame = plan.index
    digests = cache.digests(paths)
    for problem in index_problems(frame, _check_grouping(plan.config), digests):
        if problem["severity"] == "warning":
            logger.warning("%s (blastscope data check reports them too)", problem["problem"])
    return images, plan, skipped, digests


def _fitted_input(arm: ArmConfig, arm_dir: Path, train_images: np.ndarray) -> ModelInput:
    """The arm's model input, fitted on the fold's training images (or loaded once fitted)."""
    from safetensors.numpy import load_file, save_file

    from blastscope.engine.atomic import atomic_write

    model_input = build_input(arm.input, **arm.input_kwargs)
    stored = arm_dir / "input.safetensors"
    if stored.exists():
        return model_input.load_arrays(load_file(str(stored)))
    model_input.fit(train_images)  # every rank fits (deterministic); rank 0 writes
    arrays = model_input.to_arrays()
    if arrays and ddp.is_main_process():
        atomic_write(stored, lambda p: save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(p)))
    return model_input


def _aux_arm(plan: CVPlan, arm: ArmConfig, k: int, arm_dir: Path, arrays: dict[str, np.ndarray],
             trained: tuple[nn.Module, ModelInput], progress: ProgressFactory,
             theta_proba=lambda p: p) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], dict]:
    """Fit the SVM on spectral features of the training cells the CNN classifies correctly (eq. 3).
    ``theta_proba``: the CNN probability the theta rule reads (raw, or temperature-scaled)."""
    from safetensors.numpy import save_file

    from blastscope.engine.atomic import atomic_write
    from blastscope.estimators.svm_head import SpectralSVM

    aux = arm.aux
    cnn, model_input = trained
    rows = fold_rows(plan, k)
    train_rows = rows.fit if aux.svm_cells == "fit" else np.flatnonzero(plan.index["fold"].to_numpy() >= 0)
    bs = plan.config.train.eval_batch_size
    logp, feats = predict_arrays(cnn, arrays["all"][train_rows], bs, spectral=True, progress=progress,
                                 desc=f"{arm.name} features", input_fn=model_input)
    correct = logp.argmax(1) == plan.y[train_rows]
    info: dict = {"svm_train_cells": int(correct.sum()), "cnn_train_accuracy": float(correct.mean()),
                  "svm_cells": aux.svm_cells, "svm_saw_scored_fold": aux.svm_cells == "all_training"}
    if aux.svm_cells == "all_training":
        logger.warning("fold %d: the SVM trains on every training cell, this fold's validation cells included "
                       "(aux.svm_cells: all_training, the released code): its out-of-fold scores are optimistic", k + 1)
    X = feats[correct]
    C, gamma, standardize = aux.C, aux.gamma, aux.standardize
    if aux.searched:
        from blastscope.estimators.aux_search import search_svm

        groups = plan.index["path" if plan.image_level else "subject_id"].to_numpy()[train_rows][correct]
        chosen = search_svm(X, plan.y[train_rows][correct], groups, C=C, gamma=gamma, standardize=standardize,
                            seed=plan.config.train.seed + k)
        C, gamma, standardize = chosen["C"], chosen["gamma"], chosen["standardize"]
        info["svm_search"] = chosen
    if gamma == "scale":
        scale_var = 1.0 if standardize else float(X.var())  # standardised features have variance 1
        gamma = 1.0 / (X.shape[1] * scale_var) if len(X) and scale_var > 0 else 1.0
    info.update(svm_C=float(C), svm_gamma=float(gamma), svm_standardize=bool(standardize))
    info.update(_rows_info(plan, rows))
    svm: SpectralSVM | None = SpectralSVM(C=float(C), gamma=float(gamma), standardize=bool(standardize))
    try:
        svm.fit(X, plan.y[train_rows][correct])
    except ValueError as e:
        # The CNN got every training cell of some class wrong: an SVM cannot be fit on one class.
        # Fallback (documented): the CNN answers every cell, as with theta = 0.
        logger.warning("fold %d: auxiliary SVM not fitted (%s); the CNN answers every cell", k + 1, e)
        svm = None
    info["aux_fallback"] = svm is None
    sets = _fold_sets(plan, rows)
    predicted = {name: (r, *predict_arrays(cnn, arrays["all"][r], bs, spectral=True, input_fn=model_input)) for name, r in sets.items()}
    if svm is not None:
        # Platt scaling on the selection rows: cells the SVM was not trained on (inner split), or the
        # validation fold itself under the papers' protocol (then labelled optimistic).
        _, _, select_feats = predicted["select" if rows.inner else "oof"]
        svm.calibrate(select_feats, plan.y[rows.select])
        info["platt_a"] = svm.platt_a_
        arrays_out = {k_: np.array(v, order="C") for k_, v in svm.to_arrays().items()}  # keeps 0-d scalars 0-d
        atomic_write(arm_dir / "svm.safetensors", lambda p: save_file(arrays_out, str(p)))
    outputs = {}
    for name, (r, lp, f) in predicted.items():
        if svm is not None and len(r):
            labels, proba = svm.predict_and_proba(f)
            outputs[name] = (r, lp, labels.astype(np.int64), proba, f)
        else:
            outputs[name] = (r, lp, None, None, f)
    info["theta"] = aux.theta
    if aux.theta == "auto":
        from blastscope.estimators.aux_search import choose_theta

        # Table 5's sweep on the selection cells (training subjects); the paper's 0.9 without an SVM
        select = outputs["select" if rows.inner else "oof"]
        if select[2] is not None:
            found = choose_theta(theta_proba(np.exp(select[1])), select[2], plan.y[rows.select], aux.sweep)
            info["theta"], info["theta_search"] = found["theta"], {"weighted_f1": found["weighted_f1"], "on": "select" if rows.inner else "oof"}
        else:
            info["theta"] = 0.9
    return outputs, info


def _prepare(plan: CVPlan, index: pd.DataFrame, run_dir: Path, cache: ImageCache, preprocess: Preprocess,
             skip_invalid: bool, skipped_before: list[tuple[str, str]], progress: ProgressFactory,
             data_dir: Path | None = None) -> tuple[str, list[tuple[str, str]]]:
    """Rank 0's part before training: decode into the cache, check and write the run files.

    Returns the cache file and the files left out while decoding (both small, sent to every rank).
    """
    images, plan, skipped, digests = _decode_all(plan, index, cache, preprocess, skip_invalid, progress)
    _check_fuse_sources(plan)  # after skip_invalid may have re-planned the folds
    _check_or_write_run_files(run_dir, plan, skipped_before + skipped, data_dir, digests)
    _write_stain_range(run_dir, plan, images)
    return str(images.filename), skipped


STAIN_FILE = "stain_range.safetensors"


def _write_stain_range(run_dir: Path, plan: CVPlan, images: np.ndarray, per_subject: int = 8) -> None:
    """The training cells' stain reference and range (:class:`~blastscope.estimators.ood.StainRange`,
    from up to ``per_subject`` cells of every training subject), for ``predict``'s per-case stain check."""
    from safetensors.numpy import save_file

    from blastscope.engine.atomic import atomic_write
    from blastscope.estimators.ood import StainRange

    path = run_dir / STAIN_FILE
    if path.exists():
        return
    train = plan.index.iloc[plan.train_rows]
    groups = [images[idx[:per_subject]] for idx in train.groupby("subject_id").indices.values()]
    try:
        stain = StainRange().fit(groups)
    except ValueError as e:
        logger.warning("no stain range for the per-case stain check (%s)", e)
        return
    arrays = {k: np.array(v, dtype=np.float64, order="C") for k, v in stain.to_arrays().items()}
    atomic_write(path, lambda p: save_file(arrays, str(p)))


def _evaluate_cnn(plan: CVPlan, arm: ArmConfig, k: int, arm_dir: Path, images: np.ndarray, model: nn.Module,
                  model_input: ModelInput, info: dict) -> None:
    """Predict the fold's validation cells and the held-out sets with a trained arm, fit its
    temperature and out-of-domain check on training subjects (:func:`_fit_trust`); write its files."""
    bs, rows = plan.config.train.eval_batch_size, fold_rows(plan, k)

    def outputs(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return predict_arrays(model, images[r], bs, spectral=True, input_fn=model_input)

    predicted = {name: (r, *outputs(r)) for name, r in _fold_sets(plan, rows).items()}
    trust = _fit_trust(plan, k, rows, arm_dir, predicted, outputs)
    info.update(trust.info)
    frames = []
    for name, (r, lp, feats) in predicted.items():
        frame = _prediction_frame(plan, r, lp, name)
        trust.add_columns(frame, plan.config.data.classes, trust.calibrate(np.exp(lp)), feats)
        frames.append(frame)
    _write_fold(arm, k, arm_dir, frames, info)


@dataclass
class FoldTrust:
    """A fold model's temperature (None: not scaled) and out-of-domain check (None: not fitted)."""

    temperature: float | None
    ood: object | None
    info: dict

    def calibrate(self, cnn_proba: np.ndarray) -> np.ndarray:
        from blastscope.evaluation.calibration import apply_temperature

        return cnn_proba if self.temperature is None else apply_temperature(cnn_proba, self.temperature)

    def add_columns(self, frame: pd.DataFrame, classes: Sequence[str], cal_proba: np.ndarray, feats: np.ndarray | None) -> None:
        """``cal_p_<class>`` (the answering classifier's calibrated probability), ``ood_score``, ``out_of_domain``."""
        for i, c in enumerate(classes):
            frame[f"cal_p_{c}"] = cal_proba[:, i]
        if self.ood is not None and feats is not None and len(frame):
            score, flag = self.ood.flag(feats)
            frame["ood_score"], frame["out_of_domain"] = score, flag
        else:
            frame["ood_score"], frame["out_of_domain"] = np.nan, False


MAX_OOD_FEATURES = 1024  # a shared covariance of more features costs more memory than it is worth


def _fit_trust(plan: CVPlan, k: int, rows: FoldRows, arm_dir: Path, predicted: dict, outputs) -> FoldTrust:
    """Temperature on the selection cells' softmax (``trust.temperature``; only with an inner
    selection split: under the papers' protocol the selection cells are the scored ones, so no
    temperature is fitted), and a Mahalanobis out-of-domain check fitted on the fit cells' features
    with its threshold on the selection cells (:mod:`blastscope.estimators.ood`), stored in
    ``ood.safetensors``. Neither reads a scored cell."""
    from safetensors.numpy import save_file

    from blastscope.engine.atomic import atomic_write
    from blastscope.estimators.ood import MahalanobisOOD
    from blastscope.evaluation.calibration import fit_temperature

    trust = plan.config.trust
    info: dict = {"temperature": None, "temperature_on": None, "ood_threshold": None}
    temperature = None
    if trust.temperature and rows.inner and len(rows.select):
        _, lp, _ = predicted["select"]
        temperature = fit_temperature(np.exp(lp), plan.y[rows.select])
        info.update(temperature=temperature, temperature_on="select")
        if (lp.argmax(axis=1) == plan.y[rows.select]).all():
            info["temperature_note"] = "not estimable: the network got every selection cell right, so no scaling (T = 1)"
    elif trust.temperature:
        info["temperature_note"] = "not fitted: the papers' protocol (data.selection: fold) has no unscored selection cells"
    ood = None
    fit_feats = outputs(rows.fit)[1]
    if fit_feats is not None and fit_feats.shape[1] > MAX_OOD_FEATURES:
        info["ood_note"] = f"not fitted: {fit_feats.shape[1]} features (more than {MAX_OOD_FEATURES})"
    elif fit_feats is not None and len(rows.fit) >= 3:
        try:
            ood = MahalanobisOOD(trust.ood_quantile).fit(fit_feats, plan.y[rows.fit])
            on = "select" if rows.inner else "fit"
            ood.set_threshold(predicted["select"][2] if rows.inner else fit_feats)
            info.update(ood_threshold=ood.threshold_, ood_quantile=trust.ood_quantile, ood_threshold_on=on)
            arrays = {key: np.array(v, dtype=np.float64, order="C") for key, v in ood.to_arrays().items()}  # 0-d stays 0-d
            atomic_write(arm_dir / "ood.safetensors", lambda p: save_file(arrays, str(p)))
        except (ValueError, np.linalg.LinAlgError) as e:
            logger.warning("fold %d: out-of-domain check not fitted (%s)", k + 1, e)
            ood = None
    return FoldTrust(temperature, ood, info)


def _source_trust(run_dir: Path, plan: CVPlan, source: str, k: int) -> FoldTrust:
    """The trust settings the source arm fitted for fold ``k`` (an auxiliary arm shares its CNN's)."""
    import json

    from safetensors.numpy import load_file

    from blastscope.estimators.ood import MahalanobisOOD

    src = fold_dir(run_dir, network_arm(plan.config, source).name, k)
    info = json.loads((src / "fold.json").read_text())
    ood = MahalanobisOOD.from_arrays(load_file(str(src / "ood.safetensors"))) if (src / "ood.safetensors").exists() else None
    keep = ("temperature", "temperature_on", "temperature_note", "ood_threshold", "ood_quantile", "ood_threshold_on")
    return FoldTrust(info.get("temperature"), ood, {key: info[key] for key in keep if key in info})


def _evaluate_aux(plan: CVPlan, run_dir: Path, arm: ArmConfig, k: int, arm_dir: Path, arrays: dict[str, np.ndarray],
                  trained: dict[str, tuple[nn.Module, ModelInput]], progress: ProgressFactory) -> None:
    """Fit the auxiliary SVM on the source arm's trained CNN, apply the theta rule, write the fold's files."""
    from blastscope.estimators.theta_rule import theta_combine

    cnn = _load_trained(plan, run_dir, arm.source, k, trained)
    trust = _source_trust(run_dir, plan, arm.source, k)
    on_calibrated = arm.aux.theta_on == "calibrated" and trust.temperature is not None
    theta_proba = trust.calibrate if on_calibrated else (lambda p: p)
    outputs, info = _aux_arm(plan, arm, k, arm_dir, arrays, cnn, progress, theta_proba)
    info["source"] = arm.source
    info.update(trust.info, theta_on="calibrated" if on_calibrated else "raw")
    frames = []
    classes = plan.config.data.classes
    for name, (rows, lp, svm_pred, svm_proba, feats) in outputs.items():
        frame = _prediction_frame(plan, rows, lp, name)
        cnn_proba = np.exp(lp)
        cal_cnn = trust.calibrate(cnn_proba)
        cal = cal_cnn
        for i, c in enumerate(classes):
            frame[f"cnn_p_{c}"] = cnn_proba[:, i]
        if svm_pred is None:  # no SVM in this fold: the CNN answers every cell (theta = 0)
            frame["svm_pred"] = pd.array([pd.NA] * len(frame), dtype="Int64")
        else:
            pred, source = theta_combine(theta_proba(cnn_proba), svm_pred, info["theta"])
            by_svm = source == "svm"
            proba = np.where(by_svm[:, None], svm_proba, cnn_proba)  # the score of the classifier that answered
            cal = np.where(by_svm[:, None], svm_proba, cal_cnn)  # the SVM's Platt probability is its calibration
            frame["pred"], frame["answered_by"], frame["svm_pred"] = pred, source, svm_pred
            for i, c in enumerate(classes):
                frame[f"p_{c}"] = proba[:, i]
                frame[f"svm_p_{c}"] = svm_proba[:, i]
        trust.add_columns(frame, classes, cal, feats)
        frames.append(frame)
    info["sweep"] = list(arm.aux.sweep)
    _write_fold(arm, k, arm_dir, frames, info)


def _write_fold(arm: ArmConfig, k: int, arm_dir: Path, frames: list[pd.DataFrame], info: dict) -> None:
    predictions = pd.concat(frames, ignore_index=True)
    predictions.insert(0, "fold", k)
    predictions.insert(0, "arm", arm.name)
    atomic_write_csv(arm_dir / "predictions.csv", predictions)
    atomic_write_json(arm_dir / "fold.json", {"arm": arm.name, "fold": k, **info})  # last: the fold is done
    scored = predictions[predictions["set"] == "oof"]
    accuracy = float((scored["pred"] == scored["y"]).mean()) if len(scored) else float("nan")
    logger.info("%s fold %d done: best epoch %s, out-of-fold accuracy %.3f on %d cells", arm.name, k + 1,
                info.get("best_epoch", "-"), accuracy, len(scored))


def run_cv(config: RunConfig, index: pd.DataFrame, run_dir: Path, folds: list[int] | None = None,
           cache_dir: Path | None = None, progress: ProgressFactory = no_progress, skip_invalid: bool = False,
           skipped: Sequence[tuple[str, str]] = (), data_dir: Path | None = None) -> CVPlan:
    """Train and evaluate every arm on every (or the given) fold; returns the plan.

    First every arm's model is checked against the configured image size (a clear ``ValueError``
    instead of a shape error in training). Every image is decoded before training; unreadable
    files are an error listing them all, or with ``skip_invalid`` are left out and recorded in
    ``skipped.csv`` and run.json ``skipped``, after ``skipped``: ``(file, reason)`` pairs the
    reader already left out (e.g. names that do not parse, see ``read_dataset(problems=...)``).
    ``data_dir`` (the folder the index was read from) is recorded in run.json ``provenance`` with
    the index digest, command line, versions and times; each finished call records its end time.
    Aggregation into ``metrics.json`` is :func:`blastscope.evaluation.aggregate.aggregate_run`.
    Data-parallel: call it in every process; see the module docstring.
    """
    run_dir = Path(run_dir)
    check_input_sizes(config)
    plan = plan_cv(config, index)
    data = config.data
    preprocess = Preprocess(canvas=data.canvas, resize=data.resize)
    cache = ImageCache(cache_dir or run_dir / "cache")
    cache_file, decode_skipped = ddp.run_on_main(_prepare, plan, index, run_dir, cache, preprocess, skip_invalid,
                                                 list(skipped), progress, data_dir)
    if decode_skipped:
        plan = _plan_without(config, index, decode_skipped)
    arrays = {"all": np.load(cache_file, mmap_mode="r", allow_pickle=False)}
    n_folds = int(plan.index["fold"].max()) + 1
    todo = list(range(n_folds)) if folds is None else folds
    bad = [k for k in todo if not 0 <= k < n_folds]
    if bad:
        raise ValueError(f"fold numbers must be in 1..{n_folds}, got {[k + 1 for k in bad]}")
    torch.manual_seed(config.train.seed)
    for k in todo:
        trained: dict[str, tuple[nn.Module, ModelInput]] = {}
        for arm in config.arms:
            arm_dir = fold_dir(run_dir, arm.name, k)
            if ddp.broadcast_object((arm_dir / "fold.json").exists()):  # every rank takes rank 0's decision
                continue
            if arm.aux is not None:  # no training: rank 0 alone
                ddp.run_on_main(_evaluate_aux, plan, run_dir, arm, k, arm_dir, arrays, trained, progress)
                continue
            for name in arm.fuse:  # fusion reuses the fold's trained arms (here or in fuse_from folders), never retrains them
                _load_trained(plan, run_dir, name, k, trained, arm.fuse_from)
            (model, model_input), info = _fit_arm(plan, arm, k, arm_dir, arrays, trained, progress)
            trained[arm.name] = (model, model_input)
            ddp.run_on_main(_evaluate_cnn, plan, arm, k, arm_dir, arrays["all"], model, model_input, info)
    ddp.run_on_main(_record_finish, run_dir)
    return plan


def _record_finish(run_dir: Path) -> None:
    """run.json ``provenance.finished``: when the last run_cv call on this folder finished."""
    import json

    path = run_dir / "run.json"
    run = json.loads(path.read_text())
    if isinstance(run.get("provenance"), dict):
        run["provenance"]["finished"] = now()
        atomic_write_json(path, run)


def _load_trained(plan: CVPlan, run_dir: Path, arm_name: str, k: int,
                  trained: dict[str, tuple[nn.Module, ModelInput]],
                  fuse_from: dict[str, str] | None = None) -> tuple[nn.Module, ModelInput]:
    """The trained model (and fitted input) of ``arm_name`` in fold ``k``: the one trained in this
    process, else loaded by :func:`blastscope.engine.arm_models.load_fold_model` from the run folder
    (or from the run folder ``fuse_from[arm_name]``, built with that run's configuration)."""
    if fuse_from and arm_name in fuse_from:
        folder = Path(fuse_from[arm_name])
        if arm_name not in trained:
            if not (fold_dir(folder, arm_name, k) / "fold.json").exists():
                raise RunFolderError(f"run folder {folder}: arm {arm_name!r} fold {k + 1} is not finished")
            trained[arm_name] = load_fold_model(folder, read_config(folder / "config.yaml"), arm_name, k)
        return trained[arm_name]
    arm_name = network_arm(plan.config, arm_name).name  # an auxiliary arm predicts with its source's CNN
    if arm_name not in trained:
        trained[arm_name] = load_fold_model(run_dir, plan.config, arm_name, k)
    return trained[arm_name]
