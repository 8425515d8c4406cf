"""``python -m simulators`` as a real process on a free loopback port: serves, resets a connection, switches."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.processes
async def test_real_process(tmp_path: Path) -> None:
    profile = tmp_path / "reset-second.yaml"
    profile.write_text(
        "base: instant\ntimeline:\n  - {type: outage, from-request: 1, to-request: 2, mode: reset}\n"
        "  - {type: outage, from-request: 3, to-request: 4, mode: hang}\n"
    )
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators", "--flavour", "vllm", "--profile", str(profile),
        "--seed", "3", "--port", str(port), "--control",
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(200):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/health")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            sdk = openai.AsyncOpenAI(api_key="k", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
            msgs: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
            r = await sdk.chat.completions.create(model="m", messages=msgs)
            assert r.usage is not None and r.usage.completion_tokens == 16
            with pytest.raises(openai.APIConnectionError):
                await sdk.chat.completions.create(model="m", messages=msgs)
            r = await sdk.chat.completions.create(model="m", messages=msgs)
            assert r.choices[0].finish_reason == "stop"
            with pytest.raises(openai.APITimeoutError):  # the hang holds until the client gives up
                await sdk.chat.completions.create(model="m", messages=msgs, timeout=0.5)
            usage = (await sdk.chat.completions.create(model="m", messages=msgs)).usage
            assert usage is not None and usage.completion_tokens == 16
            seqs = [d["seq"] for d in (await http.get("/_sim/decisions")).json()["decisions"]]
            assert seqs == [0, 1, 2, 3, 4]
            # a client that gives up aborts its request: the only slot is free again, the queue empty
            slow = {"base": "instant", "latency": {"time-to-first-token": 60_000}, "capacity": {"max-num-seqs": 1}}
            assert (await http.post("/_sim/profile", json={"profile": slow})).status_code == 200
            calls = [sdk.chat.completions.create(model="m", messages=msgs, timeout=0.3) for _ in range(2)]
            for outcome in await asyncio.gather(*calls, return_exceptions=True):
                assert isinstance(outcome, openai.APITimeoutError)
            for _ in range(100):
                metrics = (await http.get("/metrics")).text
                if 'finished_reason="abort"} 2' in metrics:
                    break
                await asyncio.sleep(0.02)
            assert 'vllm:request_success_total{model_name="sim-instant",finished_reason="abort"} 2' in metrics
            assert 'vllm:num_requests_running{model_name="sim-instant"} 0' in metrics
            assert 'vllm:num_requests_waiting{model_name="sim-instant"} 0' in metrics
            assert (await http.post("/_sim/profile", json={"profile": "vllm-crash", "scale": 0.001})).status_code == 200
            assert "vllm:num_requests_running" in (await http.get("/metrics")).text
            await sdk.close()
    finally:
        proc.terminate()
        await proc.wait()
