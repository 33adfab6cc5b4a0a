"""Typed, frozen run configuration.

A recipe (YAML shipped in ``blastscope/recipes``) supplies defaults, a profile (``quick``) and
``--set key=value`` on the command line override them, and the resolved configuration is saved as
``config.yaml`` in every run folder. Unknown keys are errors that name the key.
"""
from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "DataConfig", "OptimConfig", "ScheduleConfig", "TrainConfig", "AuxConfig", "ArmConfig", "RunConfig",
    "ConfigError", "load_recipe", "list_recipes", "resolve_config", "config_to_dict", "config_from_dict",
    "TRAINING_OVERRIDES", "arm_training", "check_positive", "check_file_name", "safe_yaml",
]

# The data settings an arm may override for its own training (None in the arm = data.<key>).
TRAINING_OVERRIDES = ("augment", "augment_minority_only", "balance")
BALANCE = ("oversample", "none")


class ConfigError(ValueError):
    """A recipe or override that cannot be used; the message names the key and the value."""


def _check_training(where: str, augment: Any, augment_minority_only: Any, balance: Any) -> None:
    """Raise :class:`ConfigError` naming ``where`` (e.g. ``arms[stage1]``) for a bad training setting;
    ``None`` values are not checked (an arm's ``None`` inherits ``data.<key>``)."""
    if augment is not None:
        # Names only, imported late: the transform classes themselves load when a run builds them.
        from blastscope.transforms.factory import TRANSFORMS

        if not isinstance(augment, str) or augment not in TRANSFORMS:
            raise ConfigError(f"{where}.augment must be one of the augmentations {sorted(TRANSFORMS)}, got {augment!r}")
    if augment_minority_only is not None and not isinstance(augment_minority_only, bool):
        raise ConfigError(f"{where}.augment_minority_only must be true or false, got {augment_minority_only!r}")
    if balance is not None and (not isinstance(balance, str) or balance not in BALANCE):
        raise ConfigError(f"{where}.balance must be one of {list(BALANCE)}, got {balance!r}")


_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")


def check_file_name(name: Any, what: str) -> str:
    """``name`` if it is safe as one folder or file name (it becomes one: ``arms/<arm>/``, figure
    files per class): 1-64 of letters, digits, ``_ . + -``, starting with a letter or digit (so no
    path separators, no ``..``, no leading dot). Raises :class:`ConfigError` naming ``what``."""
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
        raise ConfigError(f"{what} {name!r} cannot be used: it becomes a folder or file name, so it must be 1-64 letters, "
                          "digits, '_', '.', '+' or '-', starting with a letter or digit")
    return name


def check_positive(positive: Any, classes: Any, where: str = "data.positive",
                   classes_name: str = "data.classes") -> str | list[str]:
    """A positive class setting normalised: a class name, or a list of two or more names in
    ``classes`` order (a one-name list becomes the name). The one check of ``data.positive`` and of
    the ``positive`` stored in run.json / bundle.json. Raises :class:`ConfigError` (a ValueError)
    naming ``where`` and the bad value: unknown or repeated names, an empty list, every class positive.
    """
    classes = [str(c) for c in classes]
    if isinstance(positive, str):
        if positive not in classes:
            raise ConfigError(f"{where} must be one of {classes_name} {classes}, got {positive!r}")
        return positive
    if not isinstance(positive, (list, tuple)) or not positive or not all(isinstance(p, str) for p in positive):
        shown = list(positive) if isinstance(positive, tuple) else positive  # YAML lists arrive as tuples
        raise ConfigError(f"{where} must be a class name or a non-empty list of class names "
                          f"from {classes_name} {classes}, got {shown!r}")
    unknown = [p for p in positive if p not in classes]
    if unknown:
        raise ConfigError(f"{where} names {unknown}, which are not in {classes_name} {classes} "
                          f"(got {where}={list(positive)})")
    repeated = sorted({p for p in positive if positive.count(p) > 1})
    if repeated:
        raise ConfigError(f"{where} names {repeated} more than once (got {where}={list(positive)})")
    if len(positive) == len(classes):
        raise ConfigError(f"{where} names every class of {classes_name} {classes}; "
                          "at least one class must stay negative")
    ordered = [c for c in classes if c in positive]
    return ordered[0] if len(ordered) == 1 else ordered


