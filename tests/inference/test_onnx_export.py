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
    """SDCT models export the optical-density graph: float OD input, the table and fold order in metadata."""
    import json

    import onnx
    import torch

    from blastscope.ops.dct import fold_order
    from blastscope.ops.optical_density import optical_density

    graph = onnx.load(str(tiny_bundle / "model_fold2.onnx"))
    assert [i.name for i in graph.graph.input] == ["optical_density"]
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [o.name for o in graph.graph.output] == ["log_probs", "spectral"]
    ops = {n.op_type for n in graph.graph.node}
    assert "MatMul" in ops and "Log" in ops and "Tanh" in ops  # stain mixing, matrix-form DCT, log magnitude
    meta = json.loads({p.key: p.value for p in graph.metadata_props}["blastscope.pixels"])
    expected = optical_density(torch.arange(256, dtype=torch.float32) / 255.0)
    np.testing.assert_array_equal(np.float32(meta["table"]), expected.numpy())
    assert meta["table"][0] == 0.0 and meta["rows"] == meta["cols"] == fold_order(64).tolist()


def _export_both(tmp_path, name: str, size: int = 64):
    import torch

    from blastscope.engine.inputs import RGBInput
    from blastscope.inference.onnx_export import export_onnx
    from blastscope.models import create_model

    torch.manual_seed(0)
    model = create_model(name).eval()
    kinds = [export_onnx(model, RGBInput(), size, tmp_path / f"{name}_{pixels}.onnx", pixels=pixels) for pixels in (True, False)]
    return model, kinds, tmp_path / f"{name}_True.onnx", tmp_path / f"{name}_False.onnx"


@pytest.mark.parametrize("name", ["sdct_net", "sd_net", "leukonet_stage2"])
def test_optical_density_graph_equals_the_plain_graph_and_pytorch(tmp_path, name):
    """Every model with a leading SD layer gets the OD graph; the DCT gets folded pixels only where it is
    SDCT-Net's DCT layer; the plain uint8 graph (old bundles) still loads and agrees; so do the two ways of
    using threads, on a batch that does not split evenly into chunks."""
    import json

    import onnx
    import torch

    from blastscope.engine.inference import predict_arrays

    model, kinds, od_path, plain_path = _export_both(tmp_path, name)
    assert kinds == ["optical_density", "images"]
    rows = json.loads({p.key: p.value for p in onnx.load(str(od_path)).metadata_props}["blastscope.pixels"])["rows"]
    assert (rows is not None) == (name == "sdct_net")
    images = np.random.default_rng(3).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    images[:, :9] = 0  # black background, OD 0
    with torch.inference_mode():
        expected, features = predict_arrays(model, images, 8, spectral=True)
    runs = [OnnxModel(od_path, 2, threads=2), OnnxModel(od_path, 2, threads=2, side_by_side=False),
            OnnxModel(od_path, 2, threads=1), OnnxModel(plain_path, 2, threads=2)]
    assert [len(m.sessions) for m in runs] == [2, 1, 1, 2]
    for onnx_model in runs:
        logp, spectral = onnx_model(images)
        assert np.abs(logp - expected).max() < 1e-4 and np.abs(spectral - features).max() < 1e-4


def test_optical_density_graph_refuses_other_sizes_and_bad_metadata(tmp_path):
    import onnx

    from blastscope.inference.manifest import BundleError

    _, _, od_path, _ = _export_both(tmp_path, "sdct_net")
    with pytest.raises(ValueError, match=r"od_path|sdct_net_True.onnx: the graph was exported for 64 px images, got 32x32"):
        OnnxModel(od_path, 2)(np.zeros((1, 32, 32, 3), np.uint8))
    graph = onnx.load(str(od_path))
    for prop in graph.metadata_props:
        if prop.key == "blastscope.pixels":
            prop.value = '{"table": [0.5], "rows": null, "cols": null}'
    onnx.save(graph, str(tmp_path / "bad.onnx"))
    with pytest.raises(BundleError, match=r"bad.onnx: 'blastscope.pixels' must hold 256 finite optical densities"):
        OnnxModel(tmp_path / "bad.onnx", 2)
    del graph.metadata_props[:]
    onnx.save(graph, str(tmp_path / "none.onnx"))
    with pytest.raises(BundleError, match=r"none.onnx: an optical_density graph without a valid 'blastscope.pixels'"):
        OnnxModel(tmp_path / "none.onnx", 2)


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


def test_the_onnx_backend_runs_on_the_cpu_only(tiny_bundle):
    from blastscope.inference.predictor import Predictor

    assert Predictor(tiny_bundle, backend="onnx", device="auto").device == "cpu"
    with pytest.raises(ValueError, match="the onnx backend runs on the CPU; --device cuda needs --backend torch"):
        Predictor(tiny_bundle, backend="onnx", device="cuda")
