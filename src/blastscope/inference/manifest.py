"""SHA-256 manifest of a bundle directory: write it, and verify it before anything is parsed.

``manifest.json`` lists every other file of the bundle with its SHA-256. Verification refuses
missing files, files the manifest does not list, changed files (including weights swapped
between folds: each name has its own hash), names that escape the directory, and a manifest that
is not the expected JSON. It detects corruption and edits that leave the manifest untouched; it
is not a signature (someone who rewrites the manifest too is caught only by the loader's format
checks, and the loader never executes anything: it parses JSON and safetensors only).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

__all__ = ["MANIFEST_FILE", "BundleError", "sha256_file", "write_manifest", "verify_manifest"]

MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA = 1


class BundleError(ValueError):
    """A bundle that cannot be trusted or used; the message names the file and the reason."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink())


def write_manifest(root: Path) -> dict:
    """Hash every file under ``root`` (except the manifest) into ``root/manifest.json``."""
    from blastscope.engine.atomic import atomic_write_json

    root = Path(root)
    files = {name: sha256_file(root / name) for name in _files(root) if name != MANIFEST_FILE}
    manifest = {"manifest_schema": MANIFEST_SCHEMA, "algorithm": "sha256", "files": files}
    atomic_write_json(root / MANIFEST_FILE, manifest)
    return manifest


def verify_manifest(root: Path) -> dict[str, str]:
    """Check ``root`` against its manifest; returns ``{file name: sha256}`` of the verified files.

    Raises:
        BundleError: naming the first offending file (missing, unexpected, changed, unsafe name,
            symbolic link) or the manifest itself (absent, not JSON, wrong layout).
    """
    root = Path(root)
    if not root.is_dir():
        raise BundleError(f"{root}: bundle directory not found")
    mpath = root / MANIFEST_FILE
    if not mpath.is_file():
        raise BundleError(f"{mpath}: manifest missing; not a blastscope bundle (or an incomplete copy)")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{mpath}: not valid JSON ({e})") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if (not isinstance(files, dict) or manifest.get("algorithm") != "sha256"
            or manifest.get("manifest_schema") != MANIFEST_SCHEMA):
        raise BundleError(f"{mpath}: unexpected manifest layout (need manifest_schema {MANIFEST_SCHEMA}, "
                          "algorithm sha256 and a files mapping)")
    for name, digest in files.items():
        parts = Path(name).parts
        if not isinstance(digest, str) or Path(name).is_absolute() or ".." in parts or not parts:
            raise BundleError(f"{mpath}: unsafe or malformed entry {name!r}")
    present = set(_files(root)) - {MANIFEST_FILE}
    for name in sorted(set(files) - present):
        raise BundleError(f"{root / name}: listed in {MANIFEST_FILE} but missing")
    for name in sorted(present - set(files)):
        raise BundleError(f"{root / name}: not listed in {MANIFEST_FILE} (unexpected file; remove it or re-export)")
    for name in sorted(files):
        path = root / name
        if path.is_symlink():
            raise BundleError(f"{path}: symbolic links are not allowed in a bundle")
        actual = sha256_file(path)
        if actual != files[name]:
            raise BundleError(f"{path}: SHA-256 mismatch (the file was changed, damaged or swapped with another); "
                              f"expected {files[name][:16]}..., found {actual[:16]}...")
    return dict(files)
