"""The vLLM capacity model under virtual time: a queue that makes TTFT climb, a batch that slows decoding."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import httpx
import orjson

from gateway.clock import LoopClock, run_virtual
from simulators import SimulatorApp, create_app


def profile(max_num_seqs: int, factor: float = 1.0, queue: int | None = None) -> dict[str, Any]:
    return {
        "latency": {"time-to-first-token": 100, "inter-token-latency": 10},
        "capacity": {
            "max-num-seqs": max_num_seqs,
            "time-factor-under-load": factor,
            "max-waiting-queue-length": queue,
        },
        "output": {"output-tokens": 11},
    }


def burst(prof: dict[str, Any], n: int, stream: bool = False) -> tuple[list[dict[str, Any]], list[int], str]:
    async def main() -> tuple[list[dict[str, Any]], list[int], str]:
        app = create_app("vllm", prof, seed=1, clock=LoopClock())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as c:
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
            rs = await asyncio.gather(*(c.post("/v1/chat/completions", json=body) for _ in range(n)))
            metrics = (await c.get("/metrics")).text
        outs = sorted(app.engine.outcomes, key=lambda o: o["seq"])
        return outs, [r.status_code for r in rs], metrics

    return run_virtual(main())


def test_ttft_climbs_with_the_queue() -> None:
    outs, codes, _ = burst(profile(max_num_seqs=2), 8)
    assert codes == [200] * 8
    ttft = [round(o["ttft"], 6) for o in outs]
    # service time 0.1 + 10 x 0.01 = 0.2 s; two at a time
    assert ttft == [0.1, 0.1, 0.3, 0.3, 0.5, 0.5, 0.7, 0.7]
    assert [round(o["queue_wait"], 6) for o in outs][::2] == [0.0, 0.2, 0.4, 0.6]


def test_batch_slows_decoding_up_to_the_load_factor() -> None:
    alone, _, _ = burst(profile(max_num_seqs=4, factor=2.0), 1)
    full, _, _ = burst(profile(max_num_seqs=4, factor=2.0), 4, stream=True)
    assert round(alone[0]["e2e"], 6) == 0.2
    # prefill scales with the batch at admission: 1, 4/3, 5/3, 2 x 100 ms
    assert [round(o["ttft"], 4) for o in full] == [0.1, 0.1333, 0.1667, 0.2]
    # the first request decodes its 10 gaps with all four running: 10 x 10 ms x 2
    assert round(full[0]["e2e"] - full[0]["ttft"], 6) == 0.2


def test_bounded_queue_refuses_with_429() -> None:
    outs, codes, _ = burst(profile(max_num_seqs=2, queue=3), 8)
    assert sorted(codes) == [200] * 5 + [429] * 3
    assert sum(o["status"] == "queue_full" for o in outs) == 3


def test_refusal_body_is_vllm_shaped() -> None:
    async def main() -> dict[str, Any]:
        app = create_app("vllm", profile(max_num_seqs=1, queue=0), seed=1, clock=LoopClock())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as c:
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            rs = await asyncio.gather(*(c.post("/v1/chat/completions", json=body) for _ in range(2)))
        return next(r.json() for r in rs if r.status_code == 429)

    err = run_virtual(main())["error"]
    assert err["code"] == 429 and err["type"] == "TooManyRequestsError" and err["param"] is None


def test_metrics_use_vllm_names() -> None:
    _, _, metrics = burst(profile(max_num_seqs=2), 4)
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_count",
        "vllm:e2e_request_latency_seconds_sum",
        "vllm:request_queue_time_seconds_bucket",
        "vllm:request_prefill_time_seconds_count",
        "vllm:request_decode_time_seconds_count",
    ):
        assert f"{name}{{" in metrics, name
    assert 'vllm:request_success_total{model_name="sim-instant",finished_reason="length"}' not in metrics
    assert 'vllm:generation_tokens_total{model_name="gpt-4o-mini"} 44' in metrics
    assert 'vllm:request_success_total{model_name="gpt-4o-mini",finished_reason="stop"} 4' in metrics
    assert 'vllm:time_to_first_token_seconds_count{model_name="gpt-4o-mini"} 4' in metrics


class Client:
    """One raw ASGI exchange whose client can go away: ``gone()`` makes ``receive`` report the disconnect."""

    def __init__(self, app: SimulatorApp, stream: bool = False) -> None:
        self.sent: list[MutableMapping[str, Any]] = []
        self.app, self._gone = app, asyncio.Event()
        self.body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream})
        self._asked = 0

    async def receive(self) -> dict[str, Any]:
        self._asked += 1
        if self._asked == 1:
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, msg: MutableMapping[str, Any]) -> None:
        self.sent.append(msg)

    def gone(self) -> None:
        self._gone.set()

    def start(self) -> asyncio.Task[None]:
        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
        return asyncio.ensure_future(self.app(scope, self.receive, self.send))


def one_slot() -> dict[str, Any]:
    return {
        "latency": {"time-to-first-token": 10_000, "inter-token-latency": 100},
        "capacity": {"max-num-seqs": 1},
        "output": {"output-tokens": 11},
    }


def test_a_client_that_goes_away_frees_its_slot_as_vllm_aborts_it() -> None:
    async def main() -> tuple[list[dict[str, Any]], str]:
        app = create_app("vllm", one_slot(), seed=1, clock=LoopClock())
        a, b = Client(app), Client(app)
        ta, tb = a.start(), b.start()
        await asyncio.sleep(1)
        assert (app.engine.scheduler.running, app.engine.scheduler.waiting) == (1, 1)
        a.gone()  # after 1 s of a 11 s answer
        await asyncio.gather(ta, tb)
        return sorted(app.engine.outcomes, key=lambda o: o["seq"]), app.engine.metrics.render()

    outs, metrics = run_virtual(main())
    assert outs[0]["status"] == "abort"
    assert outs[1]["status"] == "stop" and outs[1]["queue_wait"] == 1.0 and outs[1]["ttft"] == 11.0
    assert 'vllm:request_success_total{model_name="gpt-4o-mini",finished_reason="abort"} 1' in metrics
    assert 'vllm:request_success_total{model_name="gpt-4o-mini",finished_reason="stop"} 1' in metrics


def test_a_client_that_goes_away_while_queued_leaves_the_queue() -> None:
    async def main() -> tuple[int, int, list[dict[str, Any]]]:
        app = create_app("vllm", one_slot(), seed=1, clock=LoopClock())
        a, b, c = Client(app), Client(app), Client(app)
        tasks = [a.start(), b.start(), c.start()]
        await asyncio.sleep(1)
        b.gone()
        await asyncio.sleep(0.001)
        waiting = app.engine.scheduler.waiting
        await asyncio.gather(*tasks)
        return waiting, app.engine.scheduler.running, sorted(app.engine.outcomes, key=lambda o: o["seq"])

    waiting, running, outs = run_virtual(main())
    assert waiting == 1 and running == 0
    assert [o["status"] for o in outs] == ["stop", "abort", "stop"]
    assert round(outs[2]["queue_wait"], 6) == 11.0  # straight after a, not after b


def test_a_stream_cut_by_its_client_stops_and_frees_the_slot() -> None:
    async def main() -> tuple[int, int, list[dict[str, Any]]]:
        app = create_app("vllm", one_slot(), seed=1, clock=LoopClock())
        a, b = Client(app, stream=True), Client(app)
        ta, tb = a.start(), b.start()
        await asyncio.sleep(10.25)  # the role chunk and three tokens are out
        a.gone()
        await asyncio.gather(ta, tb)
        return len(a.sent), app.engine.scheduler.running, sorted(app.engine.outcomes, key=lambda o: o["seq"])

    sent, running, outs = run_virtual(main())
    assert sent == 1 + 1 + 3  # response start, role chunk, three tokens; nothing after the client left
    assert running == 0 and outs[0]["status"] == "abort" and outs[1]["queue_wait"] == 10.25


def test_a_client_that_leaves_once_the_answer_is_sent_is_not_an_abort() -> None:
    """A server may report the disconnect while the last body write is still draining."""

    async def main() -> tuple[list[dict[str, Any]], str]:
        app = create_app("vllm", one_slot(), seed=1, clock=LoopClock())
        c = Client(app, stream=True)

        async def send(msg: MutableMapping[str, Any]) -> None:
            c.sent.append(msg)
            if msg["type"] == "http.response.body" and not msg.get("more_body"):
                c.gone()
                await asyncio.sleep(0.01)  # the write drains; the watcher sees the disconnect first

        c.send = send  # type: ignore[method-assign]  # this exchange's client leaves once the body is sent
        await c.start()
        return list(app.engine.outcomes), app.engine.metrics.render()

    outs, metrics = run_virtual(main())
    assert [o["status"] for o in outs] == ["stop"]
    assert 'finished_reason="abort"} 0' in metrics and 'finished_reason="stop"} 1' in metrics
