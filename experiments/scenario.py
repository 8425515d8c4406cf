"""The scenario file: one YAML file in ``experiments/scenarios/`` names a failure and how to provoke it.

Times are seconds since the run started. Load is an arrival rate (requests per second) in phases (a step, or
a ramp from ``rps`` to ``rps_to``), plus spikes added on top (optionally all from one consumer). Upstream fault
timelines use the simulator's phase vocabulary (simulators/profile.py). ``faults`` lists the injected faults
for the reports; those of the upstream timelines are derived, state-store faults are written here.
``slo``, ``slo_gate`` and ``expectations`` are the reports' own schemas (reports.slo, reports.expectations).

:func:`load_scenario` validates a file and raises :class:`ScenarioError` naming the file and every problem at
once, each by its path (``load.phases[0].end_s``; experiments/validate.py).
:func:`scaled` compresses every timeline of a scenario (the duration scale of real-time runs).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.settings.budget import Budget
from gateway.settings.quota import Limits
from reports.expectations import Expectation
from reports.slo import SloGate, SloSpec

SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"
STATE_STORE = "state_store"
NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class ScenarioError(ValueError):
    """A scenario is missing or invalid; the message names the file and every bad field."""


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Dist(_M):
    """A clamped distribution of integers (token counts)."""

    mean: float = Field(gt=0)
    sd: float = Field(default=0.0, ge=0)
    min: int = Field(default=1, ge=1)
    max: int | None = Field(default=None, ge=1)
    distribution: Literal["normal", "lognormal"] = "normal"


class ClientBehaviour(_M):
    """How a consumer's client reacts to failures: ``retries`` re-sends (aggressive clients: many, no backoff)."""

    retries: int = Field(default=0, ge=0, le=10)
    retry_on: list[int] = [429, 500, 502, 503, 504]
    backoff_s: float = Field(default=0.0, ge=0)
    idempotency_key: bool = Field(
        default=False, description="send one Idempotency-Key per logical request, the same on each of its retries"
    )


class ConsumerSpec(_M):
    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    key: str = Field(min_length=8, description="the API key the load generator sends (hashed in the config)")
    share: float = Field(default=1.0, ge=0, description="relative share of the base load")
    priority: int = Field(default=1, ge=0, le=9)
    tier: str = "default"
    limits: Limits | None = None
    budget: Budget | None = Field(default=None, description="the consumer's dollar budget (docs/KEYS.md)")
    client: ClientBehaviour = ClientBehaviour()


class RequestMix(_M):
    model: str = "gpt-4o-mini"
    stream_share: float = Field(default=0.5, ge=0, le=1)
    include_usage: bool = True
    prompt_tokens: Dist = Dist(mean=200, sd=80, max=2000)
    max_tokens: Dist = Dist(mean=96, sd=32, min=8, max=512)
    deadline_s: float | None = Field(default=None, gt=0, description="sent as the request-deadline header")


class LoadPhase(_M):
    name: str
    start_s: float = Field(ge=0)
    end_s: float = Field(gt=0)
    rps: float = Field(ge=0, description="arrivals per second (at start_s for a ramp)")
    rps_to: float | None = Field(default=None, ge=0, description="a linear ramp to this rate at end_s")
    mix: dict[str, float] | None = Field(default=None, description="consumer shares in this phase")

    def rate(self, t: float) -> float:
        if self.rps_to is None:
            return self.rps
        return self.rps + (self.rps_to - self.rps) * (t - self.start_s) / (self.end_s - self.start_s)

    def peak(self) -> float:
        return max(self.rps, self.rps_to or 0.0)


class Spike(_M):
    name: str = "spike"
    start_s: float = Field(ge=0)
    end_s: float = Field(gt=0)
    rps: float = Field(gt=0, description="arrivals per second added on top of the phase")
    consumer: str | None = Field(default=None, description="all of the spike from this consumer")


class Load(_M):
    phases: list[LoadPhase] = Field(min_length=1)
    spikes: list[Spike] = []
    pacing_s: float = Field(
        default=4.0, gt=0, description="real time: each locust user sends one request every pacing_s"
    )

    def phase_at(self, t: float) -> LoadPhase | None:
        return next((p for p in self.phases if p.start_s <= t < p.end_s), None)

    def rate_at(self, t: float) -> float:
        ph = self.phase_at(t)
        base = ph.rate(t) if ph else 0.0
        return base + sum(s.rps for s in self.spikes if s.start_s <= t < s.end_s)


class UpstreamSpec(_M):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    flavour: Literal["openai", "vllm", "gemini"]
    model: str = Field(description="the model name the upstream serves")
    weight: float = Field(default=1.0, ge=0)
    profile: str = Field(description="base simulator profile (simulators/profiles/<name>.yaml)")
    profile_overrides: dict[str, Any] = Field(default={}, description="merged over the base profile")
    timeline: list[dict[str, Any]] = Field(default=[], description="simulator phases: the fault timeline")
    timeline_scale: float = Field(default=1.0, gt=0, description="multiplies the timeline's windows")
    accepted_keys: list[str] | None = Field(default=None, description="keys the simulator accepts; none = any")
    unreachable: bool = Field(default=False, description="misconfiguration: the gateway gets a dead URL")


