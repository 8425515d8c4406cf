"""The router against the simulators' fault profiles, on the virtual-time loop (no real waiting)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from gateway.call import Call, Reply
from gateway.clock import run_virtual
from gateway.errors import GatewayError, PermissionDenied, Unavailable

from .conftest import make_call, profile, runtime, send, settings

OUTAGE = profile({"type": "outage", "start_s": 0, "mode": "503"})
FAST_BREAKER = {"min_calls": 4, "failure_rate": 0.5, "consecutive_failures": 0, "cooloff_s": 5, "half_open_probes": 2}


def test_outage_fails_over_then_breaker_skips_the_dead_provider() -> None:
    async def main() -> None:
        rt, tr = runtime(settings({"breaker": FAST_BREAKER}), openai=OUTAGE)
        calls = [make_call(rt, n=i) for i in range(40)]
        for call in calls:
            result, _ = await send(rt, call)
            assert isinstance(result, Reply) and result.status == 200
            assert call.record.provider == "vllm"
            await asyncio.sleep(0.05)
        failed_over = [c for c in calls if [a.provider for a in c.record.attempts] == ["openai", "vllm"]]
        assert failed_over and all(c.record.retries == 1 for c in failed_over)
        assert failed_over[0].record.attempts[0].outcome == "server_error"
        opened = [c for c in calls if any(e["to"] == "open" for e in c.record.decisions.get("breaker", ()))]
        assert len(opened) == 1
        late = calls[-10:]
        assert all(c.record.decisions.get("skipped") == {"openai": "breaker_open"} for c in late)
        assert all(len(c.record.attempts) == 1 for c in late)
        assert tr.calls["openai.sim"] == 4  # min_calls, then nothing until the cool-off

    run_virtual(main())


def test_flapping_breaker_opens_half_opens_and_closes() -> None:
    flapping = profile({"type": "flapping", "start_s": 0, "period": 20, "down-fraction": 0.25, "mode": "503"})
    breaker = {**FAST_BREAKER, "cooloff_s": 3}

    async def main() -> list[tuple[str, str]]:
        rt, _ = runtime(settings({"breaker": breaker}), openai=flapping)
        seen: list[tuple[str, str]] = []
        for i in range(300):  # 30 s at 10 requests/s
            call = make_call(rt, model="solo", n=i)
            await send(rt, call)
            seen += [(e["from"], e["to"]) for e in call.record.decisions.get("breaker", ())]
            await asyncio.sleep(0.1)
        return seen

    seen = run_virtual(main())
    assert seen[0] == ("closed", "open")
    assert ("open", "half_open") in seen and ("half_open", "closed") in seen
    assert seen.index(("closed", "open")) < seen.index(("half_open", "closed"))


def test_all_breakers_open_answers_503_at_once_with_retry_after() -> None:
    async def main() -> None:
        rt, tr = runtime(settings({"breaker": FAST_BREAKER}), openai=OUTAGE, vllm=OUTAGE)
        for i in range(10):
            await send(rt, make_call(rt, n=i))
        before = sum(tr.calls.values())
        t0 = rt.clock.monotonic()
        result, _ = await send(rt, make_call(rt, n=99))
        assert isinstance(result, Unavailable)
        assert int(result.headers["retry-after"]) >= 1
        assert rt.clock.monotonic() == t0 and sum(tr.calls.values()) == before

    run_virtual(main())


def test_sustained_outage_upstream_calls_per_request_stay_within_budget() -> None:
    """Breakers that never open: only the retry budget stands between the outage and a retry storm."""
    never = {"min_calls": 1000000, "consecutive_failures": 0}

    async def main() -> float:
        rt, tr = runtime(settings({"breaker": never, "retry": {"max_attempts": 3}}), openai=OUTAGE, vllm=OUTAGE)
        n = 1000
        for i in range(n):
            result, _ = await send(rt, make_call(rt, n=i))
            assert isinstance(result, GatewayError)
            await asyncio.sleep(0.02)
        return sum(tr.calls.values()) / n

    ratio = run_virtual(main())
    assert 1.0 < ratio <= 1.2


def test_mid_stream_cut_ends_with_an_error_event_and_no_done() -> None:
    cut = profile({"type": "slow_stream", "start_s": 0, "cut-after-tokens": 3, "cut-mode": "reset"})

    async def main() -> tuple[bytes, Call]:
        rt, _ = runtime(settings(), openai=cut)
        call = make_call(rt, model="solo", stream=True)
        result, body = await send(rt, call)
        assert isinstance(result, Reply) and result.status == 200
        return body, call

    body, call = run_virtual(main())
    events = [e for e in body.split(b"\n\n") if e]
    assert b"[DONE]" not in body
    last = orjson.loads(events[-1].removeprefix(b"data: "))
    assert set(last["error"]) == {"message", "type", "param", "code"}
    assert call.record.tokens_out == 3 and call.record.error_type == "stream_cut"  # its outcome: error
    assert call.record.attempts[0].outcome == "stream_cut"


def test_stream_failing_before_its_first_chunk_is_retried() -> None:
    cut = profile({"type": "slow_stream", "start_s": 0, "cut-after-tokens": 0, "cut-mode": "reset"})

    async def main() -> list[tuple[bytes, Call]]:
        rt, _ = runtime(settings(), openai=cut)
        out = []
        for i in range(6):
            call = make_call(rt, stream=True, n=i)
            out.append(((await send(rt, call))[1], call))
        return out

    results = run_virtual(main())
    assert all(body.endswith(b"data: [DONE]\n\n") for body, _ in results)
    retried = [c for _, c in results if len(c.record.attempts) == 2]
    assert retried
    assert all([a.outcome for a in c.record.attempts] == ["stream_cut", "ok"] for c in retried)


def test_pinning_rules() -> None:
    async def main() -> None:
        s = settings({"breaker": FAST_BREAKER})
        rt, _ = runtime(s, openai=OUTAGE)
        sre, batch = s.consumers
        r, _ = await send(rt, make_call(rt, consumer=batch, headers={"x-provider-pin": "vllm"}))
        assert isinstance(r, PermissionDenied) and r.status == 403
        r, _ = await send(rt, make_call(rt, consumer=sre, headers={"x-provider-pin": "nope"}))
        assert isinstance(r, GatewayError) and r.status == 400
        call = make_call(rt, consumer=sre, headers={"x-provider-priority": "vllm"})
        r, _ = await send(rt, call)
        assert isinstance(r, Reply) and call.record.decisions["pinned"] == "vllm"
        for i in range(6):  # open openai's breaker through pinned calls: no silent reroute
            call = make_call(rt, consumer=sre, headers={"x-provider-pin": "openai"}, n=i)
            r, _ = await send(rt, call)
            assert isinstance(r, GatewayError)
            assert {a.provider for a in call.record.attempts} <= {"openai"}
        assert isinstance(r, Unavailable) and "pinned provider 'openai'" in r.message
        assert "retry-after" in r.headers

    run_virtual(main())


def test_insufficient_quota_fails_over_and_skips_the_provider() -> None:
    broke = profile({"type": "outage", "start_s": 0, "mode": "insufficient_quota"})

    async def main() -> None:
        rt, tr = runtime(settings(), openai=broke)
        for i in range(20):
            call = make_call(rt, n=i)
            r, _ = await send(rt, call)
            assert isinstance(r, Reply)
        assert tr.calls["openai.sim"] == 1
        assert call.record.decisions["skipped"] == {"openai": "insufficient_quota"}

    run_virtual(main())


def test_upstream_auth_failure_fails_over_and_opens_the_breaker() -> None:
    wrong_key = profile(api_keys=["sk-sim-only-this-key-0001"])  # the gateway sends no such key: every call 401

    async def main() -> None:
        rt, tr = runtime(settings({"breaker": FAST_BREAKER}), openai=wrong_key)
        calls = [make_call(rt, n=i) for i in range(30)]
        for call in calls:
            r, _ = await send(rt, call)
            assert isinstance(r, Reply) and r.status == 200 and call.record.provider == "vllm"
        refused = [a for c in calls for a in c.record.attempts if a.provider == "openai"]
        assert refused and all((a.outcome, a.status) == ("client_error", 401) for a in refused)
        assert any(e["to"] == "open" for c in calls for e in c.record.decisions.get("breaker", ()))
        assert tr.calls["openai.sim"] == 4  # min_calls, then the breaker keeps the broken route out

    run_virtual(main())


def test_chaos_injections_are_tagged() -> None:
    chaos = {"enabled": True, "rules": [{"fault": "error", "percent": 100, "provider": "openai", "status": 500}]}

    async def main() -> Call:
        rt, tr = runtime(settings({"chaos": chaos}))
        call = make_call(rt, model="solo")
        r, _ = await send(rt, call)
        assert isinstance(r, GatewayError) and tr.calls["openai.sim"] == 0
        return call

    call = run_virtual(main())
    assert call.record.attempts and all(a.injected for a in call.record.attempts)
    assert call.record.decisions["chaos"][0] == {"provider": "openai", "rule": 0, "fault": "error", "status": 500}


def test_guardrail_truncates_a_stream() -> None:
    async def main() -> tuple[bytes, Call]:
        rt, _ = runtime(settings({"guardrails": {"max_response_chars": 10}}))
        call = make_call(rt, model="solo", stream=True)
        return (await send(rt, call))[1], call

    body, call = run_virtual(main())
    chunks = [orjson.loads(e.removeprefix(b"data: ")) for e in body.split(b"\n\n") if e and b"[DONE]" not in e]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert len(text) == 10
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert body.endswith(b"data: [DONE]\n\n")
    assert call.record.decisions["guardrail"] == ["max_length.truncate"]


@pytest.mark.parametrize("header", ["0.5", "0.001"])
def test_client_deadline_bounds_every_attempt(header: str) -> None:
    hang = profile({"type": "outage", "start_s": 0, "mode": "hang"})

    async def main() -> float:
        rt, _ = runtime(settings(), openai=hang, vllm=hang)
        t0 = rt.clock.monotonic()
        r, _ = await send(rt, make_call(rt, headers={"x-request-timeout": header}))
        assert isinstance(r, GatewayError) and r.status == 504 and r.code == "timeout"
        return rt.clock.monotonic() - t0

    assert run_virtual(main()) == float(header)


async def test_admin_chaos_endpoint_needs_the_admin_key_and_changes_chaos() -> None:
    import fakeredis
    import httpx

    from gateway.app import create_app
    from gateway.transport import AsgiTransport
    from simulators import create_app as create_simulator

    from .conftest import ADMIN_KEY, PIN_KEY

    sims = {"http://openai.sim": create_simulator(flavour="openai", profile="instant", seed=1, name="openai")}
    app = create_app(settings(), state=fakeredis.FakeAsyncRedis(), upstream_transport=AsgiTransport(sims))
    rule = {"fault": "error", "percent": 100, "provider": "openai", "status": 502}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        r = await client.put("/admin/chaos", json={"enabled": True}, headers={"authorization": f"Bearer {PIN_KEY}"})
        assert r.status_code == 401 and set(r.json()["error"]) == {"message", "type", "param", "code"}
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        r = await client.put("/admin/chaos", json={"enabled": True, "rules": [{"fault": "nope"}]}, headers=admin)
        assert r.status_code == 400
        r = await client.put("/admin/chaos", json={"enabled": True, "rules": [rule]}, headers=admin)
        assert r.status_code == 200
        chat = {"model": "solo", "messages": [{"role": "user", "content": "hi"}]}
        r = await client.post("/v1/chat/completions", json=chat, headers={"authorization": f"Bearer {PIN_KEY}"})
        assert r.status_code == 502
        assert (await client.get("/admin/chaos", headers=admin)).json()["enabled"] is True
        assert (await client.delete("/admin/chaos", headers=admin)).json()["enabled"] is False
        r = await client.post("/v1/chat/completions", json=chat, headers={"authorization": f"Bearer {PIN_KEY}"})
        assert r.status_code == 200
        state = (await client.get("/admin/router", headers=admin)).json()
        assert state["breakers"]["openai/gpt-4o-mini"] == "closed"


def test_overload_sheds_fast_and_keeps_admitted_latency_bounded() -> None:
    """A vLLM-like upstream with an unbounded queue: latency would grow without limit; the gateway sheds."""
    slow = {
        "base": "instant",
        "latency": {"time-to-first-token": 200},
        "capacity": {"max-num-seqs": 4, "time-factor-under-load": 1.0},
    }
    shedding = {"provider_limit": 4, "queue_limit": 8, "max_queue_wait_s": 0.5, "global_limit": 64}

    async def main() -> tuple[list[float], list[float], list[str]]:
        s = settings({"shedding": shedding})
        rt, _ = runtime(s, openai=slow)
        admitted: list[float] = []
        shed: list[float] = []
        reasons: list[str] = []

        async def one(i: int) -> None:
            await asyncio.sleep(i * 0.005)  # 200 requests/s against a capacity of 20 requests/s
            call = make_call(rt, model="solo", n=i, consumer=s.consumers[0])
            t0 = rt.clock.monotonic()
            r, _ = await send(rt, call)
            took = rt.clock.monotonic() - t0
            if isinstance(r, Reply):
                admitted.append(took)
            else:
                assert isinstance(r, Unavailable) and r.headers["retry-after"] == "1"
                shed.append(took)
                reasons.append(call.record.decisions["shed"])

        await asyncio.gather(*(one(i) for i in range(400)))
        return admitted, shed, reasons

    admitted, shed, reasons = run_virtual(main())
    assert len(admitted) >= 30 and len(shed) >= 200
    assert max(admitted) <= 0.5 + 0.2 + 0.05  # queue wait cap + service time
    assert max(shed) <= 0.5 + 1e-9
    assert "queue_full" in reasons  # shed without waiting
    assert min(shed) == 0.0


def test_low_priority_is_shed_first_under_the_global_limit() -> None:
    slow = {"base": "instant", "latency": {"time-to-first-token": 1000}}

    async def main() -> dict[str, list[int]]:
        s = settings({"shedding": {"global_limit": 10, "priority_reserve": 0.5}})
        rt, _ = runtime(s, openai=slow)
        sre, batch = s.consumers
        status: dict[str, list[int]] = {"sre": [], "batch": []}

        async def one(i: int, who: Any) -> None:
            r, _ = await send(rt, make_call(rt, model="solo", n=i, consumer=who))
            status[who.name].append(r.status)

        await asyncio.gather(*(one(i, batch if i % 2 else sre) for i in range(30)))
        return status

    status = run_virtual(main())
    # ceilings: priority 0 -> 10 - 5 = 5 in flight, priority 5 -> 10 - 2 = 8; arrivals alternate sre, batch
    assert (status["sre"].count(200), status["batch"].count(200)) == (6, 2)
    assert set(status["sre"] + status["batch"]) == {200, 503}


def test_a_client_that_leaves_once_it_has_done_completed_the_stream() -> None:
    """The SDK stops reading at ``[DONE]`` and closes: the stream was complete, not cancelled."""

    async def main() -> Call:
        rt, _ = runtime(settings())
        call = make_call(rt, model="solo", stream=True)
        reply = await rt.router(call)
        assert reply.stream is not None
        async for chunk in reply.stream:
            if chunk.endswith(b"data: [DONE]\n\n"):  # [DONE] comes with the last chunks
                break  # leaves the generator suspended at its last frame, as a closed connection does
        await reply.stream.aclose()  # type: ignore[attr-defined]  # the stream is an async generator
        return call

    call = run_virtual(main())
    assert call.record.outcome == "ok"
    assert [a.outcome for a in call.record.attempts] == ["ok"]
