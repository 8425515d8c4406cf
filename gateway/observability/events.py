"""What other components report to observability, as tiny Protocols. :class:`gateway.observability.telemetry.
Telemetry` implements them all; :class:`NullEvents` ignores everything (for components' unit tests).

Per-request facts (attempts, retries, fallbacks, tokens, cost, decisions) are read from the request record at
completion; only what happens outside one request's record, or must be counted as it happens, comes here.
"""

from __future__ import annotations

from typing import Protocol


class BreakerEvents(Protocol):
    def breaker_transition(self, provider: str, old: str, new: str, reason: str) -> None:
        """A circuit breaker changed state (closed | open | half_open), and why. Logged and counted (opens by
        reason)."""

    def slow_call(self, provider: str) -> None:
        """An attempt ran past ``breaker.slow_call_s`` without an answer. Counted."""


class RetryEvents(Protocol):
    def retry_budget_exhausted(self, provider: str) -> None:
        """A retry was refused because the retry budget was spent."""

    def hedge_sent(self, provider: str) -> None:
        """A hedged attempt went to ``provider``. Counted."""

    def hedge_won(self, provider: str) -> None:
        """A hedged attempt to ``provider`` answered first. Counted."""


class StateStoreEvents(Protocol):
    def state_store_failure(self, operation: str, error: str) -> None:
        """A Redis operation failed or timed out (``error`` is the exception class name, never a payload)."""


class QuotaEvents(Protocol):
    def quota_rejected(self, consumer: str | None, limit: str) -> None:
        """A request was refused by a limit (rpm | tpm | tpd | concurrency | budget)."""

    def budget_remaining(self, consumer: str, tokens: float) -> None:
        """Tokens left in the consumer's daily budget, after a reservation or reconciliation."""


class SheddingEvents(Protocol):
    def shed(self, reason: str) -> None:
        """A request was shed (e.g. queue_full, queue_timeout, deadline, priority)."""

    def queue_depth(self, depth: int) -> None:
        """Requests currently waiting for admission."""


class ChaosEvents(Protocol):
    def chaos_injected(self, fault: str, provider: str) -> None:
        """A fault was injected on purpose."""


class GuardrailEvents(Protocol):
    def guardrail_action(self, guardrail: str, action: str) -> None:
        """A guardrail decided (allow | block | redact | ...)."""


class ConfigEvents(Protocol):
    def config_error(self, message: str) -> None:
        """A configuration error (e.g. a reload refused)."""


class NullEvents:
    """Implements every event Protocol and does nothing."""

    def breaker_transition(self, provider: str, old: str, new: str, reason: str) -> None:
        pass

    def slow_call(self, provider: str) -> None:
        pass

    def retry_budget_exhausted(self, provider: str) -> None:
        pass

    def hedge_sent(self, provider: str) -> None:
        pass

    def hedge_won(self, provider: str) -> None:
        pass

    def state_store_failure(self, operation: str, error: str) -> None:
        pass

    def quota_rejected(self, consumer: str | None, limit: str) -> None:
        pass

    def budget_remaining(self, consumer: str, tokens: float) -> None:
        pass

    def shed(self, reason: str) -> None:
        pass

    def queue_depth(self, depth: int) -> None:
        pass

    def chaos_injected(self, fault: str, provider: str) -> None:
        pass

    def guardrail_action(self, guardrail: str, action: str) -> None:
        pass

    def config_error(self, message: str) -> None:
        pass
