"""Simulator profiles: a base latency/capacity/content model plus a timeline of fault phases.

A profile is a YAML file in ``simulators/profiles/`` or a plain dict (experiments embed one in a scenario).
Keys may be written kebab-case (``time-to-first-token``, as llm-d-inference-sim spells its flags) or
snake_case. Latencies are milliseconds, phase windows and periods are seconds of simulator time.

Phase windows are ``[start_s, end_s)`` seconds since the simulator started (``end_s`` omitted = forever) and/or
``[from-request, to-request)`` request sequence numbers. ``timeline.scale`` stretches every window and period
(``scale: 0.1`` plays a 10-minute timeline in one minute); it does not touch latencies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

PROFILES_DIR = Path(__file__).parent / "profiles"

FailureType = Literal[
    "rate_limit",  # 429 rate_limit_exceeded (type requests)
    "insufficient_quota",  # 429 insufficient_quota
    "invalid_api_key",  # 401
    "context_length",  # 400
    "invalid_request",  # 400
    "model_not_found",  # 404
    "server_error",  # 500
    "overloaded",  # 503
    "connection_reset",  # transport dropped, no HTTP response
    "hang",  # no response until the client gives up
]

_MODE_ALIASES = {
    "503": "overloaded",
    "500": "server_error",
    "429": "rate_limit",
    "401": "invalid_api_key",
    "reset": "connection_reset",
    "reset_peer": "connection_reset",
    "timeout": "hang",
    "down": "connection_reset",
}


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class _M(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=_kebab, validate_by_name=True, validate_by_alias=True, frozen=True
    )


def _failure(v: Any) -> Any:
    key = str(v).strip().lower().replace("-", "_")
    return _MODE_ALIASES.get(key, key)


Mode = Annotated[FailureType, BeforeValidator(_failure)]


class Latency(_M):
    """TTFT = time-to-first-token (the prefill overhead) + prompt tokens x prefill-time-per-token + queue wait."""

    time_to_first_token: float = Field(default=0.0, ge=0, description="ms, mean prefill overhead")
    time_to_first_token_std_dev: float = Field(default=0.0, ge=0, description="ms")
    prefill_time_per_token: float = Field(default=0.0, ge=0, description="ms per prompt token")
    inter_token_latency: float = Field(default=0.0, ge=0, description="ms between output tokens")
    inter_token_latency_std_dev: float = Field(default=0.0, ge=0, description="ms")
    distribution: Literal["normal", "lognormal"] = Field(
        default="normal", description="normal: clamped to mean +- 3 sd and >= 0; lognormal: same mean and sd"
    )


class Capacity(_M):
    max_num_seqs: int | None = Field(default=None, ge=1, description="sequences decoding at once; none = no cap")
    max_waiting_queue_length: int | None = Field(
        default=None, ge=0, description="waiting requests beyond which new ones get 429; none = unbounded"
    )
    time_factor_under_load: float = Field(
        default=1.0, ge=1.0, description="latency multiplier reached when max-num-seqs are running"
    )


class Output(_M):
    mode: Literal["random", "echo"] = "random"
    output_tokens: float = Field(default=100.0, ge=1, description="mean output length before max_tokens")
    output_tokens_std_dev: float = Field(default=0.0, ge=0)
    distribution: Literal["normal", "lognormal"] = "lognormal"
    default_max_tokens: int = Field(default=4096, ge=1, description="used when the request sets none")


class RateLimits(_M):
    rpm: int | None = Field(default=None, ge=1, description="requests per minute")
    tpm: int | None = Field(default=None, ge=1, description="tokens per minute (prompt + max_tokens)")


class Prices(_M):
    input_per_1m: float = Field(default=0.15, ge=0, description="USD per million prompt tokens")
    output_per_1m: float = Field(default=0.60, ge=0, description="USD per million completion tokens")


class _Phase(_M):
    name: str | None = None
    start_s: float = Field(default=0.0, ge=0, description="s since simulator start")
    end_s: float | None = Field(default=None, description="s since simulator start; none = forever")
    from_request: int | None = Field(default=None, ge=0, description="first request seq (inclusive)")
    to_request: int | None = Field(default=None, ge=0, description="last request seq (exclusive)")
    toxicity: float = Field(default=1.0, ge=0, le=1, description="probability the phase applies to a request")

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, v: Any) -> Any:
        if isinstance(v, dict):
            old = sorted(k for k in ("start", "end") if k in v)
            if old:
                new = ", ".join(f"{k}_s" for k in old)
                raise ValueError(f"time fields are spelled start_s/end_s (seconds): write {new}, not {', '.join(old)}")
        return v

    def covers(self, tau: float, seq: int) -> bool:
        if tau < self.start_s or (self.end_s is not None and tau >= self.end_s):
            return False
        if self.from_request is not None and seq < self.from_request:
            return False
        return not (self.to_request is not None and seq >= self.to_request)


class Outage(_Phase):
    type: Literal["outage"]
    mode: Mode = "overloaded"
    hang_timeout: float = Field(default=0.0, ge=0, description="s; hang: reset after this, 0 = hold forever")


class Flapping(_Phase):
    type: Literal["flapping"]
    period: float = Field(gt=0, description="s, one down + up cycle")
    down_fraction: float = Field(default=0.5, gt=0, lt=1)
    first: Literal["down", "up"] = "down"
    mode: Mode = "overloaded"
    hang_timeout: float = Field(default=0.0, ge=0)

    def is_down(self, tau: float) -> bool:
        pos = ((tau - self.start_s) % self.period) / self.period
        down = pos < self.down_fraction if self.first == "down" else pos >= 1 - self.down_fraction
        return down


class LatencySpike(_Phase):
    type: Literal["latency_spike"]
    factor: float = Field(default=1.0, ge=0)
    latency: float = Field(default=0.0, ge=0, description="ms added to TTFT (Toxiproxy latency)")
    jitter: float = Field(default=0.0, ge=0, description="ms, +- uniform on the added latency")
    applies_to: Literal["ttft", "itl", "both"] = "both"


class Degradation(_Phase):
    type: Literal["degradation"]
    failure_injection_rate: float = Field(ge=0, le=1)
    # Ignored on the next line: the factory's list[str] holds a Mode
    failure_types: list[Mode] = Field(default_factory=lambda: ["server_error"], min_length=1)  # type: ignore[arg-type]


class SlowStream(_Phase):
    type: Literal["slow_stream"]
    stall_after_tokens: int | None = Field(default=None, ge=0)
    stall_seconds: float = Field(default=0.0, ge=0)
    cut_after_tokens: int | None = Field(default=None, ge=0)
    cut_mode: Literal["reset", "error", "eof"] = "reset"


class BudgetExhaustion(_Phase):
    type: Literal["budget_exhaustion"]
    after_tokens: int | None = Field(default=None, ge=0, description="prompt + completion tokens in the phase")
    after_dollars: float | None = Field(default=None, ge=0, description="USD at the profile's prices")

    @model_validator(mode="after")
    def _one(self) -> BudgetExhaustion:
        if (self.after_tokens is None) == (self.after_dollars is None):
            raise ValueError("budget_exhaustion: set exactly one of after-tokens, after-dollars")
        return self


class RateLimit(_Phase):
    type: Literal["rate_limit"]
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)


Phase = Annotated[
    Outage | Flapping | LatencySpike | Degradation | SlowStream | BudgetExhaustion | RateLimit,
    Field(discriminator="type"),
]


class Timeline(_M):
    scale: float = Field(default=1.0, gt=0, description="multiplies every window and period")
    phases: list[Phase] = []

    @model_validator(mode="before")
    @classmethod
    def _list(cls, v: Any) -> Any:
        if isinstance(v, list):
            v = {"phases": v}
        if isinstance(v, dict) and isinstance(v.get("phases"), list):
            v = {**v, "phases": [_norm_type(p) for p in v["phases"]]}
        return v


def _norm_type(p: Any) -> Any:
    if isinstance(p, dict) and isinstance(p.get("type"), str):
        return {**p, "type": p["type"].replace("-", "_")}
    return p


class Profile(_M):
    name: str = "custom"
    description: str = ""
    source: str = Field(default="", description="where the numbers come from")
    model: str = "gpt-4o-mini"
    served_models: list[str] = Field(default=[], description="models answered; empty = any model")
    max_model_len: int = Field(default=128_000, ge=16)
    embedding_dimensions: int = Field(default=1536, ge=1, description="length of an embedding before dimensions")
    blocked_phrases: list[str] = Field(
        default=[], description="Gemini flavour: a prompt containing one is blocked (promptFeedback.blockReason SAFETY)"
    )
    organization: str = "org-faultline-sim"
    api_keys: list[str] | None = Field(default=None, description="accepted bearer keys; none = any")
    latency: Latency = Latency()
    capacity: Capacity = Capacity()
    output: Output = Output()
    rate_limits: RateLimits = RateLimits()
    prices: Prices = Prices()
    timeline: Timeline = Timeline()


class ProfileError(ValueError):
    """A profile is missing or invalid."""


def _kebab_keys(v: Any) -> Any:
    """Spell every key kebab-case so a snake_case override merges onto a kebab-case base."""
    if isinstance(v, dict):
        return {(k.replace("_", "-") if isinstance(k, str) else k): _kebab_keys(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_kebab_keys(x) for x in v]
    return v


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _resolve_base(raw: dict[str, Any], directory: Path, depth: int = 0) -> dict[str, Any]:
    """``base: <name>`` inherits a shipped profile; nested mappings merge, lists (the timeline) replace."""
    if "base" not in raw:
        return raw
    if depth > 8:
        raise ProfileError("profile 'base' chain too deep")
    name = raw["base"]
    known = list_profiles(directory)
    if name not in known:
        raise ProfileError(f"unknown base profile {name!r}; known: {', '.join(known)}")
    try:
        base = yaml.safe_load((directory / f"{name}.yaml").read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"base profile {name!r} cannot be read: {exc}") from None
    if not isinstance(base, dict):
        raise ProfileError(f"base profile {name!r} is not a mapping")
    base = _resolve_base(_kebab_keys(base), directory, depth + 1)
    base.pop("name", None)
    base.pop("description", None)
    return _merge(base, {k: v for k, v in raw.items() if k != "base"})


def profile_from_dict(
    raw: dict[str, Any], *, scale: float | None = None, source: str = "<dict>", directory: Path | None = None
) -> Profile:
    """Validate a profile given as a dict (``base: <name>`` inherits); ``scale`` overrides ``timeline.scale``."""
    raw = _resolve_base(_kebab_keys(raw), directory or PROFILES_DIR)
    try:
        prof = Profile.model_validate(raw)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ProfileError(f"{source}: invalid profile:\n" + "\n".join(lines)) from None
    if scale is not None:
        prof = prof.model_copy(update={"timeline": prof.timeline.model_copy(update={"scale": scale})})
    return prof


def list_profiles(directory: Path = PROFILES_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_profile(
    ref: str | Path | dict[str, Any] | Profile, *, scale: float | None = None, directory: Path = PROFILES_DIR
) -> Profile:
    """A profile by name (``profiles/<name>.yaml``), by file path, from a dict, or passed through."""
    if isinstance(ref, Profile):
        return ref if scale is None else profile_from_dict(ref.model_dump(by_alias=True), scale=scale)
    if isinstance(ref, dict):
        return profile_from_dict(ref, scale=scale, directory=directory)
    path = Path(ref)
    if not path.suffix:
        path = directory / f"{ref}.yaml"
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError:
        raise ProfileError(f"no profile {ref!r}; known: {', '.join(list_profiles(directory))}") from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: a profile is a mapping")
    raw.setdefault("name", path.stem)
    return profile_from_dict(raw, scale=scale, source=str(path), directory=directory)
