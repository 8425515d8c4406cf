"""The scenario schema: bad files fail with the file and the field named; every shipped scenario loads, fits a
real-time run, and together they cover every failure mode the testbed exists to show."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from experiments.scenario import SCENARIOS_DIR, STATE_STORE, Scenario, ScenarioError, scaled
from experiments.scenario_files import list_scenarios, load_scenario
from experiments.workload import arrivals

GOOD: dict[str, Any] = {
    "name": "tiny",
    "description": "A tiny scenario for the schema tests.",
    "seed": 3,
    "duration_s": 60,
    "load": {"phases": [{"name": "steady", "start_s": 0, "end_s": 60, "rps": 2}]},
    "consumers": [{"name": "app", "key": "fl-app-0123456789"}],
    "upstreams": [{"name": "openai", "flavour": "openai", "model": "gpt-4o-mini", "profile": "openai-gpt-4o-mini"}],
    "expectations": [{"kind": "min_availability", "value": 0.99}],
}


def _with(path: str, value: Any) -> dict[str, Any]:
    """GOOD with ``value`` set at a dotted path (list indices as numbers); ``...`` deletes the key."""
    raw = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node: Any = raw
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    key: Any = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return raw


def _write(tmp_path: Path, raw: Any, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw))
    return path


def test_the_reference_file_loads(tmp_path: Path) -> None:
    sc = load_scenario(_write(tmp_path, GOOD, "tiny.yaml"))
    assert (sc.name, sc.duration_s, sc.upstreams[0].name) == ("tiny", 60, "openai")


BAD: list[tuple[str, Any, list[str]]] = [
    ("missing duration", _with("duration_s", ...), ["duration_s", "Field required"]),
    ("misspelt field", {**GOOD, "durration_s": 60}, ["durration_s", "Extra inputs are not permitted"]),
    ("negative duration", _with("duration_s", -1), ["duration_s", "greater than 0"]),
    ("bad name", _with("name", "Has Spaces"), ["name", "pattern"]),
    ("short description", _with("description", "short"), ["description"]),
    ("phase past the end", _with("load.phases.0.end_s", 90), ["load.phases[0].end_s: 90 is past duration_s (60)"]),
    (
        "phase ends before it starts",
        _with("load.phases.0.start_s", 60),
        ["load.phases[0]: start_s (60) must be before end_s (60)"],
    ),
    ("no phases", _with("load.phases", []), ["load.phases: ", "at least 1"]),
    (
        "unknown flavour",
        _with("upstreams.0.flavour", "anthropic"),
        ["upstreams[0].flavour: ", "'openai', 'vllm' or 'gemini'"],
    ),
    ("unknown profile", _with("upstreams.0.profile", "no-such-profile"), ["no-such-profile"]),
    (
        "unknown consumer in a mix",
        _with("load.phases.0.mix", {"nobody": 1.0}),
        ["load.phases[0].mix: unknown consumer 'nobody'"],
    ),
    (
        "spike from an unknown consumer",
        _with("load.spikes", [{"start_s": 1, "end_s": 2, "rps": 1, "consumer": "ghost"}]),
        ["load.spikes[0].consumer: unknown consumer 'ghost'"],
    ),
    ("duplicate upstreams", _with("upstreams", GOOD["upstreams"] * 2), ["upstreams: duplicates ['openai']"]),
    ("short key", _with("consumers.0.key", "abc"), ["consumers[0].key: ", "at least 8"]),
    ("client retries", _with("consumers.0.client", {"retries": 99}), ["consumers[0].client.retries: "]),
    (
        "fault on an unknown upstream",
        _with("faults", [{"upstream": "redis", "kind": "outage", "start_s": 1}]),
        ["faults[0].upstream: unknown upstream 'redis'"],
    ),
    ("unknown expectation kind", _with("expectations.0.kind", "vibes"), ["expectations[0]: ", "vibes"]),
    (
        "expectation on an unknown provider",
        _with("expectations", [{"kind": "breaker_stays_closed", "provider": "azure"}]),
        ["expectations[0].provider: unknown provider 'azure'"],
    ),
    (
        "expectation field typo",
        _with("expectations.0", {"kind": "min_availability", "valeu": 0.9}),
        ["expectations[0].valeu (min_availability): "],
    ),
    ("bad gateway overlay", _with("gateway", {"router": {"retry": {"max_attempts": "many"}}}), ["max_attempts"]),
    ("bad slo", _with("slo", {"availability": 2}), ["slo.availability: "]),
    (
        "reload of an unknown upstream",
        _with("reloads", [{"at_s": 10, "weights": {"azure": 0}}]),
        ["reloads[0].weights: unknown upstream 'azure'"],
    ),
    ("reload past the end", _with("reloads", [{"at_s": 61}]), ["reloads[0].at_s: 61 is past duration_s (60)"]),
    (
        "reload to an invalid configuration",
        _with("reloads", [{"at_s": 10, "weights": {"openai": -1}}]),
        ["reloads[0]", "models.0.routes.0.weight"],
    ),
]


@pytest.mark.parametrize(("raw", "needles"), [(raw, needles) for _, raw, needles in BAD], ids=[c[0] for c in BAD])
def test_a_bad_scenario_names_the_file_and_the_field(tmp_path: Path, raw: Any, needles: list[str]) -> None:
    path = _write(tmp_path, raw)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    message = str(err.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message


def test_every_problem_is_reported_at_once_in_one_path_notation(tmp_path: Path) -> None:
    raw = _with("duration_s", 30)  # the phase now ends past the run
    raw["consumers"][0]["key"] = "abc"  # a schema error
    raw["upstreams"][0]["profile"] = "no-such-profile"  # a profile error
    raw["upstreams"].append(  # a second upstream, its timeline in the old spelling
        {
            "name": "vllm",
            "flavour": "vllm",
            "model": "m",
            "profile": "vllm-8b-h100",
            "timeline": [{"type": "outage", "start": 5}],
        }
    )
    raw["expectations"] = [{"kind": "breaker_stays_closed", "provider": "azure"}, {"kind": "min_availability"}]
    path = _write(tmp_path, raw)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    lines = str(err.value).splitlines()
    assert lines[0] == f"{path}: invalid scenario (6 problems):"
    assert lines[1:] == [
        "  consumers[0].key: String should have at least 8 characters",
        "  expectations[1].value (min_availability): Field required",
        "  load.phases[0].end_s: 60 is past duration_s (30)",
        "  expectations[0].provider: unknown provider 'azure'",
        "  upstreams[0].profile: unknown base profile 'no-such-profile'; known: " + lines[5].split("known: ", 1)[1],
        "  upstreams[1].timeline[0] (outage): time fields are spelled start_s/end_s (seconds): "
        "write start_s, not start",
    ]


@pytest.mark.parametrize(
    ("text", "needle"),
    [("name: [unclosed", "not valid YAML"), ("- a list\n- not a mapping\n", "a scenario is a mapping")],
)
def test_a_file_that_is_not_a_scenario(tmp_path: Path, text: str, needle: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioError, match=needle) as err:
        load_scenario(path)
    assert str(path) in str(err.value)


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ScenarioError) as err:
        load_scenario("no-such-scenario")
    message = str(err.value)
    assert "'no-such-scenario'" in message
    assert all(name in message for name in list_scenarios())


@pytest.mark.parametrize("name", list_scenarios())
def test_every_shipped_scenario_loads_and_fits_a_real_time_run(name: str) -> None:
    sc = load_scenario(name)
    assert sc.name == name == (SCENARIOS_DIR / f"{name}.yaml").stem
    assert sc.duration_s <= 150, "a real-time run (processes starting, load, drain) should take about three minutes"
    assert sc.expectations, "a scenario states what it expects"
    assert sc.load.phases[0].start_s == 0 and max(p.end_s for p in sc.load.phases) == sc.duration_s
    assert arrivals(sc, sc.seed), "a scenario sends requests"


def test_the_shipped_scenarios_have_distinct_seeds() -> None:
    seeds = [load_scenario(n).seed for n in list_scenarios()]
    assert len(set(seeds)) == len(seeds)


def _phases(sc: Scenario, kind: str) -> list[dict[str, Any]]:
    return [ph for u in sc.upstreams for ph in u.timeline if ph.get("type") == kind]


def _healthy_other(sc: Scenario) -> bool:
    return any(not u.timeline and not u.unreachable and u.accepted_keys is None for u in sc.upstreams)


def _noisy(sc: Scenario) -> bool:
    limited = {c.name for c in sc.consumers if c.limits is not None}
    flood = any(sp.consumer in limited for sp in sc.load.spikes)
    return flood and len(sc.consumers) - len(limited) >= 2


def _overload(sc: Scenario) -> bool:
    rates = [p.peak() for p in sc.load.phases]
    return "shedding" in sc.gateway.get("router", {}) and max(rates) >= 2 * min(rates) > 0


def _saturation(sc: Scenario) -> bool:
    capacity = any("max-waiting-queue-length" in u.profile_overrides.get("capacity", {}) for u in sc.upstreams)
    return capacity and any(p.rps_to is not None for p in sc.load.phases)


# Each failure mode of the project brief, as a property of a scenario's content (not of its name).
FAILURE_MODES: dict[str, Callable[[Scenario], bool]] = {
    "provider outage": lambda sc: any(p.get("mode") == 503 for p in _phases(sc, "outage")) and _healthy_other(sc),
    "latency spike": lambda sc: bool(_phases(sc, "latency_spike")),
    "partial errors": lambda sc: any(0 < p.get("failure-injection-rate", 0) < 1 for p in _phases(sc, "degradation")),
    "provider budget exhaustion": lambda sc: bool(_phases(sc, "budget_exhaustion")),
    "consumer budget exhaustion": lambda sc: any(c.limits is not None and c.limits.tpd for c in sc.consumers),
    "noisy neighbour": _noisy,
    "retry storm": lambda sc: (
        any(c.client.retries >= 2 and c.client.backoff_s == 0 for c in sc.consumers) and bool(_phases(sc, "outage"))
    ),
    "overload and shedding": _overload,
    "saturation": _saturation,
    "flapping": lambda sc: bool(_phases(sc, "flapping")),
    "mid-stream cut": lambda sc: any("cut-after-tokens" in p for u in sc.upstreams for p in u.timeline),
    "state store outage": lambda sc: any(f.upstream == STATE_STORE for f in sc.faults),
    "misconfiguration": lambda sc: any(u.unreachable or u.accepted_keys is not None for u in sc.upstreams),
    "configuration reload": lambda sc: bool(sc.reloads),
}


@pytest.fixture(scope="module")
def shipped() -> list[Scenario]:
    return [load_scenario(n) for n in list_scenarios()]


@pytest.mark.parametrize("mode", FAILURE_MODES)
def test_every_failure_mode_is_covered_by_a_scenario(mode: str, shipped: list[Scenario]) -> None:
    covering = [sc.name for sc in shipped if FAILURE_MODES[mode](sc)]
    assert covering, f"no shipped scenario models {mode}"


def test_scaled_compresses_every_timeline_and_keeps_the_gateway_reactions() -> None:
    sc = load_scenario("openai-outage")
    half = scaled(sc, 0.5)
    assert half.duration_s == sc.duration_s / 2
    assert [(p.start_s, p.end_s) for p in half.load.phases] == [(p.start_s / 2, p.end_s / 2) for p in sc.load.phases]
    assert half.upstream("openai").timeline_scale == 0.5
    assert [(f["start_s"], f["end_s"]) for f in half.all_faults()] == [(15.0, 45.0)]
    opens = [e for e in half.expectations if e.kind == "breaker_opens_within"]
    assert [(e.after_s, e.within_s) for e in opens] == [(15.0, 10.0)]  # the breaker's own delay is not scaled
    assert half.gateway == sc.gateway
    assert scaled(sc, 1.0) is sc
    reload = load_scenario("config-reload")
    assert [r.at_s for r in scaled(reload, 0.5).reloads] == [r.at_s / 2 for r in reload.reloads] == [25.0, 55.0]


def test_scaled_outcome_counts_follow_the_load_time() -> None:
    """A quarter of the run sees a quarter of the rejections: the count bounds scale with the timelines."""
    sc = load_scenario("noisy-neighbor")
    counts = {e.consumer: (e.min, e.max) for e in scaled(sc, 0.25).expectations if e.kind == "outcome_count"}
    assert counts == {"noisy": (75, None), "alice": (None, 0)}
    tiny = {e.consumer: e.min for e in scaled(sc, 0.001).expectations if e.kind == "outcome_count"}
    assert tiny["noisy"] == 1  # at least one stays at least one
