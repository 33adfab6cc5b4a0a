"""The text of a small CSV the toolkit reads (labels, subject ids), refused when it holds a NUL byte.

Python's csv module (3.11+) passes NUL bytes through, so a NUL in a file name became an
``embedded null byte`` traceback deep in ``os.stat``, and in a subject id an invisible part of the
id. A NUL means binary data or a damaged file: the error names the CSV and the line.
"""
from __future__ import annotations

import io
from pathlib import Path

__all__ = ["CsvTextError", "csv_text"]


class CsvTextError(ValueError):
    """A CSV that is not text; the message names the file and the line."""


def csv_text(path: Path | str) -> io.StringIO:
    """``path`` decoded as UTF-8 (a BOM is dropped), ready for :class:`csv.DictReader`.

    Raises:
        CsvTextError: on a NUL byte (naming the line) or bytes that are not UTF-8.
        OSError: when the file cannot be read.
    """
    with open(path, encoding="utf-8-sig", newline="") as fh:
        try:
            text = fh.read()
        except UnicodeDecodeError as e:
            raise CsvTextError(f"{path}: not a UTF-8 text file ({e})") from None
    nul = text.find("\0")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise CsvTextError(f"{path}, line {line}: a NUL byte (binary data, not a CSV text file)")
    return io.StringIO(text, newline="")
