"""ONNX export of whole fold models (SD + DCT + network): parity with PyTorch on real C-NMC cells."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from blastscope.inference.bundle import load_bundle
from blastscope.inference.onnx_export import OnnxModel

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cnmc-samples" / "labeled"


@pytest.fixture(scope="module")
def real_cells(tiny_bundle) -> np.ndarray:
    from blastscope.data.preprocess import load_preprocessed

    if not SAMPLES.is_dir():
        pytest.skip(f"real C-NMC sample cells not found at {SAMPLES}")
    prep = load_bundle(tiny_bundle, backend="none").preprocess
    return np.stack([load_preprocessed(p, prep) for p in sorted(SAMPLES.glob("*.bmp"))])


def test_log_probs_and_spectral_features_match_pytorch(tiny_bundle, real_cells):
    """Max |log p_onnx - log p_torch| < 1e-4 on the 10 real cells, for every fold model."""
    from blastscope.engine.inference import predict_arrays

    bundle = load_bundle(tiny_bundle, backend="none")
    assert len(real_cells) == 10
    for (model, model_input), onnx in zip(bundle.torch_models(), bundle.onnx_models()):
        logp_t, feats_t = predict_arrays(model, real_cells, batch_size=4, spectral=True, input_fn=model_input)
        logp_o, feats_o = onnx(real_cells)
        assert logp_o.shape == logp_t.shape == (10, 2)
        assert np.abs(logp_o - logp_t).max() < 1e-4
        assert feats_o.shape == feats_t.shape and np.abs(feats_o - feats_t).max() < 1e-4
        side = (64 + 2 - 5) // 2 + 1  # C1: 5x5, stride 2, padding 1; then four 2x2 max-pools
        for _ in range(4):
            side //= 2
        assert onnx.n_spectral == feats_t.shape[1] == side * side


def test_batch_axis_is_dynamic(tiny_bundle, real_cells):
    """Invariant: a cell's output does not depend on the batch it is in."""
    onnx = OnnxModel(tiny_bundle / "model_fold1.onnx", num_classes=2)
    whole, _ = onnx(real_cells)
    single = np.concatenate([onnx(real_cells[i:i + 1])[0] for i in range(len(real_cells))])
    np.testing.assert_allclose(single, whole, atol=1e-5)


def test_graph_signature(tiny_bundle):
    import onnx

    graph = onnx.load(str(tiny_bundle / "model_fold2.onnx")).graph
    assert [i.name for i in graph.input] == ["images"]
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [o.name for o in graph.output] == ["log_probs", "spectral"]
    ops = {n.op_type for n in graph.node}
    assert "MatMul" in ops and "Log" in ops  # matrix-form DCT and the optical density are in the graph


class _NumpyInput:
    """A model input written in NumPy: tracing would freeze it into constants."""

    def fit(self, images):
        return self

    def __call__(self, batch):
        import torch

        return torch.from_numpy((batch.numpy().astype(np.float32) / 255.0).transpose(0, 3, 1, 2).copy())

    def to_arrays(self):
        return {}

    def load_arrays(self, arrays):
        return self


def test_untraceable_model_input_falls_back_to_the_network_alone(tmp_path):
    """The export's parity check catches a frozen input step and exports the network alone instead."""
    import torch

    from blastscope.inference.onnx_export import export_onnx
    from blastscope.models import create_model

    torch.manual_seed(0)
    model = create_model("sd_net").eval()
    assert export_onnx(model, _NumpyInput(), 64, tmp_path / "m.onnx") == "inputs"
    images = np.random.default_rng(1).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    got, spectral = OnnxModel(tmp_path / "m.onnx", 2, model_input=_NumpyInput())(images)
    with torch.inference_mode():
        expected = torch.log_softmax(model(_NumpyInput()(torch.from_numpy(images))), dim=1).numpy()
    assert np.abs(got - expected).max() < 1e-4 and spectral.shape == (4, 1)
    with pytest.raises(Exception, match="needs the fold's model input"):
        OnnxModel(tmp_path / "m.onnx", 2)
