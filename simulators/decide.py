"""The decision core: what happens to one request, as a pure function of the profile, the request, its
sequence number, the simulator time it arrived at, its random stream and the rate/budget counters.

Order of checks: api key (401) -> served model (404) -> context length (400) -> outage / flapping down ->
rate limits (429 requests|tokens) -> budget exhaustion (429 insufficient_quota) -> degradation (random
failure types) -> success (output length, TTFT, inter-token gaps, content, spikes, stalls and cuts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.rng import Rng
from simulators.failures import ErrorInfo, go_duration
from simulators.profile import (
    BudgetExhaustion,
    Degradation,
    Flapping,
    LatencySpike,
    Outage,
    Profile,
    RateLimit,
    RateLimits,
    SlowStream,
)
from simulators.sampling import content_tokens, draw, echo_tokens


@dataclass(slots=True)
class Request:
    model: str
    prompt_tokens: int
    max_tokens: int | None = None
    stream: bool = False
    api_key: str | None = None
    prompt_text: str = ""


@dataclass(slots=True)
class Decision:
    seq: int
    t: float  # seconds since the simulator (re)started, when the request arrived
    response_id: str
    error: ErrorInfo | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    phases: tuple[int, ...] = ()
    completion_tokens: int = 0
    finish_reason: str = "stop"
    ttft: float = 0.0  # s, before queue wait and load factor
    itl: float = 0.0  # s, the constant gap when ``itls`` is None
    itls: list[float] | None = None
    tokens: list[str] = field(default_factory=list)
    stall_after: int | None = None
    stall_seconds: float = 0.0
    cut_after: int | None = None
    cut_mode: str = "reset"
    hang_timeout: float = 0.0
    decode_s: float = 0.0  # s, sum of the drawn gaps
    served: bool = False  # set once the answer (or its cut) is accounted for

    def release(self) -> None:
        """Drop the per-token lists once served; the log record stays the same."""
        self.tokens = self.tokens[:8]
        self.itls = None

    def log(self) -> dict[str, Any]:
        """The decision as a plain record; equal records for equal (seed, backend, seq, time)."""
        return {
            "seq": self.seq,
            "t": round(self.t, 6),
            "id": self.response_id,
            "outcome": self.error.kind if self.error else "ok",
            "phases": list(self.phases),
            "completion_tokens": self.completion_tokens,
            "finish_reason": self.finish_reason,
            "ttft_ms": round(self.ttft * 1000, 3),
            "decode_ms": round(self.decode_s * 1000, 3),
            "stall": [self.stall_after, self.stall_seconds] if self.stall_after is not None else None,
            "cut": [self.cut_after, self.cut_mode] if self.cut_after is not None else None,
            "content": "".join(self.tokens[:8]),
        }


class Bucket:
    """A token bucket refilled continuously: ``capacity`` per minute, full at start."""

    __slots__ = ("capacity", "last", "level", "rate")

    def __init__(self, capacity: int, t: float) -> None:
        self.capacity = capacity
        self.rate = capacity / 60.0
        self.level = float(capacity)
        self.last = t

    def refill(self, t: float) -> None:
        if t > self.last:
            self.level = min(float(self.capacity), self.level + (t - self.last) * self.rate)
            self.last = t

    def wait_for(self, amount: float) -> float:
        return max(0.0, (amount - self.level) / self.rate)

    def reset_in(self) -> float:
        return (self.capacity - self.level) / self.rate


@dataclass(slots=True)
class Limiter:
    requests: Bucket | None
    tokens: Bucket | None

    def headers(self) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        for kind, b in (("requests", self.requests), ("tokens", self.tokens)):
            if b is not None:
                out += [
                    (f"x-ratelimit-limit-{kind}".encode(), str(b.capacity).encode()),
                    (f"x-ratelimit-remaining-{kind}".encode(), str(max(0, int(b.level))).encode()),
                    (f"x-ratelimit-reset-{kind}".encode(), go_duration(b.reset_in()).encode()),
                ]
        return out


@dataclass
class SimState:
    """Counters that persist across requests: rate-limit buckets and budget spend, keyed by phase index
    (-1 = the profile's base rate limits)."""

    limiters: dict[int, Limiter] = field(default_factory=dict)
    spent_tokens: dict[int, int] = field(default_factory=dict)
    spent_dollars: dict[int, float] = field(default_factory=dict)

    def limiter(self, key: int, spec: RateLimit | RateLimits, t: float) -> Limiter:
        lim = self.limiters.get(key)
        if lim is None:
            lim = Limiter(
                Bucket(spec.rpm, t) if spec.rpm else None,
                Bucket(spec.tpm, t) if spec.tpm else None,
            )
            self.limiters[key] = lim
        return lim


def _check_limit(lim: Limiter, t: float, cost: int, info: dict[str, Any]) -> ErrorInfo | None:
    checks: tuple[tuple[Literal["requests", "tokens"], Bucket | None, int], ...] = (
        ("requests", lim.requests, 1),
        ("tokens", lim.tokens, cost),
    )
    for kind, b, amount in checks:
        if b is None:
            continue
        b.refill(t)
        if b.level < amount:
            return ErrorInfo(
                kind="rate_limit",
                limit_kind=kind,
                limit=b.capacity,
                used=b.capacity - int(b.level),
                requested=amount,
                retry_after=b.wait_for(amount),
                **info,
            )
    if lim.requests is not None:
        lim.requests.level -= 1
    if lim.tokens is not None:
        lim.tokens.level -= cost
    return None


SCRIPTED_RPM = 500  # the limit a scripted 429 names when the profile sets no rpm of its own


def _scripted(kind: str, profile: Profile, base: dict[str, Any]) -> tuple[ErrorInfo, list[tuple[bytes, bytes]]]:
    """A failure forced by a phase. A scripted 429 looks like a request limit that is fully used for one more
    second: the profile's own ``rpm`` (else :data:`SCRIPTED_RPM`), with the headers OpenAI sends."""
    if kind != "rate_limit":
        return ErrorInfo(kind=kind, retry_after=1.0, **base), []
    rpm = profile.rate_limits.rpm or SCRIPTED_RPM
    info = ErrorInfo(kind=kind, limit_kind="requests", limit=rpm, used=rpm, requested=1, retry_after=1.0, **base)
    headers = [
        (b"x-ratelimit-limit-requests", str(rpm).encode()),
        (b"x-ratelimit-remaining-requests", b"0"),
        (b"x-ratelimit-reset-requests", b"1s"),
    ]
    return info, headers


# The rules of the simulated provider in the order they apply (each draws from the RNG in that order, so the
# replayed byte streams depend on it): one function keeps the order in one place.
def decide(profile: Profile, req: Request, seq: int, t: float, rng: Rng, state: SimState) -> Decision:  # noqa: C901
    d = Decision(seq=seq, t=t, response_id=rng.hex_id(12))
    base: dict[str, Any] = {"model": req.model, "organization": profile.organization}
    max_tokens = req.max_tokens if req.max_tokens is not None else profile.output.default_max_tokens

    if profile.api_keys is not None and req.api_key not in profile.api_keys:
        d.error = ErrorInfo(kind="invalid_api_key", **base)
        return d
    if profile.served_models and req.model not in profile.served_models:
        d.error = ErrorInfo(kind="model_not_found", **base)
        return d
    room = profile.max_model_len - req.prompt_tokens
    if (req.max_tokens is None and room <= 0) or (req.max_tokens is not None and req.max_tokens > room):
        d.error = ErrorInfo(
            kind="context_length",
            prompt_tokens=req.prompt_tokens,
            max_tokens=req.max_tokens or 0,
            max_model_len=profile.max_model_len,
            **base,
        )
        return d
    if req.max_tokens is None:
        max_tokens = min(max_tokens, room)

    tau = t / profile.timeline.scale
    active: list[int] = []
    for i, ph in enumerate(profile.timeline.phases):
        if ph.covers(tau, seq) and (ph.toxicity >= 1.0 or rng.random() < ph.toxicity):
            active.append(i)
    d.phases = tuple(active)
    phases = [(i, profile.timeline.phases[i]) for i in active]

    for _, ph in phases:
        down = isinstance(ph, Outage) or (isinstance(ph, Flapping) and ph.is_down(tau))
        if down and isinstance(ph, Outage | Flapping):
            d.error, d.headers = _scripted(ph.mode, profile, base)
            d.hang_timeout = ph.hang_timeout
            return d

    cost = req.prompt_tokens + max_tokens
    limiters: list[tuple[int, RateLimit | RateLimits]] = []
    if profile.rate_limits.rpm or profile.rate_limits.tpm:
        limiters.append((-1, profile.rate_limits))
    limiters += [(i, ph) for i, ph in phases if isinstance(ph, RateLimit)]
    for key, spec in limiters:
        lim = state.limiter(key, spec, t)
        err = _check_limit(lim, t, cost, base)
        d.headers = lim.headers()
        if err is not None:
            d.error = err
            return d

    budgets = [(i, ph) for i, ph in phases if isinstance(ph, BudgetExhaustion)]
    for i, ph in budgets:
        if (ph.after_tokens is not None and state.spent_tokens.get(i, 0) >= ph.after_tokens) or (
            ph.after_dollars is not None and state.spent_dollars.get(i, 0.0) >= ph.after_dollars
        ):
            d.error = ErrorInfo(kind="insufficient_quota", **base)
            return d

    for _, ph in phases:
        if isinstance(ph, Degradation) and rng.random() < ph.failure_injection_rate:
            kind = ph.failure_types[0] if len(ph.failure_types) == 1 else rng.choice(ph.failure_types)
            if kind == "context_length":
                info = dict(base, prompt_tokens=req.prompt_tokens, max_tokens=max_tokens)
                d.error = ErrorInfo(kind=kind, max_model_len=profile.max_model_len, **info)
            else:
                d.error, d.headers = _scripted(kind, profile, base)
            return d

    _success(profile, req, d, rng, max_tokens, phases)
    for i, _ in budgets:
        state.spent_tokens[i] = state.spent_tokens.get(i, 0) + req.prompt_tokens + d.completion_tokens
        dollars = (
            req.prompt_tokens * profile.prices.input_per_1m + d.completion_tokens * profile.prices.output_per_1m
        ) / 1e6
        state.spent_dollars[i] = state.spent_dollars.get(i, 0.0) + dollars
    return d


def _success(
    profile: Profile, req: Request, d: Decision, rng: Rng, max_tokens: int, phases: list[tuple[int, Any]]
) -> None:
    out, lat = profile.output, profile.latency
    if out.mode == "echo":
        d.tokens = echo_tokens(req.prompt_text, max_tokens)
        n = len(d.tokens)
        d.finish_reason = "length" if n >= max_tokens and n > 0 else "stop"
    else:
        want = max(1, round(draw(rng, out.output_tokens, out.output_tokens_std_dev, out.distribution)))
        n = min(want, max_tokens)
        d.finish_reason = "length" if want >= max_tokens else "stop"
        d.tokens = content_tokens(rng, n)
    d.completion_tokens = n

    ttft_ms = draw(rng, lat.time_to_first_token, lat.time_to_first_token_std_dev, lat.distribution)
    ttft_ms += req.prompt_tokens * lat.prefill_time_per_token
    itl_factor = 1.0
    for _, ph in phases:
        if isinstance(ph, LatencySpike):
            if ph.applies_to != "itl":
                ttft_ms = ttft_ms * ph.factor + ph.latency + (rng.uniform(-ph.jitter, ph.jitter) if ph.jitter else 0)
            if ph.applies_to != "ttft":
                itl_factor *= ph.factor
    d.ttft = max(0.0, ttft_ms) / 1000.0
    if lat.inter_token_latency_std_dev > 0 and n > 1:
        mean, sd, kind = lat.inter_token_latency, lat.inter_token_latency_std_dev, lat.distribution
        d.itls = [draw(rng, mean, sd, kind) * itl_factor / 1000.0 for _ in range(n - 1)]
        d.decode_s = sum(d.itls)
    else:
        d.itl = lat.inter_token_latency * itl_factor / 1000.0
        d.decode_s = d.itl * max(0, n - 1)

    for _, ph in phases:
        if isinstance(ph, SlowStream):
            if ph.stall_after_tokens is not None and d.stall_after is None:
                d.stall_after, d.stall_seconds = ph.stall_after_tokens, ph.stall_seconds
            if ph.cut_after_tokens is not None and d.cut_after is None:
                d.cut_after, d.cut_mode = ph.cut_after_tokens, ph.cut_mode
