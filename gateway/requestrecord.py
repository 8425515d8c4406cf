"""The request log record: one per client request, the single input of the reports.

Schema version 1 (documented in docs/OBSERVABILITY.md). Timestamps come from the injected clock, in seconds
since the epoch; durations are seconds. Fields are appended, never renamed, within a version.

The records are plain dataclasses, without ``__slots__``: orjson serialises such an instance from its
``__dict__`` (its fields, in declaration order, since ``__init__`` sets every one) at about a third of what it
costs for a slotted one, which it reads field by field through ``__dataclass_fields__``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1


@dataclass
class AttemptRecord:
    provider: str
    model: str
    started: float  # epoch seconds
    duration_s: float = 0.0
    outcome: str = "ok"  # ok | connect_error | timeout | stream_timeout | rate_limited | insufficient_quota
    #                     | server_error | client_error | stream_cut | breaker_open | shed | cancelled
    status: int | None = None
    injected: bool = False  # a chaos fault, not a real one


@dataclass
class RequestRecord:
    request_id: str
    ts_arrival: float
    run_id: str | None = None
    consumer: str | None = None
    priority: int | None = None
    model: str | None = None
    stream: bool = False
    ts_first_byte: float | None = None
    ts_end: float | None = None
    status: int = 0
    # ok | error | shed | quota_rejected | client_error | cancelled
    outcome: str = "ok"
    error_type: str | None = None
    provider: str | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    retries: int = 0
    breaker_states: dict[str, str] = field(default_factory=dict)
    decisions: dict[str, Any] = field(default_factory=dict)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    key_id: str | None = None  # the API key: a virtual key's id, or cfg:<consumer> for a configured one
    key_name: str | None = None
    tags: dict[str, str] | None = None  # the key's metadata tags

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schema"] = SCHEMA_VERSION
        return d
