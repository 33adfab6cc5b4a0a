"""Sizes and settings of a benchmark run (full, ``--quick``, or shrunk for tests)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

__all__ = ["BenchConfig", "default_data_dir"]


def default_data_dir() -> Path:
    """``../shared/data/cnmc-samples/labeled`` next to the repository (C-NMC sample cells)."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "data" / "cnmc-samples" / "labeled"


@dataclass(frozen=True)
class BenchConfig:
    """What the benchmark runs. Defaults are the full run on the paper's sizes.

    image_size / batch_size: training-step input (paper: 350 x 350, batch 64).
    train_repeats: timed training steps per path (after one warm-up step).
    infer_images / infer_batch: images through batched inference; loop_images: images through the
        batch-1 reference loop (the rate is per image, so fewer suffice).
    data_images: images per data-pipeline path; data_dir: real C-NMC cells (None: skip those cases).
    latency_batch / latency_shape / timesteps: spike latency coding input (B x C x H x W), T.
    svm_train / svm_test / svm_features: SVM sizes (C-NMC: 12,000 x 100 and 2,586).
    rss: measure peak memory of a training step in a fresh process.
    protocol_cells / protocol_majority / protocol_folds / protocol_epochs: the C-NMC protocol
        estimated (12,528 cells of which 8,491 ALL; 7 folds; 130 epochs).
    gpu_tflops: sustained float32 rate assumed for the GPU estimate (TFLOP/s).
    theta: SDCT-AuxNet-theta confidence threshold (the SVM answers when p_max <= theta).
    sgemm_n: matrix size of the sgemm roofline measurement.
    bundle / serve_cells: the model bundle and the cells of the workstation case (no bundle: skipped).
    device: where the ``gpu`` group runs: "auto" (the first CUDA GPU, else skipped), "cuda", "cuda:N",
        or "cpu" (skipped); the other groups measure this machine's CPU.
    """

    image_size: int = 350
    batch_size: int = 64
    train_repeats: int = 3
    infer_images: int = 256
    infer_batch: int = 64
    loop_images: int = 64
    onnx: bool = True
    data_images: int = 128
    data_dir: Path | None = None
    latency_batch: int = 64
    latency_shape: tuple[int, int, int] = (4, 100, 100)
    timesteps: int = 15
    svm_train: int = 12_000
    svm_test: int = 2_586
    svm_features: int = 100
    rss: bool = True
    protocol_cells: int = 12_528
    protocol_majority: int = 8_491
    protocol_folds: int = 7
    protocol_epochs: int = 130
    gpu_tflops: float = 10.0
    theta: float = 0.9
    sgemm_n: int = 1024
    bundle: Path | None = None
    serve_cells: int = 500
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("image_size", "batch_size", "train_repeats", "infer_images", "infer_batch", "loop_images",
                     "data_images", "latency_batch", "timesteps", "svm_train", "svm_test", "svm_features", "sgemm_n"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {name}={getattr(self, name)}")
        if self.image_size < 33:
            raise ValueError(f"image_size must be >= 33 (four 2x poolings), got image_size={self.image_size}")
        if not 0.0 <= self.theta <= 1.0:
            raise ValueError(f"theta must be in [0, 1], got theta={self.theta}")
        if self.gpu_tflops <= 0:
            raise ValueError(f"gpu_tflops must be > 0, got gpu_tflops={self.gpu_tflops}")

    @classmethod
    def full(cls, **changes) -> BenchConfig:
        return replace(cls(data_dir=default_data_dir()), **changes)

    @classmethod
    def quick(cls, **changes) -> BenchConfig:
        """Under two minutes on 2 quiet cores: the paper's step size, fewer repeats and images."""
        base = cls(data_dir=default_data_dir(), train_repeats=1, infer_images=64, loop_images=16,
                   data_images=32, latency_batch=16, svm_train=3_000, svm_test=2_586, sgemm_n=768)
        return replace(base, **changes)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["data_dir"] = str(self.data_dir) if self.data_dir is not None else None
        d["bundle"] = str(self.bundle) if self.bundle is not None else None
        d["latency_shape"] = list(self.latency_shape)
        return d
