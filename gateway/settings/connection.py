"""Connection limits (``server.limits``): the defaults are meant for production behind a load balancer."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ConnectionLimits(BaseModel):
    """Per worker process. Every duration in seconds; every limit is enforced, none can be switched off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="from a new connection, or the first byte of a request on a kept-alive one, to the end of the "
        "request head; then 408 (bytes of the head arrived) or a silent close (none did)",
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="longest pause between two reads of a request body; then 408 and close",
    )
    keep_alive_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="an idle kept-alive connection is closed after this (set it above a load balancer's idle timeout)",
    )
    max_requests_per_connection: int = Field(
        default=1000, ge=1, description="the last one's reply carries Connection: close"
    )
    max_header_count: int = Field(default=100, ge=8, le=10_000, description="header fields of one request; then 431")
    max_header_bytes: int = Field(
        default=32_768,
        ge=1024,
        le=1_048_576,
        description="bytes of the request target plus header names and values; then 431",
    )
    max_connections: int = Field(
        default=4096,
        ge=1,
        description="client connections one worker serves at once; a request on a connection opened over it gets "
        "503 and a close (refused connections are not counted)",
    )
    retry_after_s: int = Field(default=1, ge=0, le=120, description="Retry-After of the over-capacity 503")
