"""Whether a registered model takes an image size, told before training: probe, smallest size, clear errors."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from blastscope.models import create_model
from blastscope.models._registry import (
    check_input_size,
    input_size_problem,
    smallest_square_input,
)


def _basic_network_last_side(side: int) -> int:
    """Feature-map side after C1 (5x5, stride 2, pad 1) and the four 2x2 max-pools (Gehlot et al. 2020, Table 3)."""
    side = (side + 2 - 5) // 2 + 1
    for _ in range(4):
        side //= 2
    return side


SD_NET_MIN = next(s for s in range(1, 400) if _basic_network_last_side(s) >= 1)


def test_reference_arithmetic_matches_table_3():
    assert _basic_network_last_side(350) == 10  # 64 x 10 x 10 before bilinear pooling


def test_sd_net_too_small_names_model_size_and_smallest_size():
    with pytest.raises(ValueError) as err:
        check_input_size("sd_net", 32)
    message = str(err.value)
    assert "'sd_net'" in message and "32 x 32" in message
    assert f"at least {SD_NET_MIN} x {SD_NET_MIN}" in message and f"data.resize={SD_NET_MIN}" in message
    check_input_size("sd_net", SD_NET_MIN)  # the size it names works
    check_input_size("sdct_net", 350)


def test_smallest_square_input_matches_the_layer_arithmetic():
    model = create_model("sd_net")
    assert smallest_square_input(model, 3, 1, 350) == SD_NET_MIN
    toy = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.Conv2d(2, 2, 3), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    expected = next(s for s in range(1, 64) if ((s - 2) // 2 - 2) // 2 >= 1)
    assert smallest_square_input(toy, 1, 0, 64) == expected
    assert input_size_problem(toy, (1, expected - 1, expected - 1)) is not None


def test_a_head_sized_for_one_input_has_no_smallest_size():
    fixed = nn.Sequential(nn.Flatten(), nn.Linear(100, 2))  # 1 x 10 x 10 only
    assert input_size_problem(fixed, (1, 10, 10)) is None
    assert smallest_square_input(fixed, 1, 4, 20) is None
    with pytest.raises(ValueError, match=r"'leukemianet' cannot take the 100 x 100 images.*expects inputs of size \(128, 128\)"):
        check_input_size("leukemianet", 100, input_size=(128, 128))
    check_input_size("leukemianet", 128, input_size=(128, 128))


def test_probing_changes_neither_the_model_nor_the_random_stream():
    model = create_model("sd_net").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert input_size_problem(model, (3, 20, 20)) is not None and input_size_problem(model, (3, 40, 40)) is None
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    state = torch.get_rng_state()
    with pytest.raises(ValueError):
        check_input_size("sd_net", 16)
    assert torch.equal(torch.get_rng_state(), state)
