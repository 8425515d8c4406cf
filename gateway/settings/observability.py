"""Observability configuration: logs, traces, the request log. The metrics port is ``server.metrics_port``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ObservabilitySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_name: str = Field(default="faultline-gateway", description="OpenTelemetry service.name")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_payloads: bool = Field(
        default=False,
        description="debug only: put the request payload (prompts) in the request's log line; never on in production",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces endpoint, e.g. http://otel-collector:4318/v1/traces; none = off",
    )
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0, description="head sampling ratio of root spans")
    request_log_path: str | None = Field(
        default=None, description="JSONL request log; overridden by $FAULTLINE_REQUEST_LOG; none = off"
    )
    request_log_max_bytes: int = Field(default=64 * 1024 * 1024, ge=4096, description="rotate past this size")
    run_id: str | None = Field(default=None, description="scenario run id; overridden by $FAULTLINE_RUN_ID")