class FaultSpec(_M):
    upstream: str = Field(description="an upstream name or 'state_store'")
    kind: str
    start_s: float = Field(ge=0)
    end_s: float | None = None
    note: str | None = None


class ReloadSpec(_M):
    """The gateway's configuration rewritten and reloaded mid-run, as an operator's SIGHUP would (replay: the
    gateway's reloader; live: SIGHUP to the gateway process). docs/OPERATIONS.md, "Reload"."""

    at_s: float = Field(ge=0)
    weights: dict[str, float] = Field(default={}, description="upstream name -> its route's new weight (0: drained)")
    gateway: dict[str, Any] = Field(default={}, description="overlay merged over the configuration in force")
    note: str | None = None


class Scenario(_M):
    name: str = Field(pattern=NAME)
    description: str = Field(min_length=10, description="which real failure this models")
    seed: int = 0
    duration_s: float = Field(gt=0, le=3600)
    load: Load
    consumers: list[ConsumerSpec] = Field(min_length=1)
    request_mix: RequestMix = RequestMix()
    upstreams: list[UpstreamSpec] = Field(min_length=1)
    gateway: dict[str, Any] = Field(default={}, description="overlay merged into the generated gateway config")
    faults: list[FaultSpec] = []
    reloads: list[ReloadSpec] = Field(default=[], description="configuration reloads mid-run, in time order")
    slo: SloSpec = SloSpec()
    slo_gate: SloGate = SloGate()
    expectations: list[Expectation] = []

    def upstream(self, name: str) -> UpstreamSpec:
        return next(u for u in self.upstreams if u.name == name)

    def all_faults(self) -> list[dict[str, Any]]:
        """Faults for the reports: the upstream timelines' phases (time-windowed ones) plus ``faults``."""
        out: list[dict[str, Any]] = []
        for u in self.upstreams:
            scale = u.timeline_scale
            for ph in u.timeline:
                kind = str(ph.get("type", "fault")).replace("-", "_")
                mode = ph.get("mode")
                start = float(ph.get("start_s", 0.0)) * scale
                end = ph.get("end_s")
                out.append(
                    {
                        "upstream": u.name,
                        "kind": f"{kind}:{mode}" if mode is not None else kind,
                        "start_s": start,
                        "end_s": min(float(end) * scale, self.duration_s) if end is not None else self.duration_s,
                        "note": ph.get("name"),
                    }
                )
            if u.unreachable or u.accepted_keys is not None:
                kind = "misconfig:url" if u.unreachable else "misconfig:key"
                out.append({"upstream": u.name, "kind": kind, "start_s": 0.0, "end_s": self.duration_s, "note": None})
        for f in self.faults:
            d = f.model_dump()
            d["end_s"] = d["end_s"] if d["end_s"] is not None else self.duration_s
            out.append(d)
        return sorted(out, key=lambda f: (f["start_s"], f["upstream"], f["kind"]))

    def resolved(self, **extra: Any) -> dict[str, Any]:
        """The scenario as the run directory records it (``resolved_scenario.json``)."""
        d = self.model_dump(mode="json")
        d["faults"] = self.all_faults()
        d.update(extra)
        return d


def scaled(sc: Scenario, factor: float) -> Scenario:
    """Every timeline x ``factor`` (duration, load, spikes, faults, reloads, simulator timelines, expectation
    windows), and
    the bounds of outcome counts with them (a minimum rounded down, never below one if it was one or more; a
    maximum rounded up).

    Gateway reaction times (breaker cool-off, timeouts) are not scaled: they are what the scenario observes.
    """
    if factor == 1.0:
        return sc

    def f(x: float | None) -> float | None:
        return None if x is None else x * factor

    load = sc.load.model_copy(
        update={
            "phases": [p.model_copy(update={"start_s": f(p.start_s), "end_s": f(p.end_s)}) for p in sc.load.phases],
            "spikes": [s.model_copy(update={"start_s": f(s.start_s), "end_s": f(s.end_s)}) for s in sc.load.spikes],
        }
    )
    ups = [u.model_copy(update={"timeline_scale": u.timeline_scale * factor}) for u in sc.upstreams]
    faults = [x.model_copy(update={"start_s": f(x.start_s), "end_s": f(x.end_s)}) for x in sc.faults]
    reloads = [r.model_copy(update={"at_s": r.at_s * factor}) for r in sc.reloads]
    exps = []
    for e in sc.expectations:
        upd: dict[str, Any] = {}
        window = getattr(e, "window", None)  # not every kind of expectation has a window or an after_s
        if window is not None:
            upd["window"] = (window[0] * factor, window[1] * factor)
        after_s = getattr(e, "after_s", None)
        if after_s:
            upd["after_s"] = after_s * factor
        if e.kind == "outcome_count":  # counts grow with the time the load runs; "at least one" stays one
            if e.min is not None:
                upd["min"] = max(min(e.min, 1), math.floor(e.min * factor))
            if e.max is not None:
                upd["max"] = math.ceil(e.max * factor)
        exps.append(e.model_copy(update=upd))
    return sc.model_copy(
        update={
            "duration_s": sc.duration_s * factor,
            "load": load,
            "upstreams": ups,
            "faults": faults,
            "reloads": reloads,
            "expectations": exps,
        }
    )
