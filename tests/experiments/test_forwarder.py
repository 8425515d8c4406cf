"""The bench's yardsticks: both forwarders, in real processes in front of the simulator, answer what the upstream
answers (a JSON completion whole, a stream event by event)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.processes import ROOT, free_port, stop, wait_http

pytestmark = pytest.mark.processes

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture(params=["asgi", "fastapi"])
def forwarder(request: pytest.FixtureRequest) -> Iterator[tuple[int, int]]:
    """(simulator port, forwarder port): the simulator and one forwarder, as processes."""
    sim_port, fwd_port = free_port(), free_port()
    sim = [sys.executable, "-m", "simulators", "--flavour", "openai", "--profile", "instant", "--seed", "1"]
    fwd = [sys.executable, "-m", "experiments.forwarder", "--upstream", f"http://127.0.0.1:{sim_port}"]
    procs = [subprocess.Popen([*sim, "--port", str(sim_port)], cwd=ROOT)]
    try:
        procs.append(subprocess.Popen([*fwd, "--port", str(fwd_port), "--framework", request.param], cwd=ROOT))
        yield sim_port, fwd_port
    finally:
        stop(procs)


async def test_forwarder_relays_json_and_streams(forwarder: tuple[int, int]) -> None:
    sim_port, fwd_port = forwarder
    await wait_http(f"http://127.0.0.1:{sim_port}/v1/models")
    await wait_http(f"http://127.0.0.1:{fwd_port}/v1/chat/completions")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{fwd_port}") as client:
        reply = await client.post("/v1/chat/completions", json=BODY)
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("application/json")
        assert reply.json()["object"] == "chat.completion"
        async with client.stream("POST", "/v1/chat/completions", json={**BODY, "stream": True}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = [line async for line in stream.aiter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert chunks and all(c["object"] == "chat.completion.chunk" for c in chunks)
