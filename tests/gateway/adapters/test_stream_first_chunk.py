"""A stream's first chunk is bounded by the attempt's first-byte limit, not only its response headers: the
simulators (like vLLM) send headers at once and the first chunk with the first token."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.adapters.base import AttemptTimeouts, OpenAICompatibleAdapter
from gateway.adapters.upstreamerrors import UpstreamTimeout
from gateway.clock import LoopClock, run_virtual
from gateway.transport import AsgiTransport
from simulators import create_app as create_simulator

SLOW_FIRST_TOKEN = {"base": "instant", "timeline": [{"type": "latency_spike", "start_s": 0, "latency": 3000}]}
PAYLOAD = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


async def _stream(first_byte_s: float) -> tuple[list[dict[str, Any]], float]:
    clock = LoopClock()
    sim = create_simulator(flavour="vllm", profile=SLOW_FIRST_TOKEN, seed=1, name="vllm", clock=clock)
    adapter = OpenAICompatibleAdapter("vllm", "http://vllm.sim/v1", AsgiTransport({"http://vllm.sim": sim}))
    limits = AttemptTimeouts(connect_s=1.0, first_byte_s=first_byte_s, idle_s=30.0)
    t0 = clock.monotonic()
    stream = await adapter.open_stream(PAYLOAD, model="m", request_id="r1", headers={}, timeouts=limits)
    try:
        return [chunk async for chunk in stream], clock.monotonic() - t0
    finally:
        await stream.aclose()


def test_a_first_chunk_later_than_the_first_byte_limit_is_a_timeout() -> None:
    async def main() -> float:
        t0 = LoopClock().monotonic()
        with pytest.raises(UpstreamTimeout, match="first chunk"):
            await _stream(first_byte_s=1.0)
        return LoopClock().monotonic() - t0

    waited = run_virtual(main())
    assert 1.0 <= waited < 1.5


def test_a_first_chunk_within_the_limit_streams_to_the_end() -> None:
    chunks, took = run_virtual(_stream(first_byte_s=5.0))
    assert took >= 3.0
    assert chunks and chunks[0]["choices"][0]["delta"].get("role") == "assistant"
