"""``data.positive`` as one class name or a list of class names: validation at config resolution."""
from __future__ import annotations

import pytest
import yaml

from blastscope.config import ConfigError, config_to_dict, read_config, resolve_config, save_config

SMEAR = ["benign", "early_malignant", "pre_malignant", "pro_malignant"]
CLASSES = f"data.classes=[{', '.join(SMEAR)}]"


def _resolve(*overrides: str):
    return resolve_config("spike_resnet", "quick", [CLASSES, *overrides])


def test_single_name_is_kept_as_a_string() -> None:
    assert resolve_config("sdct_auxnet").data.positive == "all"
    assert _resolve("data.positive=benign").data.positive == "benign"


def test_list_is_a_tuple_in_class_order() -> None:
    """Invariant: the stored set does not depend on the order it was written in."""
    a = _resolve("data.positive=[pro_malignant, early_malignant, pre_malignant]").data.positive
    b = _resolve("data.positive=[early_malignant, pre_malignant, pro_malignant]").data.positive
    assert a == b == ("early_malignant", "pre_malignant", "pro_malignant")


def test_one_name_list_is_that_name() -> None:
    assert _resolve("data.positive=[pre_malignant]").data.positive == "pre_malignant"


def test_list_round_trips_through_config_yaml(tmp_path) -> None:
    config = _resolve("data.positive=[pre_malignant, pro_malignant]")
    save_config(config, tmp_path / "config.yaml")
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["data"]["positive"] == ["pre_malignant", "pro_malignant"]
    back = read_config(tmp_path / "config.yaml")
    assert back.data.positive == ("pre_malignant", "pro_malignant")
    assert config_to_dict(back) == config_to_dict(config)


@pytest.mark.parametrize("value,match", [
    ("aml", r"data.positive must be one of data.classes .*got 'aml'"),
    ("[early_malignant, aml, xyz]", r"data.positive names \['aml', 'xyz'\], which are not in data.classes"),
    ("[pre_malignant, pre_malignant, pro_malignant]", r"data.positive names \['pre_malignant'\] more than once"),
    (f"[{', '.join(SMEAR)}]", r"data.positive names every class .*at least one class must stay negative"),
    ("[pro_malignant, benign, pre_malignant, early_malignant]", r"names every class"),
    ("[]", r"non-empty list of class names .*got \[\]"),
    ("[1, 2]", r"class name or a non-empty list .*got \[1, 2\]"),
    ("{a: 1}", r"class name or a non-empty list .*got \{'a': 1\}"),
    ("null", r"class name or a non-empty list .*got None"),
])
def test_bad_positive_is_named(value: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _resolve(f"data.positive={value}")


def test_two_classes_cannot_list_both() -> None:
    with pytest.raises(ConfigError, match="at least one class must stay negative"):
        resolve_config("sdct_auxnet", None, ["data.positive=[hem, all]"])
