"""The HTML report of a real (tiny) run: tables, embedded figures, no torch, headless Chromium."""
from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from blastscope.reports.html import build_report


@pytest.fixture(scope="module")
def report(tiny_run, tmp_path_factory) -> Path:
    from blastscope.engine.artefacts import write_report_artefacts

    run = Path(shutil.copytree(tiny_run, tmp_path_factory.mktemp("report_run") / "run", ignore=shutil.ignore_patterns("cache")))
    write_report_artefacts(run)
    return build_report(run)


def _data_uris(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)]


def test_report_has_its_sections_tables_and_figures(report):
    text = report.read_text()
    assert report.name == "report.html" and report.parent.name == "report"
    for anchor in ("config", "data", "tables", "folds", "curves", "roc", "confusion", "theta", "subjects", "dct", "maps", "features"):
        assert f'id="{anchor}"' in text
    for table_text in ("Weighted F1 (WF1)", "Majority vote", "Table 5", "Table 8", "Subjects / cells per class",
                       "selection acc", "inner (training subjects)", "recipe: sdct_auxnet"):
        assert table_text in text
    assert "Subject-level evaluation" in text and "IMAGE-LEVEL" not in text
    assert "Table 6" in text and "SDCT-AuxNet score" in text and "Platt-scaled" in text
    assert "made on inner training subjects" in text and "UNFINISHED" not in text
    assert "SYNTHETIC cells" in text and "scikit-learn" in text and "index sha256" in text
    assert "Model activations are not available" not in text  # artefacts were computed
    assert "<script" not in text and 'src="http' not in text  # self-contained, nothing fetched


def test_every_embedded_png_decodes_and_is_saved(report):
    pngs = _data_uris(report.read_text())
    files = sorted((report.parent / "figures").glob("*.png"))
    assert len(pngs) == len(files) >= 12
    saved = {f.read_bytes() for f in files}
    for png in pngs:
        assert png in saved
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[0] > 200 and image.shape[1] > 300
        assert image.std() > 5  # not a blank canvas


def test_data_summary_counts_match_folds_csv(report):
    """The data table's 'subjects / cells' per class and fold equal an independent groupby of folds.csv."""
    text = report.read_text()
    folds = pd.read_csv(report.parent.parent / "folds.csv", keep_default_na=False, dtype={"subject_id": str})
    for k, g in folds[folds["fold"] >= 0].groupby("fold"):
        cells = [f"{g[g.label == c].subject_id.nunique()} / {(g.label == c).sum()}" for c in ("hem", "all")]
        row = re.search(rf"<td class=\"\">fold {k + 1} \(validation fold of Model{k + 1}\)</td>(.*?)</tr>", text).group(1)
        assert re.findall(r">([^<]*)</td>", row)[:2] == cells


def test_reports_never_import_torch(tiny_run, tmp_path):
    code = ("import sys; from blastscope.reports.html import build_report; "
            f"build_report({str(tiny_run)!r}, {str(tmp_path / 'r')!r}); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def _screenshot(exe: str, page: Path, tmp_path: Path) -> np.ndarray:
    png = tmp_path / f"{page.stem}.png"
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}", "--window-size=1280,2000", page.as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120)
    image = cv2.imread(str(png), cv2.IMREAD_COLOR)
    assert image is not None, f"Chromium wrote no screenshot of {page}"
    return image


def test_renders_in_headless_chromium(report, tmp_path):
    """The page renders its tables; its embedded PNGs decode and paint in a real browser."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); needed for the headless render test")
    top = _screenshot(exe, report, tmp_path)
    assert top.shape == (2000, 1280, 3)
    assert (top < 128).mean() > 0.01 and top.std() > 20  # text and table rules drawn, not a blank page
    text = report.read_text()
    figures = re.findall(r"<figure>.*?</figure>", text, flags=re.DOTALL)
    page = tmp_path / "figures_only.html"  # the report's own <figure> elements, so they are in the viewport
    page.write_text(text[:text.index("<body>") + 6] + "".join(figures[:6]) + "</body></html>")
    shot = _screenshot(exe, page, tmp_path)
    colours = {tuple(c) for c in shot.reshape(-1, 3)[::7]}
    assert len(colours) > 200 and (shot < 200).mean() > 0.02  # plots painted, not empty image boxes


def test_unfinished_run_has_a_banner_naming_the_folds(tiny_run, tmp_path):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run", ignore=shutil.ignore_patterns("cache", "artefacts", "report")))
    (run / "arms" / "sdct_auxnet" / "fold_2" / "fold.json").unlink()
    text = build_report(run).read_text()
    assert "UNFINISHED RUN: 1 arm folds have not finished (sdct_auxnet fold 2)" in text
