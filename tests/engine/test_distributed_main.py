"""Steps that rank 0 runs for everyone (``run_on_main``) and how a failing process reaches the caller of ``launch``."""
from __future__ import annotations

import operator
import queue

import pytest

from blastscope.engine import distributed as ddp


def test_without_a_process_group_run_on_main_just_calls():
    assert ddp.run_on_main(operator.add, 2, 3) == 5
    assert ddp.broadcast_object({"a": [1]}) == {"a": [1]}
    with pytest.raises(ZeroDivisionError):
        ddp.run_on_main(operator.truediv, 1, 0)


def test_root_cause_prefers_rank_zeros_own_error():
    """Invariant: the original error (lowest rank) is reported before the MainProcessError it causes
    elsewhere, whatever order the processes reported in; its ValueError-ness decides the type."""
    failures: queue.SimpleQueue = queue.SimpleQueue()
    failures.put((1, True, True, "rank 0 failed: ValueError: bad"))
    failures.put((0, False, True, "bad"))
    err = ddp._root_cause(failures)
    assert type(err) is ValueError and str(err) == "bad"
    failures.put((1, True, False, "rank 0 failed: KeyError: 'k'"))
    err = ddp._root_cause(failures)
    assert type(err) is RuntimeError and "KeyError" in str(err) and "process 1" in str(err)
    assert ddp._root_cause(failures) is None


@pytest.mark.timeout(120)
def test_a_failure_on_rank_zero_stops_every_process_and_keeps_its_message():
    """Rank 0 raises inside run_on_main; rank 1, waiting for it, raises too instead of hanging, and
    launch raises a ValueError carrying the original message."""
    with pytest.raises(ValueError, match="invalid literal for int"):
        ddp.launch(ddp.run_on_main, 2, args=(int, "not a number"), threads=1)
