"""One self-contained HTML report of a run folder (figures embedded as base64 PNG data URIs).

Built only from the run folder's files (:mod:`blastscope.reports.run_data`); it never imports
torch or training code. The figures are also written as PNG files beside the HTML. Without
matplotlib (``pip install blastscope[plots]``) the report keeps its tables and says that figures
need the extra. Sections: configuration, data summary, paper-layout tables, fold models, training
curves, ROC, confusion matrices, theta sweep (Gehlot et al. 2020 Fig. 10), per-subject accuracy
(Fig. 11), DCT sparsity (Fig. 4) and feature projections (Fig. 14).
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

from blastscope.engine.atomic import atomic_write_text
from blastscope.reports import plots
from blastscope.reports.markup import FigureWriter, esc, note, shareable
from blastscope.reports.run_data import RunData, read_run
from blastscope.reports.sections import (
    config_section,
    data_section,
    folds_section,
    header,
    tables_section,
)

__all__ = ["build_report", "render_report", "REPORT_FILE"]

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:0 24px 48px;
color:#1d2329;line-height:1.45}
h1{margin-top:24px}h2{border-bottom:2px solid #dde3ea;padding-bottom:4px;margin-top:36px}
nav{background:#f4f6f8;padding:8px 12px;border-radius:6px;font-size:14px}nav a{margin-right:12px}
table{border-collapse:collapse;margin:12px 0 20px;font-size:13px}caption{text-align:left;font-weight:600;padding:4px 0}
th,td{border:1px solid #d0d7de;padding:3px 8px}th{background:#eef2f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.section-end td{border-bottom:2px solid #8a96a3}table.kv td:first-child{font-weight:600;background:#f7f9fb}
pre.config{background:#f7f9fb;border:1px solid #d0d7de;padding:10px;font-size:12px;max-height:420px;overflow:auto}
figure{margin:16px 0}figure img{max-width:100%;border:1px solid #e1e6eb}figcaption{font-size:13px;color:#4b5661}
p.warning{background:#fff1f0;border-left:4px solid #d93025;padding:6px 10px}
p.ok{background:#eefaf1;border-left:4px solid #1e8e3e;padding:6px 10px}p.note{color:#4b5661;font-size:14px}
p.caption{font-size:12px;color:#4b5661;margin-top:-14px}
"""

_NAV = [("config", "Configuration"), ("data", "Data"), ("tables", "Tables"), ("folds", "Fold models"),
        ("curves", "Training curves"), ("roc", "ROC"), ("confusion", "Confusion"), ("theta", "Theta (Fig. 10)"),
        ("subjects", "Subjects (Fig. 11)"), ("trust", "Trust"), ("dct", "DCT (Fig. 4)"), ("maps", "Maps (Fig. 13)"), ("gallery", "Heat maps"),
        ("features", "Features (Fig. 14)")]


def _figure_sections(data: RunData, fig: FigureWriter) -> list[str]:
    from blastscope.reports.activations import dct_section, feature_maps_section, features_section, gallery_section
    from blastscope.reports.figures import (
        confusion_section,
        curves_section,
        roc_section,
        subject_section,
        theta_section,
        trust_section,
    )

    out = []
    for section in (curves_section, roc_section, confusion_section, theta_section, subject_section, trust_section,
                    dct_section, feature_maps_section, gallery_section, features_section):
        try:
            out.append(section(data, fig))
        except Exception as e:  # one broken figure must not cost the whole report
            logger.exception("report section %s failed", section.__name__)
            out.append(note(f"{section.__name__.replace('_section', '')}: could not be drawn ({type(e).__name__}: {e})", "warning"))
    return out


def render_report(data: RunData, figures_dir: Path) -> tuple[str, list[Path]]:
    """The report's HTML text and the PNG files written to ``figures_dir``."""
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    fig = FigureWriter(figures_dir)
    body = [header(data, generated),
            "<nav>" + "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in _NAV) + "</nav>",
            config_section(data), data_section(data), tables_section(data), folds_section(data)]
    if plots.available():
        body += _figure_sections(data, fig)
    else:
        body.append(note("Figures need matplotlib: pip install 'blastscope[plots]'. Tables above are complete.", "warning"))
    title = f"blastscope report: {data.run['recipe']}"
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    return page, fig.written


def build_report(run_dir: Path | str, out_dir: Path | str | None = None) -> Path:
    """Write ``<out_dir>/report.html`` and ``<out_dir>/figures/*.png``; returns the HTML path.

    ``out_dir`` defaults to ``RUN_DIR/report``. Raises :class:`~blastscope.reports.run_data.ReportError`
    for a folder that is not a run.
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "report"
    data = read_run(run_dir)
    page, written = render_report(data, out_dir / "figures")
    path = out_dir / REPORT_FILE
    atomic_write_text(path, page)
    shareable(path)
    logger.info("report with %d figures written to %s", len(written), path)
    return path
