"""The bench's report logic on made-up measurements: ratios, round medians, floors, the machine note. No timing."""

from __future__ import annotations

import platform
from typing import Any

import pytest

from experiments import benchreport as br

MS = 1e-3


def rounds_of(**p50s_ms: list[float]) -> list[dict[str, list[float]]]:
    """Rounds whose samples are exactly the given p50s (one sample per system per round)."""
    n = len(next(iter(p50s_ms.values())))
    return [{name: [v[i] * MS] for name, v in p50s_ms.items()} for i in range(n)]


def test_pct_is_nearest_rank() -> None:
    assert br.pct([3.0, 1.0, 2.0], 0.5) == 2.0
    assert br.pct(list(range(101)), 0.99) == 99
    with pytest.raises(ValueError):
        br.pct([], 0.5)


def test_added_p50_is_the_median_of_the_rounds_differences_so_one_slow_round_is_left_out() -> None:
    rounds = rounds_of(direct=[0.20, 0.20, 5.00, 0.20, 0.20], gateway=[0.70, 0.71, 9.00, 0.69, 0.70])
    out = br.summarize_rounds(rounds, "direct")
    assert out["gateway"]["added_p50_ms"] == pytest.approx(0.50)
    assert out["gateway"]["rounds_added_p50_ms"][2] == pytest.approx(4.0)
    assert "added_p50_ms" not in out["direct"]
    assert br.over(rounds, "gateway", "direct") == pytest.approx(0.50)


def test_pooled_p99_and_its_difference() -> None:
    rounds = [{"direct": [i * MS for i in range(100)], "gateway": [2 * i * MS for i in range(100)]}]
    out = br.summarize_rounds(rounds, "direct")
    assert out["direct"]["p99_ms"] == pytest.approx(98.0)
    assert out["gateway"]["p99_ms"] == pytest.approx(196.0)
    assert out["gateway"]["added_p99_ms"] == pytest.approx(98.0)


def test_rps_ratio_is_the_median_of_the_rounds_ratios() -> None:
    rounds = [
        {"forwarder": 3000.0, "gateway": 2700.0},
        {"forwarder": 1000.0, "gateway": 2000.0},  # a round the machine disturbed
        {"forwarder": 3000.0, "gateway": 2400.0},
    ]
    assert br.rps_ratio(rounds, "gateway", "forwarder") == pytest.approx(0.9)


def result(**over: float) -> dict[str, Any]:
    """A bench result in runs/bench.json's shape whose figures all sit just inside their floors."""
    fig = {
        "rps_ratio": 0.86,
        "quota_rps_ratio": 0.71,
        "p50_over_forwarder_ms": 0.14,
        "quota_p50_over_forwarder_ms": 0.39,
        "ttft_added_p50_ms": 0.79,
        "fwd_p99": 2.0,
        "gw_p99": 2.9,
    } | over
    tp = {k: {"rps": 1000.0, "errors": 0} for k in ("direct", "forwarder", "gateway", "gateway_quota")}
    return {
        "quota_store": "private redis-server",
        "throughput": tp | {"gateway_ratio": fig["rps_ratio"], "gateway_quota_ratio": fig["quota_rps_ratio"]},
        "latency": {
            "direct": {"p50_ms": 0.2, "p99_ms": 1.0},
            "forwarder": {"p50_ms": 0.5, "p99_ms": fig["fwd_p99"], "added_p50_ms": 0.3},
            "gateway": {"p50_ms": 0.6, "p99_ms": fig["gw_p99"], "added_p50_ms": 0.4},
            "gateway_quota": {"p50_ms": 0.8, "p99_ms": 3.0, "added_p50_ms": 0.6},
            "gateway_over_forwarder_p50_ms": fig["p50_over_forwarder_ms"],
            "gateway_quota_over_forwarder_p50_ms": fig["quota_p50_over_forwarder_ms"],
        },
        "ttft": {
            "direct": {"p50_ms": 0.3, "p99_ms": 1.0},
            "forwarder": {"p50_ms": 0.6, "p99_ms": 2.0, "added_p50_ms": 0.3},
            "gateway": {"p50_ms": 1.0, "p99_ms": 2.5, "added_p50_ms": fig["ttft_added_p50_ms"]},
        },
        "machine": {"cores": 2, "cpu_model": "AMD EPYC", "python": "CPython 3.11.7", "load_avg": [0.1, 0.2, 0.3]},
    }


def test_every_floor_is_met_just_inside_its_limit() -> None:
    v = br.verdicts(result())
    assert [x["figure"] for x in v] == [f.figure for f in br.FLOORS]
    assert all(x["met"] for x in v)
    assert {x["figure"]: x["value"] for x in v}["p99_ratio"] == pytest.approx(1.45)


@pytest.mark.parametrize(
    ("override", "figure"),
    [
        ({"rps_ratio": 0.84}, "rps_ratio"),
        ({"quota_rps_ratio": 0.69}, "quota_rps_ratio"),
        ({"p50_over_forwarder_ms": 0.16}, "p50_over_forwarder_ms"),
        ({"quota_p50_over_forwarder_ms": 0.41}, "quota_p50_over_forwarder_ms"),
        ({"ttft_added_p50_ms": 0.81}, "ttft_added_p50_ms"),
        ({"gw_p99": 3.1}, "p99_ratio"),
    ],
)
def test_a_figure_past_its_floor_is_not_met_and_only_that_one(override: dict[str, float], figure: str) -> None:
    v = br.verdicts(result(**override))
    assert [x["figure"] for x in v if not x["met"]] == [figure]
    line = next(ln for ln in br.table(result(**override)).splitlines() if ln.endswith("NOT MET"))
    assert line.startswith(next(f.name for f in br.FLOORS if f.figure == figure))


def test_the_table_shows_ratios_as_shares_and_the_store() -> None:
    text = br.table(result())
    assert "86.0 %" in text and ">= 85.0 %" in text
    assert "+0.140 ms" in text and "<= 0.150 ms" in text
    assert "1.45x" in text
    assert "quota on private redis-server" in text
    assert "NOT MET" not in text and "NOTE" not in text


def test_machine_reads_the_cpu_model_and_the_given_load() -> None:
    m = br.machine(cpuinfo="processor\t: 0\nmodel name\t: AMD EPYC 7B13\n", loadavg=(0.5, 0.25, 0.125))
    assert m["cpu_model"] == "AMD EPYC 7B13"
    assert m["load_avg"] == [0.5, 0.25, 0.12]
    assert m["python"] == f"{platform.python_implementation()} {platform.python_version()}"
    assert m["cores"] >= 1


def test_a_busy_machine_is_said_and_an_idle_one_is_not() -> None:
    busy = result()
    busy["machine"]["load_avg"] = [1.2, 1.0, 0.9]
    assert br.machine_note(busy["machine"]) is not None
    assert "NOTE: the machine was busy (load average 1.20 on 2 cores" in br.table(busy)
    assert br.machine_note(result()["machine"]) is None
