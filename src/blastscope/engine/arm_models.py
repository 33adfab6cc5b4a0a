"""How a recipe arm becomes a model outside training: a JSON spec, a builder, a fold loader.

A spec names the registry id and entrypoint kwargs of the CNN an arm predicts with. An auxiliary
arm (SDCT-AuxNet-theta, Gehlot et al. 2020 section 3.4) predicts with its source arm's CNN; a
fusion arm (LeukoNet Stage-3) lists the specs of the two models it takes as ``first=``/``second=``.
Trained weights (the whole state dict, fused sub-models included) come from the run folder's
``best.safetensors``; no stain estimate is needed because the weights overwrite the initial one.
:func:`load_fold_model` is the one loader of a fold's trained arm (cross-validation uses it too).
:func:`check_input_sizes` refuses, before anything is trained, a configuration whose image size
a model cannot take.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from blastscope.config import ArmConfig, RunConfig
from blastscope.run_layout import fold_dir

__all__ = ["network_arm", "model_spec", "build_model", "load_fold_model", "check_input_sizes"]

logger = logging.getLogger(__name__)


def network_arm(config: RunConfig, name: str) -> ArmConfig:
    """The arm whose network ``name`` predicts with: itself, or for an auxiliary arm (or a chain of
    them) its source's CNN."""
    arms = {a.name: a for a in config.arms}
    arm = arms[name]
    while arm.model is None:
        arm = arms[arm.source]
    return arm


def model_spec(config: RunConfig, arm: ArmConfig) -> dict:
    """``{"arm", "id", "kwargs"[, "fuse": {"first": spec, "second": spec}]}`` of the arm's CNN."""
    arm = network_arm(config, arm.name)
    spec: dict[str, Any] = {"arm": arm.name, "id": arm.model, "kwargs": dict(arm.kwargs)}
    if arm.fuse:
        spec["fuse"] = {role: _sub_spec(config, arm, name) for role, name in zip(("first", "second"), arm.fuse)}
    return spec


def _sub_spec(config: RunConfig, arm: ArmConfig, name: str) -> dict:
    """Spec of a fused sub-model: an arm of this recipe, or of the run folder ``arm.fuse_from[name]``."""
    from blastscope.config import read_config

    arms = {a.name: a for a in config.arms}
    if name in arms:
        return model_spec(config, arms[name])
    other = read_config(Path((arm.fuse_from or {})[name]) / "config.yaml")
    return model_spec(other, next(a for a in other.arms if a.name == name))


def build_model(spec: dict, num_classes: int):
    """An untrained ``nn.Module`` for ``spec`` (fused sub-models built recursively)."""
    from blastscope.models import create_model

    kwargs = dict(spec.get("kwargs") or {})
    for role, sub in (spec.get("fuse") or {}).items():
        kwargs[role] = build_model(sub, num_classes)
    return create_model(spec["id"], num_classes=num_classes, **kwargs)


def load_fold_model(run_dir: Path, config: RunConfig, arm_name: str, fold: int):
    """``(model, model_input)`` of ``arm_name`` in 0-based ``fold``, weights loaded, eval mode.

    Raises ``FileNotFoundError`` naming the weights file when the fold is not trained.
    """
    from safetensors.numpy import load_file

    from blastscope.engine.checkpoint import load_weights
    from blastscope.engine.inputs import build_input

    arm = next((a for a in config.arms if a.name == arm_name), None)
    if arm is None:
        raise ValueError(f"unknown arm {arm_name!r}; arms: {[a.name for a in config.arms]}")
    spec = model_spec(config, arm)
    folder = fold_dir(run_dir, spec["arm"], fold)
    weights = folder / "best.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"{weights}: arm {spec['arm']!r} fold {fold + 1} is not trained")
    model = build_model(spec, len(config.data.classes))
    load_weights(model, weights)
    model.eval()
    cnn_arm = next(a for a in config.arms if a.name == spec["arm"])
    model_input = build_input(cnn_arm.input, **cnn_arm.input_kwargs)
    stored = folder / "input.safetensors"
    if stored.exists():
        model_input.load_arrays(load_file(str(stored)))
    return model, model_input


def check_input_sizes(config: RunConfig) -> None:
    """Raise ``ValueError`` naming the arm and model when a model cannot take the configured images.

    Each arm with its own model (auxiliary arms reuse their source's; fusion models are probed with
    fresh sub-models) runs one ``data.resize`` (else ``data.canvas``) square RGB image; see
    :func:`blastscope.models._registry.check_input_size`. Arms with another model input (``spike``), whose
    network size the input sets, and configurations without a fixed size are not checked here.
    """
    from blastscope.models._registry import check_input_size

    side = config.data.resize or config.data.canvas
    if side is None:
        return
    for arm in config.arms:
        if arm.model is None:
            continue
        if arm.input != "rgb":
            logger.debug("arm %r: input %r sets the network's input size; not checked against %d px", arm.name, arm.input, side)
            continue
        kwargs = {k: v for k, v in arm.kwargs.items() if k not in ("first", "second")}
        try:
            check_input_size(arm.model, side, in_channels=3, num_classes=len(config.data.classes), **kwargs)
        except (ValueError, TypeError) as e:  # TypeError: kwargs the entrypoint does not take
            raise ValueError(f"arm {arm.name!r}: {e}") from None
