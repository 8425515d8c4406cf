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


def test_ratios_are_taken_against_each_forwarder_and_never_the_upstream() -> None:
    rounds = [{"direct": 9000.0, "forwarder": 4000.0, "forwarder_fastapi": 2000.0, "gateway": 1800.0}]
    out = br.against_forwarders(rounds, br.rps_ratio)
    assert out == {
        "forwarder_fastapi": {"forwarder": 2.0, "gateway": pytest.approx(0.9)},
        "forwarder": {"forwarder_fastapi": 0.5, "gateway": pytest.approx(0.45)},
    }


def result(**over: float) -> dict[str, Any]:
    """A bench result in runs/bench.json's shape whose figures against the FastAPI forwarder all sit just inside
    their floors. Against the raw ASGI forwarder every figure is past its floor, and so is every figure the gateway
    has on its own (its added p50 over the upstream), so a floor computed from either would not be met."""
    fig = {
        "rps_ratio": 0.86,
        "quota_rps_ratio": 0.71,
        "p50_over_forwarder_ms": 0.14,
        "quota_p50_over_forwarder_ms": 0.39,
        "ttft_added_p50_ms": 0.79,
        "fwd_p99": 2.0,
        "gw_p99": 2.9,
        "raw_rps_ratio": 0.50,
        "raw_quota_rps_ratio": 0.40,
        "raw_p50_over_ms": 0.30,
        "raw_quota_p50_over_ms": 0.60,
        "raw_p99": 1.0,
    } | over
    tp = {
        k: {"rps": 1000.0, "errors": 0}
        for k in ("direct", "forwarder", "forwarder_fastapi", "gateway", "gateway_quota")
    }
    ratios = {
        "forwarder_fastapi": {"gateway": fig["rps_ratio"], "gateway_quota": fig["quota_rps_ratio"]},
        "forwarder": {"gateway": fig["raw_rps_ratio"], "gateway_quota": fig["raw_quota_rps_ratio"]},
    }
    over_p50 = {
        "forwarder_fastapi": {
            "gateway": fig["p50_over_forwarder_ms"],
            "gateway_quota": fig["quota_p50_over_forwarder_ms"],
        },
        "forwarder": {"gateway": fig["raw_p50_over_ms"], "gateway_quota": fig["raw_quota_p50_over_ms"]},
    }
    return {
        "quota_store": "private redis-server",
        "throughput": tp | {"ratios": ratios},
        "latency": {
            "direct": {"p50_ms": 0.2, "p99_ms": 1.0},
            "forwarder": {"p50_ms": 0.4, "p99_ms": fig["raw_p99"], "added_p50_ms": 0.2},
            "forwarder_fastapi": {"p50_ms": 0.5, "p99_ms": fig["fwd_p99"], "added_p50_ms": 0.3},
            "gateway": {"p50_ms": 1.1, "p99_ms": fig["gw_p99"], "added_p50_ms": 0.9},
            "gateway_quota": {"p50_ms": 1.4, "p99_ms": 3.0, "added_p50_ms": 1.2},
            "over_p50_ms": over_p50,
        },
        "ttft": {
            "direct": {"p50_ms": 0.3, "p99_ms": 1.0},
            "forwarder": {"p50_ms": 0.5, "p99_ms": 1.5, "added_p50_ms": 0.2},
            "forwarder_fastapi": {"p50_ms": 0.6, "p99_ms": 2.0, "added_p50_ms": 0.3},
            "gateway": {"p50_ms": 1.0, "p99_ms": 2.5, "added_p50_ms": fig["ttft_added_p50_ms"]},
        },
        "machine": {"cores": 2, "cpu_model": "AMD EPYC", "python": "CPython 3.11.7", "load_avg": [0.1, 0.2, 0.3]},
    }


def test_every_floor_is_judged_against_the_fastapi_forwarder_and_met_just_inside_its_limit() -> None:
    v = br.verdicts(result())
    assert [x["figure"] for x in v] == [f.figure for f in br.FLOORS]
    assert all(x["met"] for x in v)  # against the raw forwarder, or on the gateway's own figures, none would be
    values = {x["figure"]: x["value"] for x in v}
    assert values["rps_ratio"] == pytest.approx(0.86)
    assert values["p50_over_forwarder_ms"] == pytest.approx(0.14)
    assert values["p99_ratio"] == pytest.approx(1.45)
    assert {x["against"] for x in v} == {"forwarder_fastapi", "direct"}


