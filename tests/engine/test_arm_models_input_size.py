"""check_input_sizes: a recipe's arms against the configured image size, before any training."""
from __future__ import annotations

import pytest

from blastscope.config import resolve_config
from blastscope.engine.arm_models import check_input_sizes


def test_too_small_resize_is_refused_naming_arm_and_model():
    with pytest.raises(ValueError, match=r"arm 'sd_net': model 'sd_net' needs images of at least 33 x 33 .* prepared at 32 x 32"):
        check_input_sizes(resolve_config("sd_net", "quick", ["data.resize=32"]))
    check_input_sizes(resolve_config("sd_net", "quick", ["data.resize=33"]))


def test_every_arm_with_its_own_model_is_checked():
    """The aux arm reuses the CNN (not checked twice); a fusion arm's own model is checked too."""
    check_input_sizes(resolve_config("sdct_auxnet", "quick"))
    with pytest.raises(ValueError, match="arm 'stage1'"):
        check_input_sizes(resolve_config("leukonet_stage3c", "quick", ["data.resize=24"]))
    with pytest.raises(ValueError, match="arm 'vgg11_od'.*at least 32 x 32"):
        check_input_sizes(resolve_config("leukonet_vgg11_od", "quick", ["data.resize=31"]))


def test_leukemianet_head_must_match_resize():
    with pytest.raises(ValueError, match="arm 'leukemianet'.*cannot take the 160 x 160"):
        check_input_sizes(resolve_config("leukemianet", "quick", ["data.resize=160"]))


def test_bad_entrypoint_kwargs_are_a_value_error_naming_the_arm():
    with pytest.raises(ValueError, match="arm 'x'.*no_such_kwarg"):
        check_input_sizes(resolve_config("sd_net", "quick", ["arms=[{name: x, model: sd_net, kwargs: {no_such_kwarg: 1}}]"]))


def test_spike_input_arms_are_left_to_their_input():
    check_input_sizes(resolve_config("spike_resnet", "quick", ["data.resize=8"]))
