"""The metric families of :class:`~gateway.observability.metrics.Metrics`, declared on its registry and grouped by
what they measure (names and labels: docs/OBSERVABILITY.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.observability.reloads import ReloadMetrics

# LLM latencies: tens of milliseconds (a cached vLLM prefill) to minutes (a long stream).
LATENCY_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    30.0,
    60.0,
    120.0,
)
# Gateway overhead: tens of microseconds to a few hundred milliseconds.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class MetricFamilies:
    """Every metric family of the gateway, one attribute each; :meth:`_declare_families` registers them."""

    def _declare_families(self, r: CollectorRegistry) -> None:
        self._request_families(r)
        self._upstream_families(r)
        self._breaker_families(r)
        self._spend_families(r)
        self._stage_families(r)
        self._infrastructure_families(r)

    def _request_families(self, r: CollectorRegistry) -> None:
        """Client requests: answered, their durations, in flight, waiting for admission, shed."""
        self.requests = Counter(
            "faultline_requests",
            "Client requests answered.",
            ["route", "status", "consumer", "model"],
            registry=r,
        )
        self.request_duration = Histogram(
            "faultline_request_duration_seconds",
            "Arrival to the last byte of the reply.",
            ["route", "consumer", "model", "stream"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "faultline_time_to_first_token_seconds",
            "Arrival to the first byte of a successful reply (the whole reply when not streamed).",
            ["consumer", "model", "stream"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "faultline_gateway_overhead_seconds",
            "Request duration not spent waiting on upstream attempts.",
            ["route"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "faultline_requests_in_flight", "Requests being served.", registry=r, multiprocess_mode="livesum"
        )
        self.queue_depth = Gauge(
            "faultline_queue_depth",
            "Requests waiting for admission.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.shed = Counter("faultline_shed_requests", "Requests shed, by reason.", ["reason"], registry=r)

    def _upstream_families(self, r: CollectorRegistry) -> None:
        """Upstream attempts: their outcomes and durations, retries, fallbacks, hedges, injected faults."""
        self.attempts = Counter(
            "faultline_upstream_attempts",
            "Upstream attempts by outcome.",
            ["provider", "outcome"],
            registry=r,
        )
        self.attempt_duration = Histogram(
            "faultline_upstream_attempt_duration_seconds",
            "Duration of one upstream attempt (to its end, or its failure).",
            ["provider", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.retries = Counter("faultline_retries", "Attempts after the first, per request.", ["model"], registry=r)
        self.fallbacks = Counter(
            "faultline_fallbacks",
            "Switches to another provider within a request.",
            ["from_provider", "to_provider"],
            registry=r,
        )
        self.retry_budget_exhausted = Counter(
            "faultline_retry_budget_exhausted",
            "Retries refused by the retry budget.",
            ["provider"],
            registry=r,
        )
        self.hedges = Counter("faultline_hedges", "Hedged attempts: sent, won.", ["provider", "result"], registry=r)
        self.chaos_injections = Counter(
            "faultline_chaos_injections", "Faults injected on purpose.", ["fault", "provider"], registry=r
        )

    def _breaker_families(self, r: CollectorRegistry) -> None:
        """Circuit breakers and provider health: states, transitions, why they opened, slow calls, health checks."""
        self.breaker_state = Gauge(
            "faultline_breaker_state",
            "1 for the breaker's current state, else 0.",
            ["provider", "state"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.breaker_transitions = Counter(
            "faultline_breaker_transitions",
            "Circuit breaker state changes.",
            ["provider", "from_state", "to_state"],
            registry=r,
        )
        self.breaker_opens = Counter("faultline_breaker_opens", "By reason.", ["provider", "reason"], registry=r)
        self.slow_calls = Counter("faultline_slow_calls", "Past breaker.slow_call_s.", ["provider"], registry=r)
        self.provider_healthy = Gauge(
            "faultline_provider_healthy",
            "1 while the provider's active health check passes, 0 once it fails (checked providers only).",
            ["provider"],
            registry=r,
            multiprocess_mode="min",
        )

    def _spend_families(self, r: CollectorRegistry) -> None:
        """What requests use and the limits on it: tokens, cost, dollar budgets, token budgets, quotas."""
        self.tokens = Counter(
            "faultline_tokens",
            "Tokens by direction (input | output).",
            ["consumer", "provider", "model", "type"],
            registry=r,
        )
        self.cost = Counter(
            "faultline_cost_usd",
            "Estimated cost in US dollars.",
            ["consumer", "provider", "model"],
            registry=r,
        )
        self.budget_spent = Counter(
            "faultline_budget_spent_usd",
            "Dollars charged against dollar budgets (the real cost of budgeted requests; rate() is the burn).",
            ["consumer"],
            registry=r,
        )
        self.budget_rejected = Counter(
            "faultline_budget_rejected",
            "Requests refused with 403 budget_exceeded, by the budget that refused them.",
            ["scope", "period"],
            registry=r,
        )
        self.budget_remaining = Gauge(
            "faultline_consumer_budget_remaining_tokens",
            "Tokens left in the consumer's daily budget.",
            ["consumer"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.quota_rejections = Counter(
            "faultline_quota_rejections",
            "Requests refused by a quota, by limit.",
            ["consumer", "limit"],
            registry=r,
        )
        self.quota_decisions = Counter(
            "faultline_quota_decisions",
            "Quota decisions by kind (ok or the limit hit) and backend (redis | local fail-open | none).",
            ["kind", "backend"],
            registry=r,
        )

    def _stage_families(self, r: CollectorRegistry) -> None:
        """The response cache and the guardrails."""
        self.cache_lookups = Counter(
            "faultline_cache_lookups",
            "Response-cache lookups of cacheable requests: hit or miss.",
            ["result"],
            registry=r,
        )
        self.cache_bytes = Counter(
            "faultline_cache_bytes",
            "Response-cache bytes: served from it (hits) or stored in it.",
            ["op"],
            registry=r,
        )
        self.guardrail_actions = Counter(
            "faultline_guardrail_actions", "Guardrail decisions.", ["guardrail", "action"], registry=r
        )

    def _infrastructure_families(self, r: CollectorRegistry) -> None:
        """What the gateway runs on: the state store, the usage-record writer, client connections, reloads."""
        self.state_store_up = Gauge(
            "faultline_state_store_up",
            "1 while the state store (Redis) answers, 0 while quotas run on the fallback policy.",
            registry=r,
            multiprocess_mode="min",
        )
        self.state_store_up.set(1.0)
        self.state_store_failures = Counter(
            "faultline_state_store_failures",
            "State store (Redis) operations that failed or timed out.",
            ["operation"],
            registry=r,
        )
        self.state_store_false_outages = Counter(
            "faultline_state_store_false_outages",
            "State-store outages whose first probe, sent the moment they were declared, was answered.",
            registry=r,
        )
        self.state_store_lag_excused = Counter(
            "faultline_state_store_lag_excused",
            "State-store deadlines re-armed because the event loop itself was behind, not the store.",
            ["operation"],
            registry=r,
        )
        self.usage_records = Counter(
            "faultline_usage_records",
            "Usage records for the database: written, or dropped (queue full while it was down, or at shutdown).",
            ["result"],
            registry=r,
        )
        self.client_connections_closed = Counter(
            "faultline_client_connections_closed",
            "Client connections closed or refused by a limit against hostile clients, by reason.",
            ["reason"],
            registry=r,
        )
        self.reloads = ReloadMetrics(r)  # the configuration's generation and reloads
