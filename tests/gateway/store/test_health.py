"""The store's health core, driven by sequences of outcomes."""

from __future__ import annotations

import pytest

from gateway.store.health import StoreHealth

S, F, P, X = "success", "failure", "probe ok", "probe failed"


def run(threshold: int, steps: list[str]) -> list[object]:
    h = StoreHealth(threshold)
    out: list[object] = []
    for step in steps:
        if step == S:
            out.append(h.success())
        elif step == F:
            out.append(h.failure())
        else:
            out.append(h.probed(step == P))
    return out


@pytest.mark.parametrize(
    ("threshold", "steps", "changes"),
    [
        (3, [F, F, F], [None, None, "down"]),
        (3, [F, F, S, F, F], [None, None, None, None, None]),  # a success resets the count
        (1, [F, F], ["down", None]),  # failures while down change nothing
        (1, [F, P], ["down", "false_outage"]),  # the first probe answered: most likely not the store
        (1, [F, X, X, P], ["down", None, None, "up"]),  # a real outage
        (1, [F, X, S], ["down", None, "up"]),  # a call in flight that succeeds ends it too
        (2, [F, F, X, P, F, F], [None, "down", None, "up", None, "down"]),
        (1, [P, S], [None, None]),  # probes and successes while up change nothing
    ],
)
def test_transitions(threshold: int, steps: list[str], changes: list[object]) -> None:
    assert run(threshold, steps) == changes


def test_an_outage_forced_at_start_is_false_if_its_first_probe_answers() -> None:
    h = StoreHealth(3)
    assert (h.force_down(), h.force_down(), h.probed(True)) == ("down", None, "false_outage")
