"""Model and state files from elsewhere: loading never unpickles, and every error names the file.

The pickle payloads here create a marker file when unpickled; each test first proves the payload
is live (``pickle.loads`` does create the marker), then that blastscope's loaders never run it.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from blastscope.engine.checkpoint import CheckpointError, load_state, load_weights, save_state, save_weights


class _Payload:
    """Unpickling this opens ``marker`` for writing, i.e. runs code chosen by whoever wrote the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "payload_ran"


def _live(data: bytes, marker: Path) -> None:
    pickle.loads(data)
    assert marker.exists(), "the payload must be live for the test to mean anything"
    marker.unlink()


def test_pickled_weights_are_refused_without_running_them(tmp_path, marker):
    data = pickle.dumps({"0.weight": _Payload(marker)})
    _live(data, marker)
    path = tmp_path / "best.safetensors"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=str(path)):
        load_weights(_model(), path)
    assert not marker.exists()


def test_torch_save_file_is_refused_without_running_it(tmp_path, marker):
    path = tmp_path / "best.safetensors"
    torch.save({"0.weight": _Payload(marker)}, path)  # a zip archive holding a pickle, as torch writes it
    with pytest.raises(CheckpointError, match=str(path)):
        load_weights(_model(), path)
    assert not marker.exists()


def test_pickled_training_state_is_refused_without_running_it(tmp_path, marker):
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    save_state(tmp_path, 0, model, optimizer, {"history": []})
    name = json.loads((tmp_path / "state.json").read_text())["tensors"]
    (tmp_path / name).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointError, match=f"{tmp_path}.*unreadable"):
        load_state(tmp_path, _model(), torch.optim.SGD(_model().parameters(), lr=0.1))
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["half", "json", "empty", "missing"])
def test_damaged_weights_name_the_file(tmp_path, damage):
    path = tmp_path / "w" / "best.safetensors"
    save_weights(_model(), path)
    data = path.read_bytes()
    if damage == "half":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "json":
        path.write_text('{"0.weight": [1, 2, 3]}')
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
    with pytest.raises(CheckpointError) as err:
        load_weights(_model(), path)
    assert str(path) in str(err.value)


def test_weights_of_another_model_name_the_file_and_the_tensor(tmp_path):
    path = tmp_path / "best.safetensors"
    save_weights(nn.Sequential(nn.Conv2d(3, 5, 3), nn.BatchNorm2d(5)), path)
    with pytest.raises(CheckpointError, match=rf"{path}: tensor '0\.(weight|bias)' has shape \(5[,)].*the model expects \(4[,)]"):
        load_weights(_model(), path)


@pytest.mark.parametrize("state_json", ["{not json", '{"epoch": 0}', '{"epoch": 0, "tensors": "../../etc/passwd"}'])
def test_damaged_state_names_the_folder(tmp_path, state_json):
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    save_state(tmp_path, 0, model, optimizer, {"history": []})
    (tmp_path / "state.json").write_text(state_json)
    with pytest.raises(CheckpointError, match=f"{tmp_path}: training state is unreadable"):
        load_state(tmp_path, _model(), torch.optim.SGD(_model().parameters(), lr=0.1))
