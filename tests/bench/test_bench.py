"""Tests for blastscope.bench: result structure and agreement of optimised and reference paths.

Timing is never asserted: the figures depend on the machine and its load.
"""
from pathlib import Path

import pytest
import torch

from blastscope.bench import BenchConfig, run_benchmarks
from blastscope.bench.flops import count_flops
from blastscope.bench.protocol import protocol_images
from blastscope.bench.reference import reference_from
from blastscope.models import create_model

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cnmc-samples" / "labeled"
EXPECTED = {"train_step", "train_roofline", "dct_share", "inference_batched", "inference_onnx", "data_pipeline",
            "data_wait", "latency", "svm_fit", "svm_predict", "protocol_cpu", "protocol_gpu"}


def _tiny(data_dir) -> BenchConfig:
    return BenchConfig(image_size=40, batch_size=4, train_repeats=1, infer_images=6, infer_batch=4, loop_images=3,
                       data_images=2, data_dir=data_dir, latency_batch=2, latency_shape=(2, 12, 12), timesteps=5,
                       svm_train=60, svm_test=20, svm_features=10, rss=False, sgemm_n=64)


@pytest.fixture(scope="module")
def result():
    if not DATA.is_dir():
        pytest.skip(f"C-NMC sample cells not found at {DATA}")
    return run_benchmarks(quick=True, config=_tiny(DATA))


def test_result_structure_and_every_case_present(result):
    assert set(result) >= {"machine", "config", "sgemm_gflops", "cases", "seconds", "load_average"}
    assert result["sgemm_gflops"] > 0 and result["machine"]["cores"] >= 1
    names = {c["name"] for c in result["cases"]}
    assert EXPECTED <= names
    for c in result["cases"]:
        if c["name"] in ("serve_case", "predict_case"):  # need a trained bundle (tests/bench/test_serve_case.py runs them)
            assert "needs a model bundle" in c["skipped"]
            continue
        if c["name"] == "gpu" and not torch.cuda.is_available():  # tests/bench/test_gpu_cases.py runs them on the CPU
            assert c["skipped"].startswith("no CUDA GPU")
            continue
        assert c["skipped"] is None, (c["name"], c["skipped"])
        assert c["optimised"] is not None and c["optimised"] > 0
        if c["reference"] is not None:
            expected = c["optimised"] / c["reference"] if c["higher_is_better"] else c["reference"] / c["optimised"]
            assert c["ratio"] == pytest.approx(expected)
        if c["target"]:
            assert isinstance(c["met"], bool)


def test_optimised_and_reference_paths_agree(result):
    """Every case that compares outputs reports agreement within its stated tolerance."""
    checked = [c for c in result["cases"] if c["agreement"] is not None]
    assert {c["name"] for c in checked} >= {"train_step", "inference_batched", "inference_onnx", "data_pipeline",
                                            "latency", "svm_predict"}
    for c in checked:
        assert c["agreement"]["ok"], (c["name"], c["agreement"])


def test_missing_cells_skip_the_data_cases_with_a_clear_reason(tmp_path):
    cfg = _tiny(tmp_path / "missing")
    from dataclasses import replace

    cfg = replace(cfg, onnx=False)
    out = run_benchmarks(quick=True, config=cfg)
    skipped = {c["name"]: c["skipped"] for c in out["cases"] if c["skipped"]}
    no_gpu = set() if torch.cuda.is_available() else {"gpu"}
    assert set(skipped) == {"data_pipeline", "data_wait", "inference_onnx", "predict_case", "serve_case"} | no_gpu  # no int8 case
    assert "not found" in skipped["data_pipeline"] and str(tmp_path / "missing") in skipped["data_pipeline"]


def test_flop_count_matches_table_3_shapes_at_350():
    """Conv FLOPs from the paper's Table 3 sizes (350 -> 174 -> 87 -> 43 -> 21 -> 10), by hand."""
    convs = [(3, 16, 5, 174), (16, 16, 3, 174), (16, 32, 3, 87), (32, 48, 3, 43), (48, 64, 3, 21), (64, 64, 3, 10)]
    conv = sum(2 * cout * hw * hw * cin * k * k for cin, cout, k, hw in convs)
    count = count_flops(create_model("sdct_net"), (3, 350, 350))
    assert count.forward["conv"] == conv
    assert count.forward["dct"] == 3 * 2 * 2 * 350**3
    assert count.forward["bilinear"] == 2 * 64 * 64 * 100 and count.forward["linear"] == 2 * 4096 * 2
    # training: every conv's input needs a gradient (the SD layer before it is trainable)
    assert count.backward["conv"] == 2 * conv and count.backward["dct"] == count.forward["dct"]
    base = count_flops(create_model("base_network"), (3, 350, 350))
    first = 2 * 16 * 174 * 174 * 3 * 25
    assert base.backward["conv"] == 2 * conv - first  # the image needs no gradient


def test_protocol_image_counts():
    """7 folds: 8,491 * 6 // 7 = 7,278 ALL per training part, balanced to 14,556, 227 batches of 64."""
    train, val = protocol_images(BenchConfig(), 64)
    assert train == 7 * 130 * 227 * 64
    assert val == 130 * 12_528


def test_reference_model_computes_the_library_model():
    torch.manual_seed(0)
    model = create_model("sdct_net")
    ref = reference_from(model, 40)
    x = torch.rand(2, 3, 40, 40)
    x[:, :, :4] = 0
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-5, rtol=1e-4)


def test_cli_table_formats_a_result(result):
    from rich.console import Console

    from blastscope.cli.bench import _table

    console = Console(record=True, width=200)
    console.print(_table(result))
    text = console.export_text()
    assert "SDCT-Net training step" in text and "img/s" in text and "x" in text


@pytest.mark.parametrize("path", ["optimised", "reference"])
def test_memory_measure_reports_peak_above_baseline(path):
    from blastscope.bench.memory import measure

    out = measure(path, 40, 2)
    assert out["path"] == path and out["peak_gb"] >= out["baseline_gb"] > 0


def test_only_runs_the_selected_groups(tmp_path):
    cfg = _tiny(tmp_path / "missing")
    out = run_benchmarks(quick=True, config=cfg, only=("svm", "latency"))
    assert {c["name"] for c in out["cases"]} == {"svm_fit", "svm_predict", "latency"}
    assert out["groups"] == ["latency", "svm"]
    with pytest.raises(ValueError, match="unknown benchmark group"):
        run_benchmarks(quick=True, config=cfg, only=("svm", "tpu"))


def test_cli_only_and_json_file(tmp_path):
    import json

    from click.testing import CliRunner

    from blastscope.cli import main

    target = tmp_path / "out" / "bench.json"
    res = CliRunner().invoke(main, ["bench", "--quick", "--only", "svm", "--json", str(target)])
    assert res.exit_code == 0, res.output
    written = json.loads(target.read_text())
    assert {c["name"] for c in written["cases"]} == {"svm_fit", "svm_predict"}
    assert "Auxiliary SVM predict" in res.output
    bad = CliRunner().invoke(main, ["bench", "--only", "tpu"])
    assert bad.exit_code == 2 and "tpu" in bad.output
