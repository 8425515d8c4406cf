from __future__ import annotations

from gateway.clock import FakeClock
from gateway.router.cooloff import QuotaCooloffs


def test_a_provider_is_skipped_until_its_cooloff_ends() -> None:
    clock = FakeClock()
    c = QuotaCooloffs(300.0)
    t0 = clock.monotonic()
    assert not c.active("a", t0) and c.wait(["a"], t0) is None
    c.mark("a", t0)
    clock.advance(100)
    assert c.active("a", clock.monotonic()) and not c.active("b", clock.monotonic())
    assert c.wait(["a", "b"], clock.monotonic()) == 200.0
    assert c.providers(clock.monotonic()) == ["a"]
    clock.advance(200)
    assert not c.active("a", clock.monotonic()) and c.providers(clock.monotonic()) == []


def test_marking_again_never_shortens_a_running_cooloff() -> None:
    c = QuotaCooloffs(300.0)
    c.mark("a", 100.0)
    c.mark("a", 50.0)  # an answer that was in flight before the first one
    assert c.wait(["a"], 100.0) == 300.0
    c.mark("a", 200.0)
    assert c.wait(["a"], 200.0) == 300.0
