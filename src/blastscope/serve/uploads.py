"""Uploaded cells: bounded, judged by their bytes, zips opened without trusting them.

Limits (:class:`Limits`): bytes per file, files and bytes per request, cells per case; a zip may
hold at most ``max_files`` members, no member may be larger than ``max_file_bytes`` once
uncompressed, the members together no more than ``max_request_bytes``, and no member may expand
more than ``max_ratio`` times (a zip bomb is refused before it is inflated: the sizes are read from
the zip's directory and checked again while reading). Every file's format and pixel count are
judged by the toolkit's one decoder from the bytes (:func:`blastscope.data.decode.decode_image`);
a bad file is listed by name with the reason and never stops the others.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

from blastscope.data.decode import IMAGE_SUFFIXES, ImageReadError, decode_image

__all__ = ["Limits", "expand_uploads", "BadUpload"]


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 20 * 1024 * 1024
    max_request_bytes: int = 200 * 1024 * 1024
    max_files: int = 2000
    max_case_cells: int = 5000
    max_ratio: int = 200
    max_pixels: int = 4096 * 4096


@dataclass
class BadUpload:
    name: str
    reason: str


def _name(name: str) -> str:
    """The file name only (no folders, no path tricks)."""
    return PurePosixPath(name.replace("\\", "/")).name or "unnamed"


def _from_zip(name: str, data: bytes, limits: Limits, budget: int) -> tuple[list[tuple[str, bytes]], list[BadUpload]]:
    out, bad = [], []
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as e:
        return [], [BadUpload(name, f"not a readable zip file ({e})")]
    members = [m for m in archive.infolist() if not m.is_dir()]
    if len(members) > limits.max_files:
        return [], [BadUpload(name, f"the zip holds {len(members)} files; at most {limits.max_files} are accepted")]
    declared = sum(m.file_size for m in members)
    if declared > budget:
        return [], [BadUpload(name, f"the zip expands to {declared} bytes; at most {budget} are accepted")]
    for m in members:
        member = f"{name}:{m.filename}"
        if PurePosixPath(m.filename).suffix.lower() not in IMAGE_SUFFIXES:
            bad.append(BadUpload(member, "not an image file name (.bmp, .tif, .jpg, .png)"))
            continue
        if m.file_size > limits.max_file_bytes:
            bad.append(BadUpload(member, f"{m.file_size} bytes uncompressed; the limit is {limits.max_file_bytes}"))
            continue
        if m.compress_size and m.file_size / m.compress_size > limits.max_ratio:
            bad.append(BadUpload(member, f"expands {m.file_size / m.compress_size:.0f} times (a zip bomb?); the limit is {limits.max_ratio}"))
            continue
        try:
            with archive.open(m) as fh:
                content = fh.read(limits.max_file_bytes + 1)  # never trust the directory's sizes
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError) as e:
            bad.append(BadUpload(member, f"cannot be extracted ({e})"))
            continue
        if len(content) > limits.max_file_bytes:
            bad.append(BadUpload(member, f"larger than its zip entry says; the limit is {limits.max_file_bytes} bytes"))
            continue
        out.append((_name(m.filename), content))
    return out, bad


def expand_uploads(files: list[tuple[str, bytes]], limits: Limits, room: int) -> tuple[list[tuple[str, bytes]], list[BadUpload]]:
    """The image files among ``files`` (name, bytes), zips opened, each checked by the decoder.

    ``room``: how many more cells the case may take. Returns (accepted files, bad files with reasons).
    """
    accepted: list[tuple[str, bytes]] = []
    bad: list[BadUpload] = []
    total = sum(len(d) for _, d in files)
    if total > limits.max_request_bytes:
        return [], [BadUpload("(request)", f"{total} bytes uploaded at once; at most {limits.max_request_bytes} per request")]
    if len(files) > limits.max_files:
        return [], [BadUpload("(request)", f"{len(files)} files uploaded at once; at most {limits.max_files} per request")]
    candidates: list[tuple[str, bytes]] = []
    for name, data in files:
        name = _name(name)
        if data[:4] == b"PK\x03\x04" or name.lower().endswith(".zip"):
            inner, why = _from_zip(name, data, limits, limits.max_request_bytes)
            candidates += inner
            bad += why
        elif len(data) > limits.max_file_bytes:
            bad.append(BadUpload(name, f"{len(data)} bytes; the limit is {limits.max_file_bytes} per file"))
        else:
            candidates.append((name, data))
    for name, data in candidates:
        try:
            decode_image(data, name, limits.max_pixels)
        except ImageReadError as e:
            bad.append(BadUpload(name, e.reason))
            continue
        if len(accepted) >= room:
            bad.append(BadUpload(name, f"the case is full: at most {limits.max_case_cells} cells per case"))
            continue
        accepted.append((name, data))
    return accepted, bad
