"""Checkpoints: safetensors + JSON round trip, clear errors, no pickle."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from blastscope.engine.checkpoint import CheckpointError, load_state, load_weights, save_state, save_weights


def _model():
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))


def test_weights_round_trip_and_format(tmp_path):
    torch.manual_seed(0)
    a, b = _model(), _model()
    save_weights(a, tmp_path / "w.safetensors")
    assert (tmp_path / "w.safetensors").read_bytes()[8:9] == b"{"  # safetensors: 8-byte length then a JSON header
    load_weights(b, tmp_path / "w.safetensors")
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(v, w), k


def test_shape_mismatch_and_garbage(tmp_path):
    save_weights(nn.Linear(4, 3), tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match="has shape"):
        load_weights(nn.Linear(5, 3), tmp_path / "w.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"\x80\x04garbage")
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_weights(nn.Linear(4, 3), tmp_path / "bad.safetensors")


def test_state_round_trip_restores_optimizer_and_rng(tmp_path):
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        loss = model(torch.randn(8, 4)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_state(tmp_path, 1, model, opt, {"history": [1, 2]})
    expected_next = torch.rand(3)
    model2 = _model()
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.1, momentum=0.9)
    meta = load_state(tmp_path, model2, opt2)
    assert meta["epoch"] == 1 and meta["history"] == [1, 2]
    assert torch.equal(torch.rand(3), expected_next)
    for p, q in zip(opt.state_dict()["state"].values(), opt2.state_dict()["state"].values()):
        assert torch.equal(p["momentum_buffer"], q["momentum_buffer"])
    assert load_state(tmp_path / "none", model2, opt2) is None


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_follow_the_umask(tmp_path, mask, mode):
    """Run-folder files are written through a temporary file (mkstemp makes it 0600); the result must
    have the mode any other new file gets under the process umask, like bundles and reports."""
    import os
    import stat

    from blastscope.engine.atomic import atomic_write_json, atomic_write_text

    old = os.umask(mask)
    try:
        atomic_write_text(tmp_path / "a.csv", "x\n")
        atomic_write_json(tmp_path / "b.json", {"a": 1})
    finally:
        os.umask(old)
    for name in ("a.csv", "b.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode
