"""``blastscope predict`` on a folder where some files are bad in every way issue 9 lists: the good cells
are predicted, each bad file is listed with its reason (stderr, per-cell CSV, JSON), exit status 0."""
from __future__ import annotations

import json
import shutil
import struct

import pandas as pd
from click.testing import CliRunner

from blastscope.cli import main


def test_predict_folder_with_bad_files(tiny_bundle, cnmc_samples, tmp_path):
    cells = tmp_path / "cells"
    good = sorted(cnmc_samples.glob("*.bmp"))[:3]
    cells.mkdir()
    for src in good:
        shutil.copy(src, cells / src.name)
    real = good[0].read_bytes()
    bad = {
        "UID_90_1_1_all.bmp": (b"", "empty file"),
        "UID_91_1_1_all.bmp": (real[: len(real) // 3], "truncated"),
        "UID_92_1_1_hem.bmp": (b"GIF89a not really\n" * 10, "not a decodable image"),
        "UID_93_1_1_hem.bmp": (b"BM" + struct.pack("<IHHI", 54, 0, 0, 54)
                               + struct.pack("<IiiHHIIiiII", 40, 90_000, 90_000, 1, 24, 0, 0, 0, 0, 0, 0), "exceeds the limit"),
    }
    for name, (content, _) in bad.items():
        (cells / name).write_bytes(content)
    out = tmp_path / "preds.csv"
    result = CliRunner().invoke(main, ["predict", str(tiny_bundle), str(cells), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for name, (_, reason) in bad.items():
        line = next(x for x in result.output.splitlines() if x.startswith(f"skipped {cells / name}:"))
        assert reason in line
    table = pd.read_csv(out, keep_default_na=False).set_index("file")
    assert (table.loc[[str(cells / s.name) for s in good], "status"] == "ok").all()
    assert (table.loc[[str(cells / n) for n in bad], "status"] == "error").all()
    assert table.loc[[str(cells / s.name) for s in good], "pred"].ne("").all()
    listed = {b["file"]: b["reason"] for b in json.loads(out.with_suffix(".json").read_text())["bad_files"]}
    assert set(listed) == {str(cells / n) for n in bad}
