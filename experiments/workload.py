"""The workload: a seeded open-loop arrival process and the request mix, shared by replay and locust.

Arrivals of each load phase and spike are a Poisson process (thinning for ramps), each from its own named RNG
stream, so adding a spike does not move the arrivals of the phases. The consumer of an arrival is drawn from the
phase's ``mix`` (else the consumers' ``share``) unless the spike names one. Token counts follow the request mix.
Everything is a pure function of the scenario and the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from experiments.scenario import ConsumerSpec, Dist, RequestMix, Scenario
from gateway.rng import Rng

_WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven", "wizards")


@dataclass(frozen=True, slots=True)
class Arrival:
    idx: int
    t: float  # seconds since the run started
    consumer: ConsumerSpec
    stream: bool
    prompt_tokens: int
    max_tokens: int


def draw(dist: Dist, rng: Rng) -> int:
    if dist.sd <= 0:
        x = dist.mean
    elif dist.distribution == "lognormal":
        sigma2 = math.log(1 + (dist.sd / dist.mean) ** 2)
        x = rng.lognormvariate(math.log(dist.mean) - sigma2 / 2, math.sqrt(sigma2))
    else:
        x = rng.gauss(dist.mean, dist.sd)
    n = round(x)
    n = max(dist.min, n)
    return min(dist.max, n) if dist.max is not None else n


def _poisson(rng: Rng, start: float, end: float, peak: float, rate: Any) -> list[float]:
    out: list[float] = []
    if peak <= 0:
        return out
    t = start
    while True:
        t += rng.expovariate(peak)
        if t >= end:
            return out
        if rng.random() * peak <= rate(t):
            out.append(t)


def arrival_times(sc: Scenario, seed: int) -> list[tuple[float, str | None, str | None]]:
    """(t, consumer forced by a spike or None, phase name) for every arrival, in time order."""
    root = Rng(seed).child("arrivals")
    events: list[tuple[float, str | None, str | None]] = []
    for i, ph in enumerate(sc.load.phases):
        times = _poisson(root.child(f"phase/{i}"), ph.start_s, ph.end_s, ph.peak(), ph.rate)
        events.extend((t, None, ph.name) for t in times)
    for i, sp in enumerate(sc.load.spikes):
        times = _poisson(root.child(f"spike/{i}"), sp.start_s, sp.end_s, sp.rps, lambda _t, r=sp.rps: r)
        events.extend((t, sp.consumer, None) for t in times)
    events.sort(key=lambda e: e[0])
    return events


def pick_consumer(sc: Scenario, t: float, rng: Rng) -> ConsumerSpec:
    ph = sc.load.phase_at(t)
    shares = ph.mix if ph is not None and ph.mix else {c.name: c.share for c in sc.consumers}
    names = [c.name for c in sc.consumers if shares.get(c.name, 0) > 0]
    (name,) = rng.choices(names, weights=[shares[n] for n in names])
    return next(c for c in sc.consumers if c.name == name)


def arrivals(sc: Scenario, seed: int) -> list[Arrival]:
    mix_rng = Rng(seed).child("request-mix")
    out = []
    for idx, (t, forced, _) in enumerate(arrival_times(sc, seed)):
        consumer = next(c for c in sc.consumers if c.name == forced) if forced else pick_consumer(sc, t, mix_rng)
        stream, prompt, max_tokens = sample_request(sc.request_mix, mix_rng)
        out.append(Arrival(idx, t, consumer, stream, prompt, max_tokens))
    return out


def sample_request(mix: RequestMix, rng: Rng) -> tuple[bool, int, int]:
    """(stream, prompt tokens, max_tokens) for one request."""
    stream = rng.random() < mix.stream_share
    return stream, draw(mix.prompt_tokens, rng), draw(mix.max_tokens, rng)


def prompt_text(tokens: int, salt: int) -> str:
    """About ``tokens`` prompt tokens as the simulators count them (4 characters a token, 6 of overhead)."""
    chars = max(1, 4 * (tokens - 6))
    words: list[str] = [f"#{salt}"]
    size = len(words[0])
    i = salt
    while size < chars:
        w = _WORDS[i % len(_WORDS)]
        words.append(w)
        size += len(w) + 1
        i += 7
    return " ".join(words)[:chars]


def request_body(mix: RequestMix, stream: bool, prompt_tokens: int, max_tokens: int, salt: int) -> bytes:
    body: dict[str, Any] = {
        "model": mix.model,
        "messages": [{"role": "user", "content": prompt_text(prompt_tokens, salt)}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
        if mix.include_usage:
            body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


def request_headers(mix: RequestMix, key: str, request_id: str, deadline_header: str) -> dict[str, str]:
    h = {"authorization": f"Bearer {key}", "content-type": "application/json", "x-request-id": request_id}
    if mix.deadline_s is not None:
        h[deadline_header] = f"{mix.deadline_s:g}"
    return h
