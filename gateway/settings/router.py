"""Router configuration: timeouts and the resilience policies.

Every figure here is a default documented in docs/ROUTING.md; the order in which the policies apply is there too.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimeoutSettings(_Model):
    connect_s: float = Field(default=2.0, gt=0)
    first_byte_s: float = Field(default=30.0, gt=0, description="time to the first byte / token")
    stream_idle_s: float = Field(default=15.0, gt=0, description="longest silence between stream chunks")
    request_deadline_s: float = Field(default=60.0, gt=0, description="overall per-request deadline")
    deadline_header: str = Field(default="x-request-timeout", description="client may shorten the deadline (s)")


class RetrySettings(_Model):
    max_attempts: int = Field(default=3, ge=1, description="upstream attempts per request, failovers included")
    backoff_base_s: float = Field(default=0.1, gt=0)
    backoff_cap_s: float = Field(default=2.0, gt=0)
    retry_after_cap_s: float = Field(default=5.0, ge=0, description="longest upstream retry-after honoured")


class BudgetSettings(_Model):
    ratio: float = Field(default=0.2, ge=0, le=1, description="extra attempts per request, per provider")
    window_s: float = Field(default=10.0, gt=0)
    buckets: int = Field(default=10, ge=1)
    min_per_window: int = Field(default=3, ge=0, description="extra attempts always allowed per window")
    healthy_failure_ratio: float = Field(
        default=0.5, gt=0, le=1, description="failover to a provider failing less than this is always allowed"
    )
    healthy_min_calls: int = Field(default=5, ge=1)


class BreakerSettings(_Model):
    window_s: float = Field(default=30.0, gt=0)
    buckets: int = Field(default=10, ge=1)
    min_calls: int = Field(default=10, ge=1)
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    consecutive_failures: int = Field(default=5, ge=0, description="0 disables the consecutive rule")
    cooloff_s: float = Field(default=10.0, gt=0)
    half_open_probes: int = Field(default=2, ge=1)
    per_model: bool = Field(default=True, description="one breaker per provider and upstream model")
    shared: bool = Field(default=True, description="share state across replicas through the state store")
    cache_s: float = Field(default=0.5, ge=0, description="local cache of the shared state")
    quota_cooloff_s: float = Field(default=300.0, gt=0, description="skip a provider after insufficient_quota")
    slow_call_s: float | None = Field(
        default=None, gt=0, description="an attempt with no answer after this long is slow; none: not counted"
    )
    slow_call_rate: float = Field(default=1.0, gt=0, le=1, description="share of slow calls in the window that opens")
    consecutive_slow_calls: int = Field(default=0, ge=0, description="slow calls in a row that open; 0: off")


class HedgeSettings(_Model):
    """Hedged requests (docs/ROUTING.md, "Hedging"): off unless ``enabled`` or the route is in ``routes``."""

    enabled: bool = Field(default=False, description="hedge attempts on every route")
    routes: list[str] = Field(default=[], description="hedge attempts on these routes only (provider/model)")
    quantile: float = Field(default=0.95, gt=0, lt=1, description="wait this quantile of the route's TTFT")
    min_samples: int = Field(default=20, ge=1, description="no hedge before the route has this many samples")
    window_s: float = Field(default=60.0, gt=0, description="TTFT samples older than this are forgotten")
    max_samples: int = Field(default=200, ge=1, description="TTFT samples kept per route")
    min_delay_s: float = Field(default=0.0, ge=0, description="never hedge sooner than this")


class SheddingSettings(_Model):
    global_limit: int = Field(default=1024, ge=1, description="requests in flight in the router")
    provider_limit: int = Field(default=256, ge=1, description="attempts in flight per provider")
    provider_limits: dict[str, int] = {}
    queue_limit: int = Field(default=64, ge=0, description="waiters per provider")
    max_queue_wait_s: float = Field(default=0.5, ge=0)
    priority_reserve: float = Field(
        default=0.2, ge=0, lt=1, description="share of capacity kept for the highest priority"
    )
    retry_after_s: int = Field(default=1, ge=1)


class ScoreWeights(_Model):
    latency_weight: float = Field(default=0.6, ge=0)
    cost_weight: float = Field(default=0.4, ge=0)


class ScoringSettings(ScoreWeights):
    ewma_alpha: float = Field(default=0.3, gt=0, le=1, description="weight of the newest latency sample")


class GroupPolicy(_Model):
    strategy: Literal["weighted", "scored"] = "weighted"
    weights: ScoreWeights | None = Field(default=None, description="this group's score weights (default: scoring's)")


class TaskRule(_Model):
    """Route to ``group`` when the requested model and/or the declared task match (first matching rule wins)."""

    model: str | None = Field(default=None, description="the model name or alias the client asked for")
    task: str | None = Field(default=None, description="the task declared in the task header")
    group: str

    @model_validator(mode="after")
    def _something(self) -> TaskRule:
        if self.model is None and self.task is None:
            raise ValueError("a task rule needs model, task or both")
        return self


class ChaosRule(_Model):
    fault: Literal["latency", "error", "abort", "timeout"]
    percent: float = Field(ge=0, le=100)
    provider: str | None = None
    model: str | None = None
    consumer: str | None = None
    latency_s: float = Field(default=1.0, ge=0)
    status: int = Field(default=503, ge=400, le=599)


class ChaosSettings(_Model):
    enabled: bool = False
    rules: list[ChaosRule] = []


class GuardrailSettings(_Model):
    max_response_chars: int | None = Field(default=None, ge=1)
    max_response_tokens: int | None = Field(default=None, ge=1, description="estimated as ceil(chars / 4)")
    banned_words: list[str] = []
    banned_action: Literal["block", "redact"] = "block"
    redaction: str = "[redacted]"
    check_input: bool = Field(default=False, description="refuse (400) a request whose messages hold one")


class RouterSettings(_Model):
    timeouts: TimeoutSettings = TimeoutSettings()
    retry: RetrySettings = RetrySettings()
    budget: BudgetSettings = BudgetSettings()
    breaker: BreakerSettings = BreakerSettings()
    hedging: HedgeSettings = HedgeSettings()
    shedding: SheddingSettings = SheddingSettings()
    scoring: ScoringSettings = ScoringSettings()
    groups: dict[str, GroupPolicy] = Field(default={}, description="per model group, by group name")
    task_header: str = "x-task"
    task_rules: list[TaskRule] = []
    pin_headers: list[str] = ["x-provider-pin", "x-provider-priority"]
    chaos: ChaosSettings = ChaosSettings()
    guardrails: GuardrailSettings = GuardrailSettings()
