"""Spike-PCA-ResNet results in the layout of Noshad & Fallahi (2021) Table 5 (reads metrics.json; no torch).

Table 5 gives, for the external test set and the internal validation set, a row per class with
sensitivity, specificity, precision and F1-score (eqs. 5-9), and an "Average" row (class means)
with the accuracy; section 3 adds the ROC AUC with a DeLong 95% CI and Wilson 95% CIs for
sensitivity, specificity and accuracy, all "at its high-sensitivity operating point".

Here every block is shown twice: with the argmax decision, and at the high-sensitivity operating
point of :mod:`blastscope.evaluation.aggregate` (threshold chosen on validation predictions,
applied unchanged to held-out ones). "Test set (external)" is the majority vote of the fold
models on a held-out set (the operating point thresholds their mean probability); "Validation
(internal)" pools the fold models' out-of-fold predictions. Per-class AUCs are one-vs-rest; the
Average row's AUC is the binary AUC (two classes) or the macro one-vs-rest AUC without a CI.
With a set of positive classes (``data.positive`` a list) the operating-point blocks have the rows
``negative (<others>)`` and ``positive (<a>, <b>)``, scored by the sum of the set's probabilities.
"""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

__all__ = ["spike_table_rows", "print_spike_tables"]

_METRICS = ("sensitivity", "specificity", "precision", "f1", "accuracy", "auc")


def _ci(prefix: str, ci: dict | None) -> dict:
    if not ci:
        return {prefix: None, f"{prefix}_low": None, f"{prefix}_high": None}
    value = ci.get("value", ci.get("auc"))
    return {prefix: value, f"{prefix}_low": ci["low"], f"{prefix}_high": ci["high"]}


def _block_rows(m: dict, class_names: list[str], base: dict) -> list[dict]:
    """Rows of one Table 5 block (a row per class, then the class average) from a ``summarise`` dict."""
    rows = []
    for name in class_names:
        pc, ci = m["per_class"][name], m["per_class_ci"][name]
        rows.append({**base, "class": name, "n": pc["support"], **_ci("sensitivity", ci["sensitivity"]),
                     **_ci("specificity", ci["specificity"]), "precision": pc["precision"], "f1": pc["f1"],
                     **_ci("accuracy", None), **_ci("auc", ci["auc"])})
    auc = _ci("auc", m.get("auc")) if len(class_names) == 2 else {**_ci("auc", None), "auc": m.get("macro_auc")}
    rows.append({**base, "class": "average", "n": m["n_samples"], "sensitivity": m["macro"]["recall"],
                 "sensitivity_low": None, "sensitivity_high": None, "specificity": m["macro"]["specificity"],
                 "specificity_low": None, "specificity_high": None, "precision": m["macro"]["precision"],
                 "f1": m["macro"]["f1"], **_ci("accuracy", m["accuracy_ci"]), **auc})
    return rows


def spike_table_rows(metrics: dict) -> list[dict]:
    """Flat Table 5 rows for every arm: one dict per (arm, decision, set, class or ``average``).

    Keys: ``arm``, ``decision`` (``argmax`` | ``operating_point``), ``set`` (held-out set name or
    ``val``), ``source`` (``majority_vote`` | ``pooled_out_of_fold``), ``threshold`` (operating
    point: the vote's threshold, or None for pooled folds, each at its own), ``class``, ``n`` and,
    as fractions in [0, 1] (None where not defined), each of sensitivity, specificity, precision,
    f1, accuracy, auc, with ``_low``/``_high`` 95% bounds where a CI exists.
    """
    rows: list[dict] = []
    classes = metrics["class_names"]
    for arm, entry in metrics["arms"].items():
        op = entry.get("operating_point") or {}
        for s, m in entry["vote"].items():
            rows += _block_rows(m, classes, {"arm": arm, "decision": "argmax", "set": s, "source": "majority_vote", "threshold": None})
        if entry.get("pooled_oof"):
            rows += _block_rows(entry["pooled_oof"], classes,
                                {"arm": arm, "decision": "argmax", "set": "oof", "source": "pooled_out_of_fold", "threshold": None})
        names = op.get("class_names", classes)
        for s, m in (op.get("vote") or {}).items():
            rows += _block_rows(m, names, {"arm": arm, "decision": "operating_point", "set": s, "source": "majority_vote",
                                           "threshold": op.get("vote_threshold")})
        if op.get("pooled_oof"):
            rows += _block_rows(op["pooled_oof"], names, {"arm": arm, "decision": "operating_point", "set": "oof",
                                                          "source": "pooled_out_of_fold", "threshold": None})
    return rows


def _pct(row: dict, key: str) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    text = f"{100 * value:.2f}"
    if row.get(f"{key}_low") is not None:
        text += f" [{100 * row[f'{key}_low']:.1f}, {100 * row[f'{key}_high']:.1f}]"
    return text


