"""The capacity figures from Redis's counters, on made-up INFO answers. No timing."""

from __future__ import annotations

import pytest

from experiments.capacity import markdown, per_request, redis_figures


def test_info_sections_become_calls_per_command_and_cpu_seconds() -> None:
    stats = {
        "cmdstat_evalsha": {"calls": 2000, "usec": 9000},
        "cmdstat_zadd": {"calls": 3000, "usec": 1000},
        "errorstat_NOSCRIPT": {"count": 1},
    }
    calls, cpu = redis_figures(stats, {"used_cpu_sys": "0.25", "used_cpu_user": "0.5", "used_cpu_sys_children": "9"})
    assert calls == {"evalsha": 2000, "zadd": 3000}
    assert cpu == pytest.approx(0.75)


def test_per_request_figures_and_the_cores_one_redis_core_carries() -> None:
    calls = {"evalsha": 2000, "zadd": 3000, "config|resetstat": 1}
    out = per_request(calls, redis_cpu_s=0.05, gateway_cpu_s=0.5, requests=1000)
    assert out["evalsha_per_request"] == 2.0
    assert out["redis_commands_per_request"] == 5.0  # this program's own RESETSTAT left out
    assert out["redis_cpu_ms_per_1000_requests"] == pytest.approx(50.0)
    assert out["gateway_cpu_us_per_request"] == pytest.approx(500.0)
    assert out["gateway_cores_per_redis_core"] == pytest.approx(10.0)


def test_no_redis_cpu_gives_no_ratio_rather_than_a_division_by_zero() -> None:
    assert per_request({}, 0.0, 1.0, 10)["gateway_cores_per_redis_core"] is None


def test_the_markdown_table_carries_each_layouts_figures() -> None:
    row = per_request({"evalsha": 2000, "zadd": 3000}, 0.05, 0.5, 1000) | {"layout": "two replicas"}
    text = markdown([row])
    assert "| two replicas | 2.00 | 5.0 | 50 ms | 500 µs | 10.0 |" in text
