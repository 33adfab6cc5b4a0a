"""Small HTML building blocks for the report: escaped tables, rich tables as HTML, embedded figures."""
from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["esc", "plain", "table", "rich_table", "note", "FigureWriter", "shareable"]


def shareable(path: Path) -> None:
    """Atomic writes create owner-only files; a report is meant to be read by others (umask applies)."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    Path(path).chmod(0o666 & ~umask)


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def table(headers: Sequence[str] | None, rows: Sequence[Sequence[Any]], caption: str | None = None,
          numeric_from: int = 1, css: str = "") -> str:
    """An HTML table (no header row when ``headers`` is None); cells from column ``numeric_from`` on are right-aligned."""
    out = [f'<table class="{esc(css)}">']
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    if headers is not None:
        out.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr></thead>")
    out.append("<tbody>")
    for row in rows:
        cells = "".join(f'<td class="{"num" if j >= numeric_from else ""}">{esc(v)}</td>' for j, v in enumerate(row))
        out.append(f"<tr>{cells}</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def plain(value: Any) -> str:
    from rich.errors import MarkupError
    from rich.text import Text

    if value is None:
        return ""
    if isinstance(value, Text):
        return value.plain
    if isinstance(value, str):
        try:
            return Text.from_markup(value).plain
        except MarkupError:
            return value
    return str(value)


def rich_table(t: Any) -> str:
    """Render a ``rich.table.Table`` (as printed by the CLI) as an HTML table, section breaks kept."""
    headers = [plain(c.header) for c in t.columns]
    columns = [[plain(v) for v in c.cells] for c in t.columns]
    n_rows = max((len(c) for c in columns), default=0)
    out = ['<table class="paper">']
    if t.title:
        out.append(f"<caption>{esc(plain(t.title))}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{esc(h).replace(chr(10), '<br>')}</th>" for h in headers) + "</tr></thead><tbody>")
    for i in range(n_rows):
        end = i < len(t.rows) and t.rows[i].end_section
        cells = []
        for j, col in enumerate(columns):
            v = col[i] if i < len(col) else ""
            css = "num" if j > 0 and re.match(r"^[-\d.%\s\[\],/]+$", v or "-") else ""
            cells.append(f'<td class="{css}">{esc(v)}</td>')
        out.append(f'<tr class="{"section-end" if end else ""}">{"".join(cells)}</tr>')
    out.append("</tbody></table>")
    if getattr(t, "caption", None):
        out.append(f'<p class="caption">{esc(plain(t.caption))}</p>')
    return "\n".join(out)


def note(text: str, kind: str = "note") -> str:
    return f'<p class="{esc(kind)}">{esc(text)}</p>'


class FigureWriter:
    """Save each figure as ``<folder>/<name>.png`` and return it as an embedded ``<figure>``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.written: list[Path] = []

    def __call__(self, name: str, png: bytes, caption: str) -> str:
        from blastscope.engine.atomic import atomic_write_bytes

        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        path = self.folder / f"{safe}.png"
        atomic_write_bytes(path, png)
        shareable(path)
        self.written.append(path)
        data = base64.b64encode(png).decode("ascii")
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
                f"<figcaption>{esc(caption)}</figcaption></figure>")
