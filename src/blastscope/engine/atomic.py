"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "atomic_write_bytes", "atomic_write_csv",
           "read_safe_csv", "spreadsheet_safe", "spreadsheet_restore", "writing_error"]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def writing_error(e: OSError, path: Path | str) -> OSError:
    """``e`` naming ``path``, the file being written: a full disk's ENOSPC from ``write()`` names no
    file, a temporary file's name means nothing to the user, and ``shutil.copyfile`` names its source."""
    return OSError(e.errno, e.strerror or str(e), str(path))


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file over ``path`` (same directory, fsynced)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a written file follows the umask like any other
        write(Path(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename in (None, tmp):
            raise writing_error(e, path) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask (read by setting and restoring it; there is no getter before Python 3.13's os)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _formula_like(v: str) -> bool:
    return v.lstrip("'").startswith(FORMULA_PREFIXES)


def spreadsheet_safe(frame):
    """A copy of the DataFrame ``frame`` whose text cells cannot run as spreadsheet formulas: a cell
    starting with ``= + - @`` (or a tab / carriage return) gets a leading ``'`` (OWASP's CSV-injection
    advice), e.g. a subject id ``=cmd|' /C calc'!A0``, and so does one already starting with ``'``s
    before such a character, so that :func:`spreadsheet_restore` gives back every value exactly.
    Numbers are untouched (``-0.5`` stays a number): only text cells change."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype).startswith(("string", "str")):
            out[col] = out[col].map(lambda v: "'" + v if isinstance(v, str) and _formula_like(v) else v)
    return out


def spreadsheet_restore(frame):
    """The inverse of :func:`spreadsheet_safe` on a DataFrame read back from such a CSV."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype).startswith(("string", "str")):
            out[col] = out[col].map(lambda v: v[1:] if isinstance(v, str) and v.startswith("'") and _formula_like(v) else v)
    return out


def atomic_write_csv(path: Path, frame) -> None:
    """``frame`` as a CSV (no index) whose text cells are :func:`spreadsheet_safe`; read it with :func:`read_safe_csv`."""
    atomic_write_text(path, spreadsheet_safe(frame).to_csv(index=False))


def read_safe_csv(path: Path, **kwargs: Any):
    """``pandas.read_csv(path, **kwargs)`` with :func:`spreadsheet_restore` applied: the values
    :func:`atomic_write_csv` was given (text read with a ``str`` dtype stays text: ``-5`` stays ``"-5"``)."""
    import pandas as pd

    return spreadsheet_restore(pd.read_csv(path, **kwargs))