@dataclass(frozen=True)
class DataConfig:
    """``positive``: the class the binary results are about (operating point, ROC AUC, sensitivity,
    per-subject calls), or a list of classes taken together ("any of them" against the rest,
    scored by the sum of their probabilities; e.g. the three ALL subtypes against ``benign``).
    A list is kept in ``classes`` order; a one-name list is that name.

    ``selection``: where the choices of each fold model are made (best epoch, the SVM's Platt
    scaling, the operating point). ``"inner"`` (default): on an inner subject-level split of the
    fold's TRAINING subjects (about ``1 / inner_folds`` of them, which then do not train the
    network or the SVM), so the outer fold is scored untouched. ``"fold"``: the papers' protocol,
    on the validation fold itself; its out-of-fold scores are then labelled "selection fold
    (optimistic)" and only a separate held-out test set is an unbiased result."""

    canvas: int | None = 350
    resize: int | None = None
    classes: tuple[str, ...] = ("hem", "all")
    positive: str | tuple[str, ...] = "all"
    folds: int = 7
    fold_mode: Literal["subject", "dataset", "image"] = "subject"
    grouping: Literal["subject", "image"] = "subject"
    balance: Literal["oversample", "none"] = "oversample"
    augment: str = "sdct"
    augment_minority_only: bool = False
    synthetic: str | None = "default"  # the built-in preset used without --data; null for a user's data
    class_map: dict[str, str] | None = None
    selection: Literal["inner", "fold"] = "inner"
    inner_folds: int = 5

    def __post_init__(self) -> None:
        if self.selection not in ("inner", "fold"):
            raise ConfigError(f"data.selection must be inner or fold, got {self.selection!r}")
        if isinstance(self.inner_folds, bool) or not isinstance(self.inner_folds, int) or self.inner_folds < 2:
            raise ConfigError(f"data.inner_folds must be an integer >= 2, got {self.inner_folds!r}")
        if len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
            raise ConfigError(f"data.classes must be two or more distinct names, got {list(self.classes)}")
        for c in self.classes:
            check_file_name(c, "data.classes entry")
        positive = check_positive(self.positive, self.classes)
        object.__setattr__(self, "positive", positive if isinstance(positive, str) else tuple(positive))
        if self.fold_mode != "dataset" and self.folds < 2:
            raise ConfigError(f"data.folds must be >= 2, got {self.folds}")
        if self.fold_mode not in ("subject", "dataset", "image"):
            raise ConfigError(f"data.fold_mode must be subject, dataset or image, got {self.fold_mode!r}")
        if self.grouping not in ("subject", "image"):
            raise ConfigError(f"data.grouping must be subject or image, got {self.grouping!r}")
        if self.fold_mode == "image" and self.grouping != "image":
            raise ConfigError("data.fold_mode=image splits cells of one subject across folds; "
                              "it needs the explicit data.grouping=image (labelled image-level in every report)")
        for key in TRAINING_OVERRIDES:
            if getattr(self, key) is None:
                raise ConfigError(f"data.{key} must be set (arms inherit it), got null")
        _check_training("data", self.augment, self.augment_minority_only, self.balance)


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["sgd", "adam"] = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-2

    def __post_init__(self) -> None:
        if self.name not in ("sgd", "adam"):
            raise ConfigError(f"train.optimizer.name must be sgd or adam, got {self.name!r}")
        if self.lr <= 0:
            raise ConfigError(f"train.optimizer.lr must be > 0, got {self.lr}")


