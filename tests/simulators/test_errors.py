"""Error profiles: the official SDK raises its typed exception for each; bodies and headers as the real services."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion

from gateway.clock import FakeClock, LoopClock, run_virtual
from simulators import SimulatedConnectionReset, create_app
from tests.simulators.conftest import Sim, SimFactory


def outage(mode: object) -> dict[str, Any]:
    return {"timeline": [{"type": "outage", "mode": mode}]}


async def _call(sim: Sim, **kw: Any) -> ChatCompletion:
    reply: ChatCompletion = await sim.sdk.chat.completions.create(
        model=kw.pop("model", "gpt-4o-mini"), messages=[{"role": "user", "content": "hi"}], **kw
    )
    return reply


@pytest.mark.parametrize("flavour", ["openai", "vllm"])
@pytest.mark.parametrize(
    ("profile", "exc", "status"),
    [
        (outage(503), openai.InternalServerError, 503),
        (outage(500), openai.InternalServerError, 500),
        (outage("429"), openai.RateLimitError, 429),
        ({"timeline": [{"type": "budget_exhaustion", "after-tokens": 0}]}, openai.RateLimitError, 429),
        ({"api-keys": ["sk-other"]}, openai.AuthenticationError, 401),
        ({"served-models": ["other-model"]}, openai.NotFoundError, 404),
        ({"max-model-len": 100}, openai.BadRequestError, 400),
    ],
)
async def test_typed_exceptions(
    make_sim: SimFactory, flavour: str, profile: dict[str, Any], exc: type[openai.APIStatusError], status: int
) -> None:
    sim = make_sim(flavour, profile)
    with pytest.raises(exc) as info:
        await _call(sim, max_tokens=200)
    assert info.value.status_code == status


async def test_openai_rate_limit_body_and_headers(make_sim: SimFactory) -> None:
    sim = make_sim("openai", {"rate-limits": {"rpm": 2}}, clock=FakeClock())
    ok = await sim.chat()
    assert ok.headers["x-ratelimit-limit-requests"] == "2"
    assert ok.headers["x-ratelimit-remaining-requests"] == "1"
    assert ok.headers["x-ratelimit-reset-requests"] == "30s"
    await sim.chat()
    resp = await sim.chat()
    assert resp.status_code == 429
    err = resp.json()["error"]
    assert err["type"] == "requests" and err["code"] == "rate_limit_exceeded" and err["param"] is None
    assert "on requests per min (RPM): Limit 2, Used 2, Requested 1" in err["message"]
    assert resp.headers["retry-after"] == "30"
    assert resp.headers["x-ratelimit-remaining-requests"] == "0"
    assert resp.headers["x-ratelimit-reset-requests"] == "1m0s"


async def test_openai_token_rate_limit(make_sim: SimFactory) -> None:
    sim = make_sim("openai", {"rate-limits": {"tpm": 1000}}, clock=FakeClock())
    resp = await sim.chat(max_tokens=900)
    assert resp.headers["x-ratelimit-limit-tokens"] == "1000"
    resp = await sim.chat(max_tokens=900)
    err = resp.json()["error"]
    assert resp.status_code == 429 and err["type"] == "tokens" and "tokens per min (TPM)" in err["message"]
    assert err["code"] == "rate_limit_exceeded"


async def test_insufficient_quota_body(make_sim: SimFactory) -> None:
    sim = make_sim("openai", {"timeline": [{"type": "budget_exhaustion", "after-tokens": 0}]})
    resp = await sim.chat()
    err = resp.json()["error"]
    assert resp.status_code == 429
    assert err["type"] == err["code"] == "insufficient_quota"
    assert err["message"].startswith("You exceeded your current quota")
    assert "retry-after" not in resp.headers


async def test_openai_server_error_bodies(make_sim: SimFactory) -> None:
    r503 = (await make_sim("openai", outage(503)).chat()).json()["error"]
    assert r503["type"] == "server_error" and "currently overloaded" in r503["message"]
    r500 = (await make_sim("openai", outage(500)).chat()).json()["error"]
    assert r500["message"].startswith("The server had an error while processing your request.")
    r401 = (await make_sim("openai", {"api-keys": ["x"]}).chat()).json()["error"]
    assert r401["code"] == "invalid_api_key"


async def test_vllm_context_length_message_and_shape(make_sim: SimFactory) -> None:
    sim = make_sim("vllm", {"max-model-len": 4096})
    long = "x" * (4 * 2700)
    resp = await sim.http.post(
        "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": long}], "max_tokens": 8000},
    )
    assert resp.status_code == 400
    body = resp.json()
    prompt = 3 + 3 + (len(long) + 3) // 4
    assert body == {
        "error": {
            "message": (
                "'max_tokens' or 'max_completion_tokens' is too large: 8000. This model's maximum context length "
                f"is 4096 tokens and your request has {prompt} input tokens (8000 > 4096 - {prompt})."
            ),
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    }


async def test_vllm_error_shape_for_server_errors(make_sim: SimFactory) -> None:
    body = (await make_sim("vllm", outage(503)).chat()).json()
    assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["code"] == 503
    assert (await make_sim("vllm", {"api-keys": ["x"]}).chat()).json() == {"error": "Unauthorized"}


@pytest.mark.parametrize("flavour", ["openai", "vllm"])
async def test_connection_reset_is_an_exception_from_the_app(make_sim: SimFactory, flavour: str) -> None:
    sim = make_sim(flavour, outage("reset"))
    with pytest.raises(SimulatedConnectionReset):
        await sim.chat()
    # in process the SDK sees the app's exception itself; over a socket it becomes APIConnectionError
    with pytest.raises((openai.APIConnectionError, ConnectionResetError)):
        await _call(sim)


def test_hang_holds_until_the_client_gives_up() -> None:
    async def main() -> tuple[float, float]:
        clock = LoopClock()
        app = create_app("openai", outage("hang"), seed=0, clock=clock)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as c:
            t0 = clock.monotonic()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(45):
                    await c.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user"}]})
            return t0, clock.monotonic()

    t0, t1 = run_virtual(main())
    assert t1 - t0 == pytest.approx(45)


def test_hang_with_timeout_resets() -> None:
    async def main() -> float:
        clock = LoopClock()
        profile = {"timeline": [{"type": "outage", "mode": "hang", "hang-timeout": 20}]}
        app = create_app("openai", profile, seed=0, clock=clock)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as c:
            t0 = clock.monotonic()
            with pytest.raises(SimulatedConnectionReset):
                await c.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user"}]})
            return clock.monotonic() - t0

    assert run_virtual(main()) == pytest.approx(20)


@pytest.mark.parametrize(
    ("profile", "limit"),
    [
        (outage("429"), "500"),
        ({"rate-limits": {"rpm": 60}, "timeline": [{"type": "degradation", "failure-injection-rate": 1.0,
                                                    "failure-types": ["rate_limit"]}]}, "60"),
    ],
)  # fmt: skip
async def test_scripted_429_names_a_limit_and_sends_its_headers(
    make_sim: SimFactory, profile: dict[str, Any], limit: str
) -> None:
    resp = await make_sim("openai", profile, clock=FakeClock()).chat()
    assert resp.status_code == 429
    err = resp.json()["error"]
    assert err["type"] == "requests" and err["code"] == "rate_limit_exceeded"
    assert (
        f"on requests per min (RPM): Limit {limit}, Used {limit}, Requested 1. Please try again in 1s."
        in (err["message"])
    )
    assert resp.headers["retry-after"] == "1"
    assert resp.headers["x-ratelimit-limit-requests"] == limit
    assert resp.headers["x-ratelimit-remaining-requests"] == "0"
    assert resp.headers["x-ratelimit-reset-requests"] == "1s"


async def test_error_responses_carry_a_request_id(make_sim: SimFactory) -> None:
    resp = await make_sim("openai", outage(500)).chat()
    assert resp.status_code == 500 and resp.headers["x-request-id"].startswith("req_")


@pytest.mark.parametrize(
    ("flavour", "message"),
    [
        ("vllm", "This model's maximum context length is 64 tokens. However, your request has {p} input tokens. "
                 "Please reduce the length of the input messages."),
        ("openai", "This model's maximum context length is 64 tokens. However, your messages resulted in {p} "
                   "tokens. Please reduce the length of the messages."),
    ],
)  # fmt: skip
async def test_prompt_alone_too_long(make_sim: SimFactory, flavour: str, message: str) -> None:
    sim = make_sim(flavour, {"max-model-len": 64})
    text = "x" * 400
    resp = await sim.http.post(
        "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": text}]}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == message.format(p=3 + 3 + (len(text) + 3) // 4)


async def test_without_max_tokens_the_answer_fits_the_context(make_sim: SimFactory) -> None:
    sim = make_sim("vllm", {"max-model-len": 40, "output": {"output-tokens": 100}})
    body = (await sim.chat()).json()  # prompt: 3 + 3 + 6 = 12 tokens, so 28 are left
    assert body["usage"]["prompt_tokens"] == 12
    assert body["usage"]["completion_tokens"] == 28 and body["choices"][0]["finish_reason"] == "length"


BAD_BODIES = [
    b"",
    b"[]",
    b"null",
    b'"text"',
    b'{"model": 5, "messages": [{"role": "user", "content": "hi"}]}',
    b'{"model": "m"}',
    b'{"model": "m", "messages": "hi"}',
    b'{"model": "m", "messages": [1, null, "x"], "max_tokens": 4}',
    b'{"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": 5}, 7, {"text": "ok"}]}]}',
    b'{"model": "m", "messages": [{"role": "user", "content": {"a": 1}}]}',
    b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}',
    b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": true}',
    b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "8"}',
    b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1e99}',
    b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true, "stream_options": 3}',
    b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": "yes", "stream_options": []}',
    b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 99999999999999999999}',
]


@pytest.mark.parametrize("flavour", ["openai", "vllm"])
@pytest.mark.parametrize("body", BAD_BODIES)
async def test_bad_input_never_gets_a_5xx(make_sim: SimFactory, flavour: str, body: bytes) -> None:
    sim = make_sim(flavour, {"max-model-len": 4096})
    resp = await sim.http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert resp.status_code < 500
    if resp.status_code != 200:
        err = resp.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["message"]


@pytest.mark.parametrize("flavour", ["openai", "vllm"])
async def test_a_full_queue_is_a_rate_limit_error_in_the_sdk(make_sim: SimFactory, flavour: str) -> None:
    sim = make_sim(flavour, {"capacity": {"max-num-seqs": 1, "max-waiting-queue-length": 0}})
    sim.engine.scheduler.running = 1  # the only slot is taken (concurrency itself: test_capacity.py)
    with pytest.raises(openai.RateLimitError) as info:
        await _call(sim)
    assert info.value.status_code == 429
    sim.engine.scheduler.running = 0
    assert (await _call(sim)).choices[0].finish_reason == "stop"


async def test_sdk_rate_limit_error_exposes_the_headers(make_sim: SimFactory) -> None:
    sim = make_sim("openai", {"rate-limits": {"tpm": 500}}, clock=FakeClock())
    with pytest.raises(openai.RateLimitError) as info:
        for _ in range(3):
            await _call(sim, max_tokens=200)
    h = info.value.response.headers
    assert info.value.code == "rate_limit_exceeded" and info.value.type == "tokens"
    assert h["x-ratelimit-limit-tokens"] == "500" and h["x-ratelimit-remaining-tokens"] == "86"
    assert h["retry-after"] == "15" and h["x-ratelimit-reset-tokens"] == "49.68s"
