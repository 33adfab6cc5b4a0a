"""Built-in synthetic C-NMC: real 450x450 BMP cell images in the official C-NMC 2019 layout.

Why synthetic: the real C-NMC release is 10 GB behind a registration wall and nothing may be
downloaded at run time, yet a newcomer must see the whole pipeline run in minutes. The generator
imitates what matters for these methods (Gehlot et al. 2020, section 2 and Fig. 1):

- single cells on an exactly black background, the centroid off-centre (readers must re-centre);
- Jenner-Giemsa-like colour made physically: per-pixel stain concentrations times stain vectors in
  optical-density space, I = 255 * 10^(-OD) (the model the stain-deconvolution layer inverts);
- subject-level variability: every subject has its own stain vectors, stain intensity, nucleus size
  and chromatin-frequency offset, and all cells of a subject share its class, so a model can
  recognise a subject; an image-level split therefore leaks and is easier than a subject-level one;
- the class signal lives in chromatin texture frequency (ALL finer than normal) and nucleus shape
  and size (ALL larger, more irregular), scaled by ``signal`` in [0, 1]: cells are hard to tell
  apart by colour, which is what the DCT layer of SDCT-Net is for;
- an optional AML-like third class (larger cell, visible cytoplasm, nucleoli) for 3-class work.

Layout written (as the TCIA release): ``training_data/fold_{0,1,2}/{all,hem}/UID_<subject>_<image>_
<cell>_<all|hem>.bmp``, ``validation_data/C-NMC_test_prelim_phase_data/<n>.bmp`` with
``validation_data/C-NMC_test_prelim_phase_data_labels.csv`` (``Patient_ID,new_names,labels``; 1 = ALL,
0 = normal, 2 = AML, the last a toolkit extension) and unlabelled
``testing_data/C-NMC_test_final_phase_data/<n>.bmp``. Output is byte-identical for a seed.
"""
from __future__ import annotations

import csv
import io
import logging
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from blastscope.engine.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text

__all__ = ["SynthConfig", "PRESETS", "generate_cell", "write_synthetic_cnmc", "ensure_synthetic"]

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
LABEL_CODES = {"hem": 0, "all": 1, "aml": 2}
SUBJECT_PREFIX = {"all": "", "hem": "H", "aml": "A"}


@dataclass(frozen=True)
class SynthConfig:
    """Size and difficulty of a synthetic C-NMC tree.

    ``train_subjects`` etc. are per class; ``cells_per_subject`` is a (min, max) range.
    ``signal`` in [0, 1] scales the class difference (0: classes identical in distribution).
    """

    train_subjects: int = 6
    validation_subjects: int = 2
    test_subjects: int = 2
    cells_per_subject: tuple[int, int] = (10, 14)
    folds: int = 3
    signal: float = 0.8
    classes: tuple[str, ...] = ("all", "hem")
    size: int = 450
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.signal <= 1.0:
            raise ValueError(f"signal must be in [0, 1], got signal={self.signal}")
        if self.train_subjects < self.folds:
            raise ValueError(f"train_subjects must be >= folds, got train_subjects={self.train_subjects} folds={self.folds}")
        lo, hi = self.cells_per_subject
        if not 1 <= lo <= hi:
            raise ValueError(f"cells_per_subject must be 1 <= min <= max, got {self.cells_per_subject}")
        unknown = set(self.classes) - set(LABEL_CODES)
        if unknown or len(self.classes) < 2:
            raise ValueError(f"classes must be two or more of {sorted(LABEL_CODES)}, got {self.classes}")
        if self.size < 200:
            raise ValueError(f"size must be >= 200 pixels, got size={self.size}")


PRESETS: dict[str, SynthConfig] = {
    "quick": SynthConfig(),
    "quick3": SynthConfig(classes=("all", "hem", "aml")),
    "default": SynthConfig(train_subjects=14, validation_subjects=3, test_subjects=3, cells_per_subject=(25, 40), folds=3, signal=0.6),
}


@dataclass(frozen=True)
class Subject:
    subject_id: str
    label: str
    stains: np.ndarray  # (2, 3) unit OD vectors: nucleus, cytoplasm
    intensity: float
    radius: float
    freq_offset: float
    rng_seed: int = field(repr=False, default=0)


_BASE_STAINS = np.array([[0.55, 0.72, 0.42], [0.38, 0.62, 0.30]])
_CLASS_SHAPE = {  # nucleus/cell radius ratio, radius scale, boundary irregularity, chromatin freq (cycles/px)
    "all": (0.95, 1.06, 0.075, 0.16),
    "hem": (0.84, 0.94, 0.035, 0.07),
    "aml": (0.68, 1.18, 0.05, 0.10),
}


