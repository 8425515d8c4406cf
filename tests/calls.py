"""The one builder of a :class:`gateway.call.Call` for tests that drive stages, the router or the edge directly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.call import Call
from gateway.requestrecord import RequestRecord


def build_call(
    *,
    request_id: str = "req-1",
    method: str = "POST",
    path: str = "/v1/chat/completions",
    headers: Mapping[str, str] | None = None,
    raw_body: bytes = b"",
    arrival: float = 0.0,
    started: float = 0.0,
    deadline_s: float = 60.0,
    record: RequestRecord | None = None,
    **fields: Any,
) -> Call:
    """A call that arrived at ``arrival`` (epoch) / ``started`` (monotonic) with ``raw_body`` to read; ``fields``
    are the rest of :class:`Call`'s fields (consumer, body, group, payload, ...)."""

    async def receive_body() -> bytes:
        return raw_body

    return Call(
        request_id=request_id,
        method=method,
        path=path,
        headers=dict(headers or {}),
        receive_body=receive_body,
        record=record or RequestRecord(request_id=request_id, ts_arrival=arrival),
        started=started,
        deadline=started + deadline_s,
        **fields,
    )
