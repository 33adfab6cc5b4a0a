"""Devices on a machine without a GPU: resolution, clear errors, the autocast path, and CUDA tests
marked ``gpu`` (they run where a GPU is, e.g. scripts/gpu-check.sh)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from blastscope.engine.device import DeviceError, amp_dtype, grad_scaler, model_device, resolve_device

gpu = pytest.mark.gpu  # skipped without CUDA (tests/conftest.py)


def test_resolution_and_errors():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == (torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CPU-only build|no usable GPU"):
            resolve_device("cuda")
    with pytest.raises(DeviceError, match="auto, cpu, cuda"):
        resolve_device("tpu")
    assert amp_dtype(torch.device("cpu"), "auto") is None and amp_dtype(torch.device("cpu"), "off") is None
    assert amp_dtype(torch.device("cpu"), "bf16") is torch.bfloat16
    with pytest.raises(DeviceError, match="fp16 needs a CUDA"):
        amp_dtype(torch.device("cpu"), "fp16")
    assert grad_scaler(torch.device("cpu"), torch.bfloat16) is None


def test_config_and_cli_refuse_a_device_that_is_not_there(tiny_synthetic, tmp_path):
    from click.testing import CliRunner

    from blastscope.cli import main
    from blastscope.config import ConfigError, resolve_config

    with pytest.raises(ConfigError, match="train.device"):
        resolve_config("sd_net", "quick", ["train.device=gpu0"])
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = CliRunner().invoke(main, ["cv", "sd_net", "--profile", "quick", "--data", str(tiny_synthetic), "--out", str(tmp_path / "r"),
                                  "--device", "cuda"])
    assert r.exit_code == 2 and "device 'cuda' was asked for" in r.output and not (tmp_path / "r").exists()


def _tiny_fit(tmp_path, amp: str, device: str = "cpu", deterministic: bool = False, name: str | None = None):
    from blastscope.config import TrainConfig
    from blastscope.engine.trainer import fit
    from blastscope.models import create_model

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (48, 64, 64, 3), dtype=np.uint8)
    x[::2, :32] //= 2  # class 1: a darker top half
    y = (np.arange(48) % 2 == 0).astype(np.int64)
    torch.manual_seed(0)
    model = create_model("sd_net", num_classes=2)
    cfg = TrainConfig(epochs=2, batch_size=16, device=device, amp=amp, deterministic=deterministic)
    fit(model, x[:32], y[:32], x[32:], y[32:], cfg, tmp_path / (name or amp))
    return model, x


def test_cpu_bf16_autocast_trains_and_agrees_with_float32(tmp_path):
    from blastscope.engine.inference import predict_arrays

    m32, x = _tiny_fit(tmp_path, "off")
    m16, _ = _tiny_fit(tmp_path, "bf16")
    p32 = predict_arrays(m32, x)[0]
    p16 = predict_arrays(m16, x)[0]
    assert np.isfinite(p16).all() and model_device(m16).type == "cpu"
    assert (p32.argmax(1) == p16.argmax(1)).mean() >= 0.8  # bf16 training changes numbers, not the model


@gpu
def test_cuda_training_and_cpu_prediction_of_the_same_weights(tmp_path):
    from blastscope.engine.checkpoint import load_weights
    from blastscope.engine.inference import predict_arrays
    from blastscope.models import create_model

    model, x = _tiny_fit(tmp_path, "auto", device="cuda")
    assert model_device(model).type == "cuda"
    on_gpu = predict_arrays(model, x)[0]
    cpu = create_model("sd_net", num_classes=2)
    load_weights(cpu, tmp_path / "auto" / "best.safetensors")
    on_cpu = predict_arrays(cpu.eval(), x)[0]
    assert (on_gpu.argmax(1) == on_cpu.argmax(1)).mean() >= 0.95


def _same_weights(a, b) -> bool:
    from safetensors.torch import load_file

    wa, wb = load_file(str(a / "best.safetensors")), load_file(str(b / "best.safetensors"))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_seeded_deterministic_run_repeats_exactly_on_the_cpu(tmp_path):
    _tiny_fit(tmp_path, "off", deterministic=True, name="a")
    _tiny_fit(tmp_path, "off", deterministic=True, name="b")
    assert _same_weights(tmp_path / "a", tmp_path / "b")


@gpu
def test_a_seeded_deterministic_run_repeats_exactly_on_the_same_gpu(tmp_path):
    _tiny_fit(tmp_path, "off", device="cuda", deterministic=True, name="a")
    _tiny_fit(tmp_path, "off", device="cuda", deterministic=True, name="b")
    assert _same_weights(tmp_path / "a", tmp_path / "b")


@gpu
def test_gpu_and_cpu_training_end_close(tmp_path):
    """float32 on both, the same seed and batches: cuDNN's kernels round differently, so the weights
    differ a little; the predictions of the two models must still agree."""
    from blastscope.engine.inference import predict_arrays

    gpu_model, x = _tiny_fit(tmp_path, "off", device="cuda", deterministic=True, name="gpu")
    cpu_model, _ = _tiny_fit(tmp_path, "off", device="cpu", deterministic=True, name="cpu")
    a, b = predict_arrays(gpu_model, x)[0], predict_arrays(cpu_model, x)[0]
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.9


def test_a_run_trained_on_a_gpu_exports_and_predicts_on_a_cpu(tiny_run, tmp_path, cnmc_samples):
    """A run folder whose config says train.device cuda (trained on a GPU) exports and predicts here:
    weights are stored as CPU float32 whatever device trained them, and export runs no device."""
    import shutil

    from blastscope.inference.export import export_bundle
    from blastscope.inference.predictor import Predictor

    run = tmp_path / "gpu-run"
    shutil.copytree(tiny_run, run)
    config = (run / "config.yaml").read_text()
    assert "device: auto" in config
    (run / "config.yaml").write_text(config.replace("device: auto", "device: cuda"))
    bundle = export_bundle(run, tmp_path / "bundle")
    result = Predictor(bundle).predict_files(sorted(cnmc_samples.glob("*.bmp"))[:3])
    assert (result.cells["status"] == "ok").all()


def test_loader_workers_auto_is_none_on_the_cpu_and_some_on_a_gpu(monkeypatch):
    import os

    from blastscope.config import ConfigError, TrainConfig
    from blastscope.engine.trainer import loader_workers

    assert TrainConfig().num_workers == "auto"
    assert loader_workers("auto", torch.device("cpu")) == 0 and loader_workers(3, torch.device("cpu")) == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(16)))
    assert loader_workers("auto", torch.device("cuda", 0)) == 8
    assert loader_workers("auto", torch.device("cuda", 0), world=4) == 3  # 16 cores shared by 4 GPU processes
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    assert loader_workers("auto", torch.device("cuda", 0)) == 0
    import multiprocessing

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(16)))
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda allow_none=False: "spawn")
    assert loader_workers("auto", torch.device("cuda", 0)) == 0  # spawned workers would copy the images every epoch
    for bad in (-1, "many", True, 1.5):
        with pytest.raises(ConfigError, match="train.num_workers must be auto or an integer"):
            TrainConfig(num_workers=bad)


def test_loader_workers_do_not_change_the_weights(tmp_path):
    """Each sample's augmentation is seeded by its epoch position, so 2 worker processes give the
    weights of none."""
    from blastscope.config import TrainConfig
    from blastscope.engine.trainer import fit
    from blastscope.models import create_model
    from blastscope.transforms.sdct_augment import sdct_train_transform

    rng = np.random.default_rng(1)
    x = rng.integers(0, 255, (24, 40, 40, 3), dtype=np.uint8)
    y = np.arange(24) % 2
    for workers in (0, 2):
        torch.manual_seed(0)
        model = create_model("sd_net", num_classes=2)
        fit(model, x[:16], y[:16], x[16:], y[16:], TrainConfig(epochs=1, batch_size=8, device="cpu", num_workers=workers),
            tmp_path / f"w{workers}", transform=sdct_train_transform())
    assert _same_weights(tmp_path / "w0", tmp_path / "w2")