def _make_subject(label: str, number: int, rng: np.random.Generator) -> Subject:
    stains = _BASE_STAINS + rng.normal(0, 0.05, size=(2, 3))
    stains = np.abs(stains) / np.linalg.norm(stains, axis=1, keepdims=True)
    return Subject(
        subject_id=f"{SUBJECT_PREFIX[label]}{number}",
        label=label,
        stains=stains,
        intensity=float(np.exp(rng.normal(0, 0.12))),
        radius=float(rng.uniform(92, 118)),
        freq_offset=float(np.exp(rng.normal(0, 0.22))),
        rng_seed=int(rng.integers(2**31)),
    )


def _blend(label: str, signal: float) -> tuple[float, float, float, float]:
    """Class parameters pulled towards the class mean as signal -> 0 (no class difference at 0)."""
    mean = np.mean([_CLASS_SHAPE["all"], _CLASS_SHAPE["hem"]], axis=0)
    own = np.asarray(_CLASS_SHAPE[label])
    return tuple(mean + signal * (own - mean))  # type: ignore[return-value]


@lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return yy, xx


def _blob(size: int, center: tuple[float, float], radius: float, irregularity: float, rng: np.random.Generator) -> np.ndarray:
    """Soft mask (float32 in [0,1]) of a star-shaped blob with random low-order boundary harmonics."""
    yy, xx = _grid(size)
    dy, dx = yy - np.float32(center[0]), xx - np.float32(center[1])
    theta = np.arctan2(dy, dx)
    r = np.full_like(theta, radius)
    for k in range(2, 7):
        amplitude = np.float32(radius * irregularity * rng.normal() / (k - 1) ** 0.7)
        r += amplitude * np.cos(k * theta + np.float32(rng.uniform(0, 2 * np.pi)))
    dist = np.sqrt(dy**2 + dx**2)
    return np.clip((r - dist) / 1.5 + 0.5, 0.0, 1.0)


def _chromatin(size: int, freq: float, rng: np.random.Generator) -> np.ndarray:
    """Band-pass noise centred on ``freq`` cycles/pixel, zero mean and unit variance."""
    noise = rng.standard_normal(size=(size, size), dtype=np.float32)
    spectrum = np.fft.rfft2(noise)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    radial = np.sqrt(fy**2 + fx**2)
    band = np.exp(-0.5 * ((radial - freq) / (0.25 * freq)) ** 2)
    tex = np.fft.irfft2(spectrum * band, s=(size, size))
    return ((tex - tex.mean()) / (tex.std() + 1e-12)).astype(np.float32)


