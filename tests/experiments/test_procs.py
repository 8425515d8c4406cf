"""experiments/procs.py's interrupt handling (the processes themselves: test_realtime.py)."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest

from experiments.procs import RunInterrupted, run_interrupts


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_raised_where_it_was_ignored_is_raised_again_at_the_next_check(sig: signal.Signals) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with run_interrupts() as intr:
        intr.check()  # nothing yet
        with contextlib.suppress(RunInterrupted):  # as an at-fork callback does: "Exception ignored", and on
            os.kill(os.getpid(), sig)
        with pytest.raises(RunInterrupted, match=f"signal {int(sig)}"):
            intr.check()
    assert {s: signal.getsignal(s) for s in before} == before
