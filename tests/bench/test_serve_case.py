"""The workstation bench case: a real server takes an upload to every cell shown (structure, not timing)."""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi")


def test_serve_case_shows_every_cell(tiny_bundle):
    from blastscope.bench.cells import cell_paths
    from blastscope.bench.config import default_data_dir
    from blastscope.bench.serve import run_serve

    paths = cell_paths(default_data_dir())
    if not paths:
        pytest.skip("C-NMC sample cells not found")
    case = run_serve(tiny_bundle, paths, 23)
    assert case.agreement == {"cells_shown": 23, "ok": True}
    assert case.optimised > 0 and case.reference > 0 and case.unit == "s" and not case.higher_is_better


def test_serve_case_is_skipped_without_a_bundle():
    from blastscope.bench import BenchConfig, run_benchmarks

    result = run_benchmarks(True, config=BenchConfig.quick(sgemm_n=64), only=("serve",))
    (case,) = result["cases"]
    assert case["name"] == "serve_case" and "needs a model bundle" in case["skipped"]


def test_predict_case_agrees_with_the_one_image_one_fold_reference(tiny_bundle):
    from blastscope.bench.case import run_case
    from blastscope.bench.cells import cell_paths
    from blastscope.bench.config import default_data_dir

    paths = cell_paths(default_data_dir())
    if not paths:
        pytest.skip("C-NMC sample cells not found")
    case = run_case(tiny_bundle, paths, 12, threads=1)
    assert case.agreement["ok"] and case.agreement["cells_compared"] > 0
    assert case.optimised > 0 and case.reference > 0 and isinstance(case.met, bool)
    assert case.name == "predict_case" and case.extra["precision"] == "float32"  # auto: the bundle has no int8
    assert "(float32)" in case.title
    forced = run_case(tiny_bundle, paths, 3, threads=1, precision="float32")
    assert forced.name == "predict_case_float32" and forced.extra["precision"] == "float32"


@pytest.mark.parametrize("kind", ["onnx", "torch"])
def test_int8_case_checks_agreement_and_speed(tiny_bundle, kind):
    if kind == "onnx":
        pytest.importorskip("onnxruntime.quantization")
    from blastscope.bench.case import run_int8
    from blastscope.bench.cells import cell_paths
    from blastscope.bench.config import default_data_dir

    paths = cell_paths(default_data_dir())
    if not paths:
        pytest.skip("C-NMC sample cells not found")
    case = run_int8(tiny_bundle, paths, 32, kind=kind)
    assert case.name == f"{kind}_int8" and "fold 1 quantized here, calibrated on 5 other sample cells" in case.notes
    assert case.optimised > 0 and case.reference > 0
    a = case.agreement
    assert 0.0 <= a["label_agreement"] <= 1.0 and 0.0 <= a["answer_agreement"] <= 1.0
    assert a["ok"] == (min(a["label_agreement"], a["answer_agreement"]) >= 0.995 and a["auc_diff"] <= 0.005)
    assert case.met == a["ok"] and ("accepted" if a["ok"] else "rejected") in case.notes


def test_a_bundle_that_fails_verification_is_one_failed_case(tiny_bundle, tmp_path):
    import shutil

    from blastscope.bench import BenchConfig, run_benchmarks
    from blastscope.bench.config import default_data_dir

    if not default_data_dir().is_dir():
        pytest.skip("C-NMC sample cells not found")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    (broken / "bundle.json").write_text("{")
    out = run_benchmarks(True, config=BenchConfig.quick(sgemm_n=64, bundle=broken, serve_cells=4), only=("case",))
    (case,) = out["cases"]
    assert case["name"] == "predict_case" and "the bundle cannot be used" in case["skipped"] and "SHA-256" in case["skipped"]
