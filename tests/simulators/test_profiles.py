"""Shipped profiles, profiles from dicts (with ``base`` and ``scale``), validation, and the control endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.clock import FakeClock
from simulators import ProfileError, list_profiles, load_profile
from simulators.profile import Outage, profile_from_dict
from tests.simulators.conftest import SimFactory


def test_every_shipped_profile_loads_and_says_what_it_is() -> None:
    names = list_profiles()
    assert {"instant", "openai-gpt-4o", "vllm-8b-h100", "openai-brownout"} <= set(names)
    for name in names:
        p = load_profile(name)
        assert p.name == name and p.description


def test_vllm_8b_h100_defaults() -> None:
    p = load_profile("vllm-8b-h100")
    assert p.capacity.max_num_seqs == 16 and p.capacity.time_factor_under_load == 2.0
    assert p.latency.inter_token_latency == 12 and p.latency.inter_token_latency_std_dev == 2


def test_dict_with_base_scale_and_aliases() -> None:
    raw = {
        "base": "openai-gpt-4o",
        "latency": {"inter_token_latency": 20},
        "timeline": {"scale": 2, "phases": [{"type": "outage", "start_s": 5, "end_s": 10, "mode": 503}]},
    }
    p = load_profile(raw)
    assert p.model == "gpt-4o" and p.latency.inter_token_latency == 20
    assert p.latency.time_to_first_token == 840  # inherited
    assert p.timeline.scale == 2
    ph = p.timeline.phases[0]
    assert isinstance(ph, Outage) and ph.mode == "overloaded"
    assert load_profile(raw, scale=0.5).timeline.scale == 0.5


def test_phase_types_may_be_kebab_case() -> None:
    p = load_profile({"timeline": [{"type": "latency-spike", "factor": 2}]})
    assert p.timeline.phases[0].type == "latency_spike"


@pytest.mark.parametrize(
    "raw",
    [
        {"latency": {"time-to-first-token": -1}},
        {"timeline": [{"type": "outage", "mode": "explode"}]},
        {"timeline": [{"type": "budget_exhaustion"}]},
        {"timeline": [{"type": "nope"}]},
        {"unknown-knob": 1},
        {"base": "no-such-profile"},
        {"base": "../simulators/profiles/instant"},
        {"base": ["instant"]},
        {"timeline": ["outage"]},
    ],
)
def test_invalid_profiles_are_refused_with_a_message(raw: dict[str, Any]) -> None:
    with pytest.raises(ProfileError):
        load_profile(raw)


def test_unknown_profile_name() -> None:
    with pytest.raises(ProfileError, match="known:"):
        load_profile("no-such-profile")


async def test_control_endpoint_is_off_by_default(make_sim: SimFactory) -> None:
    sim = make_sim("openai")
    assert (await sim.http.post("/_sim/profile", json={"profile": "openai-outage-503"})).status_code == 404
    assert (await sim.http.get("/_sim/decisions")).status_code == 404


async def test_control_endpoint_switches_profile_and_restarts_the_timeline(make_sim: SimFactory) -> None:
    clock = FakeClock()
    sim = make_sim("openai", control=True, clock=clock)
    assert (await sim.chat()).status_code == 200
    clock.advance(100)
    resp = await sim.http.post(
        "/_sim/profile", json={"profile": {"base": "instant", "timeline": [{"type": "outage", "end_s": 5}]}}
    )
    assert resp.status_code == 200
    assert (await sim.chat()).status_code == 503  # t = 0 on the new timeline
    clock.advance(5)
    assert (await sim.chat()).status_code == 200
    log = (await sim.http.get("/_sim/decisions")).json()
    assert [d["seq"] for d in log["decisions"]] == [0, 1, 2]
    assert (await sim.http.get("/_sim/profile")).json()["timeline"]["phases"][0]["type"] == "outage"
    bad = await sim.http.post("/_sim/profile", json={"profile": "../../etc/passwd"})
    assert bad.status_code == 400
    bad = await sim.http.post("/_sim/profile", json={"profile": {"latency": {"inter-token-latency": "x"}}})
    assert bad.status_code == 400 and "inter-token-latency" in bad.json()["error"]["message"]


async def test_control_reset_starts_afresh(make_sim: SimFactory) -> None:
    clock = FakeClock()
    prof = {
        "base": "instant",
        "timeline": [{"type": "outage", "start_s": 10, "end_s": 20}, {"type": "rate_limit", "rpm": 2}],
    }
    sim = make_sim("vllm", prof, control=True, clock=clock, seed=4)
    first = (await sim.chat()).json()
    assert (await sim.chat()).status_code == 200
    assert (await sim.chat()).status_code == 429  # the rpm bucket is empty
    clock.advance(12)
    assert (await sim.chat()).status_code == 503
    resp = await sim.http.post("/_sim/reset")
    assert resp.status_code == 200 and resp.json() == {"profile": "custom", "seed": 4, "seq": 0}
    again = (await sim.chat()).json()  # t = 0 again, seq 0 again, a full bucket
    assert again["id"] == first["id"] and again["choices"] == first["choices"]
    assert [d["seq"] for d in (await sim.http.get("/_sim/decisions")).json()["decisions"]] == [0]
    assert (
        'vllm:request_success_total{model_name="sim-instant",finished_reason="stop"} 1'
        in (await sim.http.get("/metrics")).text
    )
    assert (await sim.http.post("/_sim/reset", json={"seed": 5})).json()["seed"] == 5
    assert (await sim.chat()).json()["id"] != first["id"]
    for bad in ({"seed": 1.5}, {"seed": True}, [1]):
        assert (await sim.http.post("/_sim/reset", json=bad)).status_code == 400
    assert (await sim.http.post("/_sim/reset", content=b"{")).status_code == 400


def test_phase_windows_have_one_spelling_start_s_end_s() -> None:
    expected = r"timeline\.phases\.0\.outage: .*spelled start_s/end_s .*write end_s, start_s, not end, start"
    with pytest.raises(ProfileError, match=expected):
        profile_from_dict({"base": "instant", "timeline": [{"type": "outage", "start": 5, "end": 10}]})
    ok = profile_from_dict({"base": "instant", "timeline": [{"type": "outage", "start_s": 5, "end_s": 10}]})
    assert (ok.timeline.phases[0].start_s, ok.timeline.phases[0].end_s) == (5, 10)