def test_the_same_figures_against_the_raw_forwarder_are_reported_without_a_verdict() -> None:
    raw = {x["figure"]: x["raw_value"] for x in br.verdicts(result())}
    assert raw == pytest.approx(
        {
            "rps_ratio": 0.50,
            "quota_rps_ratio": 0.40,
            "p50_over_forwarder_ms": 0.30,
            "quota_p50_over_forwarder_ms": 0.60,
            "ttft_added_p50_ms": 0.79,  # against the upstream: the same whichever forwarder
            "p99_ratio": 2.9,
        }
    )
    assert br.figures(result(), "forwarder")["rps_ratio"] == pytest.approx(0.50)


def test_a_raw_forwarder_figure_moves_no_verdict() -> None:
    inside = result(raw_rps_ratio=0.99, raw_quota_rps_ratio=0.99, raw_p50_over_ms=0.0, raw_p99=9.0)
    assert [x["met"] for x in br.verdicts(inside)] == [x["met"] for x in br.verdicts(result())]


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
    line = next(ln for ln in br.table(result(**override)).splitlines() if "NOT MET" in ln)
    assert line.startswith(next(f.name for f in br.FLOORS if f.figure == figure))


def test_the_table_names_both_forwarders_and_puts_each_ratio_under_its_own() -> None:
    lines = br.table(result()).splitlines()
    head = lines[0].split("  ")
    assert [c.strip() for c in head if c.strip()][1:] == [
        "upstream",
        "raw ASGI fwd",
        "FastAPI fwd",
        "gateway",
        "gateway+quota",
    ]
    header = next(ln for ln in lines if ln.startswith("floor "))
    assert header.index("vs FastAPI fwd") < header.index("verdict") < header.index("vs raw ASGI fwd")
    text = "\n".join(lines)
    assert "verdicts against the FastAPI + aiohttp forwarder" in text
    assert "against the raw ASGI forwarder (the platform's limit, no floor)" in text
    rps = next(ln for ln in lines if ln.startswith("RPS @32, without limits"))
    assert rps.index("86.0 %") < rps.index("met") < rps.index("50.0 %")
    p50 = next(ln for ln in lines if ln.startswith("added p50 @1 over the forwarder's, without limits"))
    assert p50.index("+0.140 ms") < p50.index("met") < p50.index("+0.300 ms")
    ttft = next(ln for ln in lines if ln.startswith("streaming TTFT"))
    assert ttft.rstrip().endswith("(vs upstream)")


def test_the_table_shows_ratios_as_shares_and_the_store() -> None:
    text = br.table(result())
    assert "86.0 %" in text and ">= 85.0 %" in text
    assert "+0.140 ms" in text and "<= 0.150 ms" in text
    assert "1.45x" in text and "2.90x" in text
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


def test_rounds_alternate_their_order_so_every_system_runs_first_and_last_equally() -> None:
    names = ["forwarder", "forwarder_fastapi", "gateway", "gateway_quota"]
    orders = [br.round_order(names, i) for i in range(6)]
    assert orders[0] == names and orders[1] == names[::-1] and orders[2] == names
    for n in names:  # the sum of a system's positions is the same for all: a linear drift weighs on each alike
        assert sum(o.index(n) for o in orders) == 3 * (len(names) - 1)


def test_a_core_whose_speed_moved_during_the_run_is_said_and_steady_cores_are_not() -> None:
    steady, moved = result(), result()
    # core 1 steadily 1.6x slower than core 0: two different cores, not a change over time
    steady["speed_loop_ms"] = {"0": [10.0, 11.0, 12.0, 12.4], "1": [16.0, 16.5, 17.0, 16.2]}
    moved["speed_loop_ms"] = {"0": [10.0, 10.2, 10.1, 10.3], "1": [10.0, 11.0, 19.0, 12.0]}  # 1.90x on core 1
    assert br.speed_note(steady["speed_loop_ms"]) is None
    line = "(a fixed CPU loop timed 4 times during the run, the fastest of 3 tries each: core 0 10.0 to 12.4 ms, "
    assert line + "core 1 16.0 to 17.0 ms)" in br.table(steady)
    assert "NOTE" not in br.table(steady)
    note = "NOTE: the machine's speed moved during the run (a fixed CPU loop on core 1 took 10.0 to 19.0 ms, 1.90x"
    assert note in br.table(moved)
    one_core = {"any": [10.0, 13.0]}
    assert "(a fixed CPU loop on" not in (br.speed_note(one_core) or "") and "took 10.0 to 13.0 ms" in (
        br.speed_note(one_core) or ""
    )
    assert br.speed_note({}) is None and br.speed_note({"0": [10.0]}) is None
    assert "fixed CPU loop" not in br.table(result())
