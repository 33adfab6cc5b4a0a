"""Property tests of issue 15's second round: YAML aliases, NUL bytes in CSVs, markup and escape
sequences in names, formula prefixes. Small example counts: each runs in about a second."""
from __future__ import annotations

import io
import string
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blastscope.cli import terminal_safe, user_text
from blastscope.config import safe_yaml
from blastscope.data.csv_text import CsvTextError, csv_text
from blastscope.data.folder import read_subject_csv
from blastscope.data.index import IndexError_
from blastscope.engine.atomic import FORMULA_PREFIXES, spreadsheet_restore, spreadsheet_safe

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAME = st.text(st.sampled_from(list(string.ascii_letters + "_-") ), min_size=1, max_size=6)
FIELD = st.text(st.sampled_from(list("abcP0129_./=+-@'\"[]")), max_size=10)


@SETTINGS
@given(anchor=NAME, value=st.one_of(st.integers(), st.text(string.ascii_letters, max_size=5), st.lists(st.integers(), max_size=3)),
       uses=st.integers(1, 5), nested=st.booleans())
def test_yaml_with_any_alias_is_refused(anchor, value, uses, nested):
    """Invariant: a document that uses an alias is refused by safe_yaml (yaml.YAMLError), whatever
    the anchored value, however many uses and however deeply nested; without the alias it loads."""
    anchored = yaml.safe_dump({"a": value}, default_flow_style=True).strip()[4:-1]
    body = f"base: &{anchor} {anchored}\n" + "".join(
        (f"k{i}: {{inner: [*{anchor}]}}\n" if nested else f"k{i}: *{anchor}\n") for i in range(uses))
    with pytest.raises(yaml.YAMLError, match="aliases"):
        safe_yaml(body)
    assert safe_yaml(f"base: &{anchor} {anchored}\n")["base"] == value


@SETTINGS
@given(rows=st.lists(st.tuples(FIELD, FIELD), min_size=1, max_size=6), where=st.integers(0, 10**6))
def test_a_nul_anywhere_in_a_csv_names_its_line(rows, where):
    """Invariant: a NUL byte at any position of a subject CSV is an error naming the file and the
    line the NUL is on, never an index with the NUL in a name or id."""
    text = "file,subject_id\n" + "".join(f"{a},{b}\n" for a, b in rows)
    at = where % (len(text) + 1)
    damaged = text[:at] + "\0" + text[at:]
    line = damaged.count("\n", 0, at) + 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "subjects.csv"
        path.write_text(damaged, encoding="utf-8", newline="")
        with pytest.raises(CsvTextError, match=f"subjects.csv, line {line}: a NUL byte"):
            csv_text(path)
        with pytest.raises(IndexError_, match=f"subjects.csv, line {line}: a NUL byte"):
            read_subject_csv(path)


MARKUP = st.sampled_from(["[/]", "[bold]", "[link=http://x]", "[red]x[/red]", "\x1b[2J", "\x1b]8;;http://x\x07", "\x1b[31m",
                          "\x9b1m", "\r", "\x07", "\x08", "\x7f", "\x1bc", "ok", " ", "[", "]", "\\"])


@SETTINGS
@given(parts=st.lists(st.one_of(MARKUP, st.text(max_size=4)), max_size=8))
def test_names_are_shown_literally_without_escape_sequences(parts):
    """Invariant: a name echoed to the terminal holds no ESC/CSI or other control character (but
    newline and tab), and rich prints it literally: markup is never interpreted (a tab is shown as
    spaces to the next tab stop, as a terminal shows it)."""
    from rich.console import Console

    name = "".join(parts)
    safe = terminal_safe(name)
    assert not any(c in safe for c in "\x1b\x9b\x07\x08\x7f\r")
    assert all(c in "\n\t" or (ord(c) >= 0x20 and not 0x7f <= ord(c) <= 0x9f) for c in safe)
    assert user_text(name).plain == safe
    out = io.StringIO()
    Console(file=out, width=10_000, color_system=None, highlight=False, soft_wrap=True).print(user_text(name), end="")
    if "\t" in safe:  # shown as spaces to the next tab stop (rich counts cells, not characters)
        assert out.getvalue().replace(" ", "") == safe.replace("\t", "").replace(" ", "")
    else:
        assert out.getvalue() == safe


@SETTINGS
@given(texts=st.lists(st.one_of(st.text(max_size=8), st.sampled_from(["=1+1", "-5", "+A", "@B", "'=x", "''-y", "\tz", "-0.0"])),
                      min_size=1, max_size=8),
       numbers=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=8, max_size=8))
def test_formula_prefixes_are_neutralised_and_restored(texts, numbers):
    """Invariants: no text cell of a safe frame starts with a formula character; restoring gives the
    values back exactly; number columns are never changed (``-0.0`` stays a float)."""
    frame = pd.DataFrame({"subject_id": texts, "p": numbers[:len(texts)]})
    safe = spreadsheet_safe(frame)
    assert not any(v.startswith(FORMULA_PREFIXES) for v in safe["subject_id"])
    assert safe["p"].equals(frame["p"])
    assert spreadsheet_restore(safe).equals(frame)
