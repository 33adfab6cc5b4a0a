"""One benchmark case's figures: optimised path, reference path, ratio, target, numerical agreement."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["CaseResult"]


@dataclass
class CaseResult:
    """A row of the benchmark table.

    ``higher_is_better`` tells how ``ratio`` is formed: optimised / reference for rates,
    reference / optimised for times and shares, so a ratio > 1 always means the optimised path
    wins. ``met`` is None when the case has no target or was skipped; ``agreement`` records how
    far the optimised and reference outputs are apart and the tolerance they must meet.
    """

    name: str
    title: str
    unit: str
    optimised: float | None
    reference: float | None
    higher_is_better: bool = True
    target: str = ""
    met: bool | None = None
    agreement: dict[str, Any] | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.optimised is None or self.reference is None or self.optimised == 0 or self.reference == 0:
            return None
        return self.optimised / self.reference if self.higher_is_better else self.reference / self.optimised

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "unit": self.unit, "optimised": self.optimised,
                "reference": self.reference, "ratio": self.ratio, "higher_is_better": self.higher_is_better,
                "target": self.target, "met": self.met, "agreement": self.agreement, "notes": self.notes,
                "extra": self.extra, "skipped": self.skipped}

    @classmethod
    def skip(cls, name: str, title: str, reason: str) -> CaseResult:
        return cls(name=name, title=title, unit="", optimised=None, reference=None, skipped=reason)
