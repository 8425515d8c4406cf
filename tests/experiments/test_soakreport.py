"""The soak's checks on made-up samples: a steady run passes; a leak, an fd leak, drift or an error fails its check."""

from __future__ import annotations

from typing import Any

import pytest

from experiments import soakreport as sr

WARMUP = 60.0


def steady(n: int = 60, **over: Any) -> list[dict[str, Any]]:
    """Samples every 10 s: flat memory, fds and latency (a little noise), no errors."""
    out = []
    for i in range(n):
        s = {
            "t": 10.0 * (i + 1),
            "requests": 1000,
            "streams": 300,
            "errors": 0,
            "p50_ms": 1.0 + 0.05 * (i % 3),
            "p99_ms": 4.0 + 0.2 * (i % 4),
            "max_ms": 8.0 + (i % 5),
            "rss_mb": 100.0 + (i % 2),
            "sim_rss_mb": 40.0 + 0.5 * (i % 2),
            "fds": 40 + (i % 5),
            "other_fds": 20,
            "close_wait": i % 2,
            "redis_mb": 2.0,
        }
        for key, f in over.items():
            s[key] = f(i, s[key])
        out.append(s)
    return out


def failed(samples: list[dict[str, Any]]) -> list[str]:
    return [v["check"] for v in sr.verdicts(samples, WARMUP) if not v["passed"]]


def test_a_steady_run_passes_every_check() -> None:
    assert failed(steady()) == []


def test_a_pool_that_grew_once_under_a_stall_is_not_a_leak() -> None:
    samples = steady(fds=lambda i, v: v + (20 if i > 30 else 0))
    assert failed(samples) == []


def test_the_warm_up_is_left_out() -> None:
    """Memory that grows while warming up (imports, pools, caches) is not a leak."""
    samples = steady(rss_mb=lambda i, v: 50.0 + 10 * i if i < 5 else v)
    assert failed(samples) == []


@pytest.mark.parametrize(
    ("over", "check"),
    [
        ({"rss_mb": lambda i, v: 100.0 + 0.25 * i}, "RSS growth after warm-up"),
        ({"sim_rss_mb": lambda i, v: 40.0 + 0.1 * i}, "simulator RSS growth after warm-up"),
        ({"other_fds": lambda i, v: 20 + i}, "open files and pipes"),
        ({"close_wait": lambda i, v: i // 10}, "sockets left half-closed (CLOSE_WAIT)"),
        ({"p50_ms": lambda i, v: 1.0 + 0.02 * i}, "latency p50 drift"),
        ({"p99_ms": lambda i, v: 4.0 + 0.1 * i}, "latency p99 drift"),
        ({"errors": lambda i, v: int(i == 30)}, "errors"),
    ],
)
def test_each_failure_fails_its_own_check(over: dict[str, Any], check: str) -> None:
    assert failed(steady(**over)) == [check]


def test_too_few_samples_after_the_warm_up_is_an_error_not_a_pass() -> None:
    with pytest.raises(ValueError, match="too few"):
        sr.verdicts(steady(n=7), WARMUP)


def test_the_report_states_the_run_and_each_result() -> None:
    run = {
        "seconds": 600.0,
        "rate": 100.0,
        "stream_share": 0.3,
        "interval_s": 10.0,
        "warmup_s": WARMUP,
        "store": "a private redis-server",
        "machine": "2 cores",
    }
    text = sr.markdown(run, steady(), "soak.png")
    assert "600 s of traffic at 100 requests/s (30 % streaming)" in text
    assert "60000 requests (18000 streams); slowest request 12.0 ms (in the interval ending at 50 s);" in text
    stalled = sr.markdown(run, steady(max_ms=lambda i, v: 140.0 if i == 49 else v), None)
    assert "slowest request 140.0 ms (in the interval ending at 500 s)" in stalled
    assert "Overall: every check passed." in text
    assert "![soak](soak.png)" in text
    bad = sr.markdown(run, steady(errors=lambda i, v: int(i == 30)), None)
    assert "| errors | 1 | 0 | FAIL |" in bad and "Overall: FAILED." in bad