@dataclass(frozen=True)
class ScheduleConfig:
    name: Literal["step", "plateau", "none"] = "step"
    milestones: tuple[int, ...] = (70, 105, 115)
    gamma: float = 0.1
    factor: float = 0.3
    patience: int = 5
    min_lr: float = 1e-6
    monitor: Literal["val_loss", "val_accuracy"] = "val_loss"  # plateau: what must stop improving

    def __post_init__(self) -> None:
        if self.name not in ("step", "plateau", "none"):
            raise ConfigError(f"train.schedule.name must be step, plateau or none, got {self.name!r}")
        if self.monitor not in ("val_loss", "val_accuracy"):
            raise ConfigError(f"train.schedule.monitor must be val_loss or val_accuracy, got {self.monitor!r}")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 130
    batch_size: int = 64
    seed: int = 0
    num_workers: int | str = "auto"
    eval_batch_size: int = 64
    optimizer: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    max_train_batches: int | None = None
    device: str = "auto"
    amp: str = "auto"
    deterministic: bool = False

    def __post_init__(self) -> None:
        dev = str(self.device).lower()
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise ConfigError(f"train.amp must be auto, off, bf16 or fp16, got {self.amp!r}")
        if not isinstance(self.deterministic, bool):
            raise ConfigError(f"train.deterministic must be true or false, got {self.deterministic!r}")
        workers = self.num_workers
        if workers != "auto" and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
            raise ConfigError(f"train.num_workers must be auto or an integer >= 0, got {workers!r}")
        if self.epochs < 1:
            raise ConfigError(f"train.epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"train.batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class AuxConfig:
    """SDCT-AuxNet-theta auxiliary classifier (Gehlot et al. 2020 section 3.4).

    ``gamma="scale"`` is scikit-learn's heuristic 1 / (n_features * Var(X)) on the SVM's
    training features, for inputs other than the paper's (e.g. fewer spectral features).
    ``"auto"`` for ``C``, ``gamma``, ``standardize`` or ``theta`` chooses them on training subjects
    only (:mod:`blastscope.estimators.aux_search`); the chosen values are written to ``fold.json``.
    ``svm_cells``: which correctly classified cells train the SVM: ``fit`` (default) the fold's
    fit subjects; ``all_training`` every training cell of the run, the fold's own validation fold
    included, as the authors' released code does. The SVM has then seen the cells it is scored on
    out of fold (and the selection cells its Platt scaling reads): tables and fold.json say so,
    and only held-out test sets are unbiased for that arm.
    ``theta_on``: the CNN probability the theta rule compares with theta: ``raw`` (the paper's
    softmax) or ``calibrated`` (temperature-scaled, ``trust.temperature``).
    """

    C: float | str = 10.0
    gamma: float | str = 100.0
    standardize: bool | str = False
    theta: float | str = 0.9
    sweep: tuple[float, ...] = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    svm_cells: Literal["fit", "all_training"] = "fit"
    theta_on: Literal["raw", "calibrated"] = "raw"

    def __post_init__(self) -> None:
        if self.theta_on not in ("raw", "calibrated"):
            raise ConfigError(f"aux.theta_on must be raw or calibrated, got {self.theta_on!r}")
        if self.svm_cells not in ("fit", "all_training"):
            raise ConfigError(f"aux.svm_cells must be fit or all_training, got {self.svm_cells!r}")
        if not (self.theta == "auto" or (isinstance(self.theta, (int, float)) and not isinstance(self.theta, bool)
                                         and 0.0 <= self.theta <= 1.0)):
            raise ConfigError(f"aux.theta must be in [0, 1] or 'auto', got {self.theta!r}")
        if not (self.gamma in ("scale", "auto") or (isinstance(self.gamma, (int, float)) and self.gamma > 0)):
            raise ConfigError(f"aux.gamma must be a positive number, 'scale' or 'auto', got {self.gamma!r}")
        if not (self.C == "auto" or (isinstance(self.C, (int, float)) and not isinstance(self.C, bool) and self.C > 0)):
            raise ConfigError(f"aux.C must be a positive number or 'auto', got {self.C!r}")
        if not (self.standardize == "auto" or isinstance(self.standardize, bool)):
            raise ConfigError(f"aux.standardize must be true, false or 'auto', got {self.standardize!r}")

    @property
    def searched(self) -> bool:
        """Whether any SVM setting is chosen by the inner search (``auto``)."""
        return "auto" in (self.C, self.gamma, self.standardize)


@dataclass(frozen=True)
class ArmConfig:
    """One model trained (or derived) per fold. ``source`` names another arm this one reuses:
    an ``aux`` arm adds the SVM to that arm's trained CNN; ``fuse`` lists arms whose trained
    models a fusion model combines (LeukoNet Stage-3).

    ``fuse_from`` (fusion arms only) maps some of the ``fuse`` names to OTHER run folders
    (paths, relative to the working directory): the fold-k model of arm ``name`` in that folder
    is loaded, never retrained. That folder must hold the same data, folds, classes and
    preprocessing, and the name must not also be an arm of this recipe. Example (LeukoNet
    "Stage-3C w/ aug" from a Stage-1 w/ aug run and a Stage-2C w/o aug run):
    ``fuse: [stage1, stage2c], fuse_from: {stage1: runs/s1, stage2c: runs/s2c}``.

    ``augment``, ``augment_minority_only`` and ``balance`` override ``data.<key>`` for this arm's
    training only (``None``: inherit); :meth:`RunConfig.arm_data` gives the settings an arm trains
    with. A fusion arm trains only its new layer, with its own settings; the fused arms keep
    theirs (LeukoNet "Stage-3C w/ aug" = Stage-1 with and Stage-2C without augmentation, one run).
    An auxiliary (``aux``) arm trains no network, so it takes no overrides.

    ``lr`` overrides ``train.optimizer.lr`` for this arm's network (:meth:`RunConfig.arm_train`):
    a toolkit option, not the papers' (they train SD-Net and SDCT-Net alike); the ``cpu`` profile of
    ``sdct_auxnet`` uses it because SDCT-Net needs a higher rate to learn as fast as SD-Net from the
    log-DCT input (measured; README, "Learning on real cells")."""

    name: str
    model: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    aux: AuxConfig | None = None
    fuse: tuple[str, ...] = ()
    input: str = "rgb"
    input_kwargs: dict[str, Any] = field(default_factory=dict)
    fuse_from: dict[str, str] | None = None
    augment: str | None = None
    augment_minority_only: bool | None = None
    balance: Literal["oversample", "none"] | None = None
    stain_od: Literal["log10", "ln"] = "log10"  # OD log of the Macenko estimate that initialises an SD layer
    lr: float | None = None  # this arm's learning rate (None: train.optimizer.lr)

    def __post_init__(self) -> None:
        check_file_name(self.name, "arm name")
        where = f"arms[{self.name}]"
        if self.stain_od not in ("log10", "ln"):
            raise ConfigError(f"{where}.stain_od must be log10 or ln, got {self.stain_od!r}")
        _check_training(where, self.augment, self.augment_minority_only, self.balance)
        if self.aux is not None:
            given = [k for k in TRAINING_OVERRIDES if getattr(self, k) is not None]
            if given:
                raise ConfigError(f"{where} is an auxiliary SVM arm and trains no network; remove {given} "
                                  f"(it uses the CNN of arm {self.source!r} as that arm was trained)")
        if self.fuse_from is None:
            return
        if not isinstance(self.fuse_from, dict):
            raise ConfigError(f"{where}.fuse_from must map arm names to run folders, got {self.fuse_from!r}")
        unknown = sorted(set(self.fuse_from) - set(self.fuse))
        if unknown:
            raise ConfigError(f"{where}.fuse_from names {unknown}, which are not in its fuse list {list(self.fuse)}")
        bad = {k: v for k, v in self.fuse_from.items() if not isinstance(v, str) or not v.strip()}
        if bad:
            raise ConfigError(f"{where}.fuse_from values must be run folder paths, got {bad}")


@dataclass(frozen=True)
class TrustConfig:
    """How far a lab can trust a cell's answer (none of it is in the papers; see README "Trust").

    ``calibration``: the cells that calibrate the conformal referral: ``null`` (none: no
    prediction sets, ``predict`` flags by confidence only), the name of a held-out split
    (``validation`` or ``test``, e.g. C-NMC's preliminary test set: it then calibrates and is no
    longer scored), or a share in (0, 0.5) of the training subjects set aside before the folds
    (they train and select nothing and are not scored). ``alpha``: the conformal error rate per
    class. ``temperature``: temperature-scale every CNN arm on its selection cells (training
    subjects). ``ood_quantile``: the share of in-domain selection cells below the out-of-domain
    threshold. ``patient_threshold``: the leukemic-cell fraction of the patient rule, ``auto``
    (chosen on training subjects) or a number in (0, 1)."""

    calibration: str | float | None = None
    alpha: float = 0.05
    temperature: bool = True
    ood_quantile: float = 0.99
    patient_threshold: float | str = "auto"

    def __post_init__(self) -> None:
        c = self.calibration
        if not (c is None or c in ("validation", "test")
                or (isinstance(c, (int, float)) and not isinstance(c, bool) and 0.0 < c < 0.5)):
            raise ConfigError(f"trust.calibration must be null, validation, test or a share in (0, 0.5), got {c!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0.0 < self.alpha < 0.5:
            raise ConfigError(f"trust.alpha must be in (0, 0.5), got {self.alpha!r}")
        if not isinstance(self.temperature, bool):
            raise ConfigError(f"trust.temperature must be true or false, got {self.temperature!r}")
        q = self.ood_quantile
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.5 <= q < 1.0:
            raise ConfigError(f"trust.ood_quantile must be in [0.5, 1), got {q!r}")
        t = self.patient_threshold
        if not (t == "auto" or (isinstance(t, (int, float)) and not isinstance(t, bool) and 0.0 < t < 1.0)):
            raise ConfigError(f"trust.patient_threshold must be 'auto' or in (0, 1), got {t!r}")


@dataclass(frozen=True)
class RunConfig:
    recipe: str
    paper: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    arms: tuple[ArmConfig, ...] = ()
    profile: str | None = None
    trust: TrustConfig = field(default_factory=TrustConfig)

    def __post_init__(self) -> None:
        if not self.arms:
            raise ConfigError(f"recipe {self.recipe!r} defines no arms")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ConfigError(f"recipe {self.recipe!r} has duplicate arm names {names}")
        seen: set[str] = set()
        external: dict[str, str] = {}
        for arm in self.arms:
            for ref, folder in (arm.fuse_from or {}).items():
                if ref in names:
                    raise ConfigError(f"arm {arm.name!r} takes {ref!r} from run folder {folder!r} (fuse_from), "
                                      f"but {ref!r} is also an arm of this recipe; keep one of the two")
                if external.setdefault(ref, folder) != folder:
                    raise ConfigError(f"arm {ref!r} is taken from two run folders: {external[ref]!r} and {folder!r}")
            refs = ([arm.source] if arm.source else []) + [f for f in arm.fuse if f not in (arm.fuse_from or {})]
            for ref in refs:
                if ref not in seen:
                    raise ConfigError(f"arm {arm.name!r} uses arm {ref!r}, which must be defined before it")
            if arm.model is None and arm.source is None:
                raise ConfigError(f"arm {arm.name!r} needs a model or a source arm")
            if arm.lr is not None and (arm.aux is not None or not isinstance(arm.lr, (int, float)) or isinstance(arm.lr, bool)
                                       or not arm.lr > 0):
                raise ConfigError(f"arm {arm.name!r}: lr must be a positive number on an arm that trains a network, got {arm.lr!r}")
            seen.add(arm.name)

    def arm_train(self, arm: ArmConfig) -> TrainConfig:
        """``train`` with the arm's learning rate (``arm.lr``) where it sets one."""
        if arm.lr is None:
            return self.train
        return replace(self.train, optimizer=replace(self.train.optimizer, lr=float(arm.lr)))

    def arm_data(self, arm: ArmConfig | str) -> DataConfig:
        """``data`` with the arm's training overrides (``augment``, ``augment_minority_only``,
        ``balance``) applied: the settings the arm's network is trained with."""
        if isinstance(arm, str):
            by_name = {a.name: a for a in self.arms}
            if arm not in by_name:
                raise ConfigError(f"recipe {self.recipe!r} has no arm {arm!r}; arms: {list(by_name)}")
            arm = by_name[arm]
        changes = {k: getattr(arm, k) for k in TRAINING_OVERRIDES if getattr(arm, k) is not None}
        return replace(self.data, **changes) if changes else self.data


def arm_training(config: RunConfig) -> dict[str, dict]:
    """Per arm that trains a network: the augmentation and sampling it trains with (run.json
    ``training``), e.g. ``{"stage1": {"augment": "sdct", "augment_minority_only": False,
    "balance": "none"}}``; an arm a fusion takes from another run folder (``fuse_from``) as
    ``{"run_folder": path}`` (its settings are in that folder). Auxiliary SVM arms train no
    network and are left out."""
    out: dict[str, dict] = {}
    for arm in config.arms:
        for ref, folder in (arm.fuse_from or {}).items():
            out[ref] = {"run_folder": folder}
        if arm.aux is None:
            data = config.arm_data(arm)
            out[arm.name] = {key: getattr(data, key) for key in TRAINING_OVERRIDES}
            if arm.lr is not None:  # recorded where an arm trains at its own rate
                out[arm.name]["lr"] = float(arm.lr)
    return out


def _build(cls: type, data: Any, where: str) -> Any:
    if not is_dataclass(cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {data!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in {where or 'config'}; known: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        f = known[name]
        sub = _NESTED.get((cls.__name__, name))
        if sub is not None and value is None and f.default is not None:
            raise ConfigError(f"{f'{where}.' if where else ''}{name} must be a mapping, got null")
        if sub is not None and value is not None:
            if name == "arms":
                if not isinstance(value, (list, tuple)):
                    raise ConfigError(f"arms must be a list of arm mappings, got {value!r}")
                value = tuple(_build(ArmConfig, v, f"{where}.arms[{i}]") for i, v in enumerate(value))
            else:
                value = _build(sub, value, f"{where}.{name}".lstrip("."))
        elif isinstance(value, list):
            value = tuple(value)
        for v in (value if isinstance(value, tuple) else (value,)):
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{f'{where}.' if where else ''}{name} must be a finite number, got {value!r}")
        if (f.type == "int" or (f.type == "int | None" and value is not None)) and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{f'{where}.' if where else ''}{name} must be an integer, got {value!r}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{where or 'config'}: {e}") from None


_NESTED = {
    ("RunConfig", "data"): DataConfig,
    ("RunConfig", "train"): TrainConfig,
    ("RunConfig", "arms"): ArmConfig,
    ("TrainConfig", "optimizer"): OptimConfig,
    ("TrainConfig", "schedule"): ScheduleConfig,
    ("ArmConfig", "aux"): AuxConfig,
    ("RunConfig", "trust"): TrustConfig,
}


def config_from_dict(data: dict) -> RunConfig:
    return _build(RunConfig, data, "")


def config_to_dict(config: Any) -> dict:
    def clean(v: Any) -> Any:
        if isinstance(v, tuple):
            return [clean(x) for x in v]
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v

    return clean(asdict(config))


def _deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def list_recipes() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("blastscope.recipes").iterdir() if p.name.endswith(".yaml"))


class _SafeNoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases: ``*name`` references let a few bytes expand to gigabytes
    ("billion laughs"); recipes and overrides never need them."""

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(None, None, f"YAML aliases (*{event.anchor}) are not allowed",
                                                    event.start_mark)
        return super().compose_node(parent, index)


def safe_yaml(text: str):
    """``yaml.safe_load`` that refuses aliases (:class:`_SafeNoAliasLoader`); raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_SafeNoAliasLoader)  # noqa: S506 - a SafeLoader subclass


def load_recipe(name_or_path: str) -> dict:
    """Raw recipe mapping from a shipped recipe name or a YAML file path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        text = path.read_text()
    else:
        res = resources.files("blastscope.recipes") / f"{name_or_path}.yaml"
        if not res.is_file():
            raise ConfigError(f"unknown recipe {name_or_path!r}; shipped recipes: {', '.join(list_recipes())}")
        text = res.read_text()
    try:
        raw = safe_yaml(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"recipe {name_or_path!r} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"recipe {name_or_path!r} must be a YAML mapping")
    return raw


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.sub=value")
    key, value = item.split("=", 1)
    try:
        return key.strip().split("."), safe_yaml(value)
    except yaml.YAMLError as e:
        shown = item if len(item) <= 80 else item[:77] + "..."
        raise ConfigError(f"override of {key.strip()!r} ({shown!r}): the value is not valid YAML ({e})") from None


def resolve_config(recipe: str, profile: str | None = None, overrides: list[str] | None = None) -> RunConfig:
    raw = load_recipe(recipe)
    profiles = raw.pop("profiles", {}) or {}
    if not isinstance(profiles, dict) or (profile in profiles and not isinstance(profiles[profile], dict)):
        raise ConfigError(f"recipe {recipe!r}: profiles must map profile names to mappings, got {profiles!r}")
    raw.setdefault("recipe", recipe if not recipe.endswith((".yaml", ".yml")) else Path(recipe).stem)
    if profile is not None:
        if profile not in profiles:
            raise ConfigError(f"recipe {recipe!r} has no profile {profile!r}; profiles: {sorted(profiles)}")
        raw = _deep_merge(raw, profiles[profile])
        raw["profile"] = profile
    for item in overrides or []:
        keys, value = _parse_override(item)
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {k!r} is not a mapping")
        node[keys[-1]] = value
    try:
        json.dumps(raw, default=str, skipkeys=True)
    except (ValueError, TypeError, RecursionError) as e:  # e.g. a YAML alias that contains itself
        raise ConfigError(f"recipe {recipe!r} with overrides {overrides or []} is not plain data: {e}") from None
    return config_from_dict(raw)


def save_config(config: RunConfig, path: Path) -> None:
    from blastscope.engine.atomic import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))


def read_config(path: Path) -> RunConfig:
    return config_from_dict(safe_yaml(Path(path).read_text()))