def _auc(row: dict) -> str:
    if row.get("auc") is None:
        return "-"
    text = f"{row['auc']:.4f}"
    return text + (f" [{row['auc_low']:.3f}, {row['auc_high']:.3f}]" if row.get("auc_low") is not None else " (macro)")


def _set_label(row: dict) -> str:
    if row["source"] == "pooled_out_of_fold":
        return "Validation"
    return f"Test '{row['set']}'"


def print_spike_tables(metrics: dict, console: Console | None = None) -> None:
    """Print, per arm, the Table 5 layout for the argmax decision and the high-sensitivity operating point."""
    console = console or Console()
    rows = spike_table_rows(metrics)
    level = "IMAGE-LEVEL folds, optimistic" if metrics.get("image_level") else "subject-level folds"
    for arm, entry in metrics["arms"].items():
        op = entry.get("operating_point") or {}
        for decision in ("argmax", "operating_point"):
            block = [r for r in rows if r["arm"] == arm and r["decision"] == decision]
            if not block:
                continue
            has_test = any(r["source"] == "majority_vote" for r in block)
            caption = ("Values in % with Wilson 95% CIs; ROC AUC with DeLong 95% CIs (per class one-vs-rest). Validation (internal): every training image predicted once, by the fold model "
                       "that did not train on it." + (" Test (external): majority vote of the fold models." if has_test else ""))
            if decision == "argmax":
                title = f"{arm}: Table 5 layout, argmax decision ({level})"
            else:
                title = (f"{arm}: Table 5 layout, high-sensitivity operating point for '{_op_positive(op)}' "
                         f"(target sensitivity >= {op['target_sensitivity']:.2f} on validation; {level})")
                if has_test and op.get("vote_threshold") is not None:
                    caption += (f" Test: mean fold-model probability >= {op['vote_threshold']:.4f} (chosen on the pooled "
                                "out-of-fold predictions); Validation: each fold at its own threshold.")
            table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
            for col in ("set", "class", "n", "Sensitivity", "Specificity", "Precision", "F1-score", "Accuracy", "ROC AUC"):
                table.add_column(col, justify="left" if col in ("set", "class") else "right", no_wrap=col in ("set", "class"))
            groups: dict[str, list[dict]] = {}
            for r in block:
                groups.setdefault(_set_label(r), []).append(r)
            for label, g_rows in groups.items():
                for j, r in enumerate(g_rows):
                    table.add_row(label if j == 0 else "", "Average" if r["class"] == "average" else r["class"], str(r["n"]),
                                  _pct(r, "sensitivity"), _pct(r, "specificity"), _pct(r, "precision"), _pct(r, "f1"),
                                  _pct(r, "accuracy"), _auc(r), end_section=j == len(g_rows) - 1)
            console.print(table)
        if op.get("folds"):
            _print_fold_thresholds(arm, op, console)


def _op_positive(op: dict) -> str:
    """The positive name of an operating point's binary classes: the class itself, or
    ``positive (<a>, <b>)`` when ``op["positive"]`` lists a set (scored by the sum of their probabilities)."""
    pos = op["positive"]
    if isinstance(pos, str):
        return pos
    return pos[0] if len(pos) == 1 else op["class_names"][1]


def _print_fold_thresholds(arm: str, op: dict, console: Console) -> None:
    """Per fold: the threshold chosen on its validation fold and what it gives there and on held-out sets."""
    sets = sorted({s for f in op["folds"].values() for s in f if s not in ("threshold", "oof")})
    table = Table(title=f"{arm}: operating point per fold model (threshold chosen on its selection cells, or under the papers' protocol its validation fold; applied unchanged)",
                  title_justify="left")
    table.add_column("model")
    table.add_column("threshold", justify="right")
    table.add_column("out-of-fold sens / spec", justify="right")
    for s in sets:
        table.add_column(f"'{s}' sens / spec / acc", justify="right")
    pos = _op_positive(op)
    for k in sorted(op["folds"], key=int):
        f = op["folds"][k]
        if f["threshold"] is None:
            table.add_row(f"Model{int(k) + 1}", "- (no positive in val)", *["-"] * (1 + len(sets)))
            continue

        def cell(m: dict | None, acc: bool = True) -> str:
            if not m:
                return "-"
            pc = m["per_class"][pos]
            text = f"{100 * pc['sensitivity']:.1f}% / {100 * pc['specificity']:.1f}%"
            return text + (f" / {100 * m['accuracy']:.1f}%" if acc else "")

        table.add_row(f"Model{int(k) + 1}", f"{f['threshold']:.4f}", cell(f.get("oof"), acc=False), *[cell(f.get(s)) for s in sets])
    if op.get("mean_fold_threshold") is not None:
        table.caption = (f"vote threshold (pooled out-of-fold val) {op['vote_threshold']:.4f}; "
                         f"mean of fold thresholds {op['mean_fold_threshold']:.4f}")
    console.print(table)
