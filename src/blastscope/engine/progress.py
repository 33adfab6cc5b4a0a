"""Progress reporting hook: library code reports, only the CLI draws bars."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, ContextManager, Iterator, Protocol

__all__ = ["Progress", "ProgressFactory", "no_progress"]


class Progress(Protocol):
    def update(self, n: int = 1) -> None: ...
    def set_postfix_str(self, s: str) -> None: ...


ProgressFactory = Callable[..., ContextManager[Progress]]


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass


@contextmanager
def no_progress(total: int | None = None, desc: str = "", **_: object) -> Iterator[Progress]:
    yield _Silent()
