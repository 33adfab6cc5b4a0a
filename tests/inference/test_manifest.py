"""SHA-256 manifest: written over every file, and every deviation refused with the file named."""
from __future__ import annotations

import hashlib
import json

import pytest

from blastscope.inference.manifest import (
    MANIFEST_FILE,
    BundleError,
    verify_manifest,
    write_manifest,
)


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"alpha")
    (tmp_path / "b.json").write_text("{}")
    write_manifest(tmp_path)
    return tmp_path


def test_manifest_hashes_match_hashlib(folder):
    files = json.loads((folder / MANIFEST_FILE).read_text())["files"]
    assert files == {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in ("a.bin", "b.json")}
    assert verify_manifest(folder) == files


def test_changed_missing_extra_files(folder):
    (folder / "a.bin").write_bytes(b"alphb")
    with pytest.raises(BundleError, match=r"a\.bin: SHA-256 mismatch"):
        verify_manifest(folder)
    (folder / "a.bin").unlink()
    with pytest.raises(BundleError, match=r"a\.bin: listed in manifest.json but missing"):
        verify_manifest(folder)
    (folder / "a.bin").write_bytes(b"alpha")
    (folder / "evil.py").write_text("print(1)")
    with pytest.raises(BundleError, match=r"evil\.py: not listed"):
        verify_manifest(folder)


@pytest.mark.parametrize("entry", ["../outside", "/etc/passwd"])
def test_unsafe_names_refused(folder, entry):
    m = json.loads((folder / MANIFEST_FILE).read_text())
    m["files"][entry] = "0" * 64
    (folder / MANIFEST_FILE).write_text(json.dumps(m))
    with pytest.raises(BundleError, match="unsafe"):
        verify_manifest(folder)


def test_broken_or_absent_manifest(folder, tmp_path_factory):
    (folder / MANIFEST_FILE).write_text("not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        verify_manifest(folder)
    with pytest.raises(BundleError, match="manifest missing"):
        verify_manifest(tmp_path_factory.mktemp("empty"))
