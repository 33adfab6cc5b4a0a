"""Property tests of C-NMC file-name parsing: any text either parses or raises NameError_, and every
valid name round-trips to its parts (subject upper-cased, label lower-cased, any letter case)."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from blastscope.data.cnmc import CnmcName, NameError_, parse_cnmc_name

SETTINGS = settings(max_examples=300, deadline=None)


def _mixed_case(draw, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if f else c.lower() for c, f in zip(text, flips))


@st.composite
def valid_names(draw):
    prefix = draw(st.sampled_from(["", "H", "A"]))
    number = draw(st.integers(0, 10**6))
    image, cell = draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6))
    label = draw(st.sampled_from(["all", "hem", "aml"]))
    parts = f"{prefix}{number}", str(image), str(cell), label
    name = _mixed_case(draw, f"UID_{parts[0]}_{parts[1]}_{parts[2]}_{parts[3]}.bmp")
    folder = draw(st.sampled_from(["", "fold_0/all/", "/data/c-nmc/"]))
    return folder + name, CnmcName(parts[0].upper(), image, cell, label)


@SETTINGS
@given(valid_names())
def test_valid_names_round_trip(case):
    name, expected = case
    assert parse_cnmc_name(name) == expected


@SETTINGS
@given(st.text())
@example("UID_" + "1" * 5000 + "_1_1_all.bmp")  # beyond Python's int() digit limit
@example("UID_1_" + "9" * 5000 + "_1_all.bmp")
@example("UID_1_1_1_all.bmp\n")
@example("UID_1_1_1_all.bmp/")
@example("UID_\x00_1_1_all.bmp")
@example("UID_１_1_1_all.bmp")  # a full-width digit
def test_any_text_parses_or_raises_name_error(text):
    try:
        parsed = parse_cnmc_name(text)
    except NameError_:
        return
    assert isinstance(parsed, CnmcName) and parsed.label in ("all", "hem", "aml")
    assert parsed.subject_id.isascii() and parsed.subject_id == parsed.subject_id.upper()
    name = Path(text).name
    assert name.lower().endswith(".bmp") and name.isprintable() and name.isascii()


@SETTINGS
@given(valid_names(), st.sampled_from(["_", "x", ".png", " ", "__", "-"]), st.integers(0, 40))
def test_damaged_valid_names_never_raise_anything_else(case, junk, at):
    name, _ = case
    damaged = name[:at] + junk + name[at:]
    try:
        parse_cnmc_name(damaged)
    except NameError_:
        pass


@pytest.mark.parametrize("name", ["UID_11_1_1_all.BMP", "uid_h3_4_1_HEM.bmp"])
def test_case_insensitive_examples(name):
    assert parse_cnmc_name(name).label in ("all", "hem")
