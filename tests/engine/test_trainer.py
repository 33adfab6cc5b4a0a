"""The training loop: learning, best checkpoint, and resume equal to an uninterrupted run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import blastscope.engine.trainer as trainer_mod
from blastscope.config import TrainConfig
from blastscope.engine.trainer import fit
from blastscope.models import create_model


def _data(n=24, size=64, seed=0):
    """Two classes that differ in brightness: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    images = rng.integers(0, 60, (n, size, size, 3)).astype(np.uint8) + (y[:, None, None, None] * 120).astype(np.uint8)
    return images, y


def _cfg(**kw):
    base = dict(epochs=3, batch_size=8, eval_batch_size=16, optimizer={"name": "sgd", "lr": 0.05}, schedule={"name": "step", "milestones": [2]})
    base.update(kw)
    from blastscope.config import _build

    return _build(TrainConfig, base, "train")


def test_fit_learns_and_keeps_best(tmp_path):
    torch.manual_seed(0)
    images, y = _data()
    model = create_model("sd_net", num_classes=2)
    result = fit(model, images, y, images, y, _cfg(epochs=4), tmp_path)
    assert len(result.history) == 4
    assert result.best_val_accuracy == max(h["val_accuracy"] for h in result.history)
    assert (tmp_path / "best.safetensors").exists() and (tmp_path / "fit.json").exists()
    assert not list(tmp_path.glob("state-*.safetensors"))  # resume state cleaned up when done
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_resume_after_interruption_matches_uninterrupted(tmp_path, monkeypatch):
    images, y = _data()
    cfg = _cfg(epochs=3)
    torch.manual_seed(0)
    full = create_model("base_network", num_classes=2)
    fit(full, images, y, images[:8], y[:8], cfg, tmp_path / "full")

    # Interrupt: the third epoch's checkpoint write "crashes" (as a kill would), leaving epoch 2's state.
    calls = {"n": 0}
    real_save_state = trainer_mod.save_state

    def crashing_save_state(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_save_state(*args, **kwargs)

    monkeypatch.setattr(trainer_mod, "save_state", crashing_save_state)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        fit(create_model("base_network", num_classes=2), images, y, images[:8], y[:8], cfg, tmp_path / "resumed")
    assert json.loads((tmp_path / "resumed" / "state.json").read_text())["epoch"] == 1
    monkeypatch.setattr(trainer_mod, "save_state", real_save_state)
    torch.manual_seed(123)  # a different global seed: resume must not depend on it
    resumed = create_model("base_network", num_classes=2)
    result = fit(resumed, images, y, images[:8], y[:8], cfg, tmp_path / "resumed")
    assert len(result.history) == 3
    full_hist = json.loads((tmp_path / "full" / "fit.json").read_text())["history"]
    assert [h["train_loss"] for h in result.history] == pytest.approx([h["train_loss"] for h in full_hist], abs=1e-6)
    for (k, v), (_, w) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(v.float(), w.float(), atol=1e-6), k


def test_finished_fit_is_not_retrained(tmp_path, monkeypatch):
    images, y = _data()
    torch.manual_seed(0)
    model = create_model("base_network", num_classes=2)
    fit(model, images, y, images, y, _cfg(epochs=1), tmp_path)
    monkeypatch.setattr(trainer_mod, "build_optimizer", lambda *a: (_ for _ in ()).throw(AssertionError("retrained")))
    again = create_model("base_network", num_classes=2)
    fit(again, images, y, images, y, _cfg(epochs=1), tmp_path)
    for (k, v), (_, w) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(v, w), k


@pytest.mark.parametrize("monitor", ["val_accuracy", "val_loss"])
def test_plateau_schedule_watches_the_configured_validation_metric(tmp_path, monkeypatch, monitor):
    """Spike-PCA-ResNet's Algorithm 2 reduces the learning rate when the VALIDATION ACCURACY stops
    improving: with ``monitor: val_accuracy`` the plateau scheduler is stepped with each epoch's
    accuracy in "max" mode; with ``val_loss`` with the loss in "min" mode."""
    seen = []
    real_step = torch.optim.lr_scheduler.ReduceLROnPlateau.step

    def step(self, metric, *args, **kwargs):
        seen.append((self.mode, float(metric)))
        return real_step(self, metric, *args, **kwargs)

    monkeypatch.setattr(torch.optim.lr_scheduler.ReduceLROnPlateau, "step", step)
    torch.manual_seed(0)
    images, y = _data()
    cfg = _cfg(epochs=3, optimizer={"name": "adam", "lr": 1e-3, "weight_decay": 0.0},
               schedule={"name": "plateau", "factor": 0.3, "patience": 5, "monitor": monitor})
    result = fit(create_model("sd_net", num_classes=2), images, y, images, y, cfg, tmp_path)
    expected = [h[monitor] for h in result.history]
    assert [m for _, m in seen] == pytest.approx(expected)
    assert {mode for mode, _ in seen} == {"max" if monitor == "val_accuracy" else "min"}
