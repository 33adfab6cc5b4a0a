"""Argument checks shared by the transform constructors (errors name the bad value)."""
from __future__ import annotations

import math


def check_probability(name: str, p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {name}={p}")
    return float(p)


def check_range(
    name: str, value: tuple[float, float], lower: float = -math.inf, upper: float = math.inf
) -> tuple[float, float]:
    """A ``(low, high)`` pair with ``lower <= low <= high <= upper``, returned as floats."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair, got {name}={value!r}") from None
    if not lower <= low <= high <= upper:
        raise ValueError(f"{name} must satisfy {lower} <= low <= high <= {upper}, got {name}={value!r}")
    return low, high