def generate_cell(subject: Subject, signal: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """One H x W x 3 RGB uint8 cell image of ``subject`` on a black background."""
    ratio, radius_scale, irregularity, freq = _blend(subject.label, signal) if subject.label != "aml" else _CLASS_SHAPE["aml"]
    radius = subject.radius * radius_scale * float(np.exp(rng.normal(0, 0.07)))
    radius = min(radius, size * 0.38)
    shift = rng.uniform(-0.08, 0.08, size=2) * size
    center = (size / 2 + shift[0], size / 2 + shift[1])
    cell = _blob(size, center, radius, irregularity, rng)
    nuc_center = (center[0] + rng.normal(0, 0.04) * radius, center[1] + rng.normal(0, 0.04) * radius)
    nucleus = _blob(size, nuc_center, radius * ratio, irregularity * 1.2, rng) * cell
    f = freq * subject.freq_offset * float(np.exp(rng.normal(0, 0.05)))
    chromatin = _chromatin(size, f, rng)
    nuc_conc = subject.intensity * (1.05 + 0.22 * chromatin)
    if subject.label == "aml":  # nucleoli: a few pale round spots inside the nucleus
        for _ in range(int(rng.integers(2, 5))):
            spot_center = (nuc_center[0] + rng.normal(0, 0.3) * radius * ratio, nuc_center[1] + rng.normal(0, 0.3) * radius * ratio)
            nuc_conc = nuc_conc - 0.45 * _blob(size, spot_center, radius * 0.09, 0.02, rng)
    cyt_conc = subject.intensity * (0.45 + 0.05 * _chromatin(size, 0.03, rng))
    stains = subject.stains.astype(np.float32)
    od = (nucleus * nuc_conc)[..., None] * stains[0] + ((cell - nucleus) * cyt_conc)[..., None] * stains[1]
    rgb = 255.0 * np.exp(np.float32(-np.log(10.0)) * od)
    rgb += 2.0 * rng.standard_normal(size=od.shape, dtype=np.float32)
    rgb *= cell[..., None]
    rgb[cell < 0.5] = 0.0
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def _encode_bmp(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".bmp", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("OpenCV failed to encode a BMP")
    return buf.tobytes()


def write_synthetic_cnmc(out: Path, config: SynthConfig = SynthConfig(), progress: Callable[[int], None] | None = None) -> dict:
    """Write a synthetic C-NMC tree under ``out``; returns the summary also saved as ``SYNTHETIC.json``."""
    out = Path(out)
    rng = np.random.default_rng(config.seed)
    counters = {label: 0 for label in config.classes}

    def subjects(n: int, label: str) -> list[Subject]:
        made = []
        for _ in range(n):
            counters[label] += 1
            made.append(_make_subject(label, counters[label], rng))
        return made

    train = {label: subjects(config.train_subjects, label) for label in config.classes}
    held_out = {
        split: [s for label in config.classes for s in subjects(n, label)]
        for split, n in (("validation", config.validation_subjects), ("test", config.test_subjects))
    }
    summary: dict = {"generator_version": GENERATOR_VERSION, "config": asdict(config), "subjects": {}, "images": 0}

    def cells_of(subject: Subject):
        srng = np.random.default_rng(subject.rng_seed)
        n = int(srng.integers(config.cells_per_subject[0], config.cells_per_subject[1] + 1))
        for k in range(n):
            yield k, generate_cell(subject, config.signal, config.size, srng)

    for label, subs in train.items():
        for i, subject in enumerate(subs):
            fold = i % config.folds
            summary["subjects"][subject.subject_id] = {"label": label, "split": "train", "fold": fold}
            for k, rgb in cells_of(subject):
                name = f"UID_{subject.subject_id}_{k // 3 + 1}_{k % 3 + 1}_{label}.bmp"
                atomic_write_bytes(out / "training_data" / f"fold_{fold}" / label / name, _encode_bmp(rgb))
                summary["images"] += 1
                if progress:
                    progress(1)

    folders = {"validation": ("validation_data", "C-NMC_test_prelim_phase_data"), "test": ("testing_data", "C-NMC_test_final_phase_data")}
    for split, subs in held_out.items():
        top, folder = folders[split]
        rows = []
        number = 0
        order = [(s, k, rgb) for s in subs for k, rgb in cells_of(s)]
        shuffled = np.random.default_rng(config.seed + 17 + len(split)).permutation(len(order))
        for j in shuffled:
            subject, k, rgb = order[j]
            number += 1
            summary["subjects"][subject.subject_id] = {"label": subject.label, "split": split, "fold": -1}
            original = f"UID_{subject.subject_id}_{k // 3 + 1}_{k % 3 + 1}_{subject.label}.bmp"
            atomic_write_bytes(out / top / folder / f"{number}.bmp", _encode_bmp(rgb))
            rows.append((original, f"{number}.bmp", LABEL_CODES[subject.label]))
            summary["images"] += 1
            if progress:
                progress(1)
        if split == "validation":
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(["Patient_ID", "new_names", "labels"])
            writer.writerows(rows)
            atomic_write_text(out / top / f"{folder}_labels.csv", buf.getvalue())
        else:
            # The official final-phase test set ships unlabelled; the answers are kept aside.
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(["Patient_ID", "new_names", "labels"])
            writer.writerows(rows)
            atomic_write_text(out / "answers" / f"{folder}_labels.csv", buf.getvalue())
    atomic_write_json(out / "SYNTHETIC.json", summary)
    return summary


def ensure_synthetic(preset: str = "quick", cache_dir: Path | None = None, seed: int = 0) -> Path:
    """Return the folder of a synthetic preset, generating it on first use (idempotent)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic preset {preset!r}; known: {', '.join(PRESETS)}")
    config = PRESETS[preset]
    if seed != config.seed:
        from dataclasses import replace

        config = replace(config, seed=seed)
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    out = root / "synthetic" / f"{preset}-seed{seed}-v{GENERATOR_VERSION}"
    marker = out / "SYNTHETIC.json"
    if marker.exists():
        return out
    logger.info("generating synthetic C-NMC preset %r into %s", preset, out)
    write_synthetic_cnmc(out, config)
    return out


def default_cache_dir() -> Path:
    import os

    env = os.environ.get("BLASTSCOPE_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "blastscope"
