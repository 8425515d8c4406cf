"""``POST /v1/embeddings`` on the OpenAI and vLLM simulators, through the official SDK and raw."""

from __future__ import annotations

import base64
import math
import struct

import pytest

from tests.simulators.conftest import SimFactory


@pytest.mark.parametrize("flavour", ["openai", "vllm"])
async def test_sdk_embeddings_are_deterministic_unit_vectors(make_sim: SimFactory, flavour: str) -> None:
    a, b = make_sim(flavour, seed=5), make_sim(flavour, seed=5)
    one = await a.sdk.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    two = await b.sdk.embeddings.create(model="text-embedding-3-small", input="alpha")
    assert [d.index for d in one.data] == [0, 1]
    assert len(one.data[0].embedding) == 1536
    assert one.data[0].embedding == two.data[0].embedding
    assert one.data[0].embedding != one.data[1].embedding
    assert math.isclose(sum(x * x for x in one.data[0].embedding), 1.0, rel_tol=1e-6)
    assert one.usage.prompt_tokens == one.usage.total_tokens == 3  # 4 characters a token, rounded up


async def test_seed_changes_the_vectors(make_sim: SimFactory) -> None:
    a = await make_sim(seed=1).sdk.embeddings.create(model="m", input="x")
    b = await make_sim(seed=2).sdk.embeddings.create(model="m", input="x")
    assert a.data[0].embedding != b.data[0].embedding


async def test_dimensions_and_base64(make_sim: SimFactory) -> None:
    sim = make_sim()
    floats = await sim.sdk.embeddings.create(model="m", input="x", dimensions=16)
    assert len(floats.data[0].embedding) == 16
    r = await sim.http.post(
        "/v1/embeddings", json={"model": "m", "input": "x", "dimensions": 16, "encoding_format": "base64"}
    )
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    decoded = struct.unpack("<16f", raw)
    assert all(math.isclose(p, q, abs_tol=1e-6) for p, q in zip(decoded, floats.data[0].embedding, strict=True))


async def test_token_arrays(make_sim: SimFactory) -> None:
    r = await make_sim().sdk.embeddings.create(model="m", input=[[1, 2, 3], [4, 5]])
    assert len(r.data) == 2 and r.usage.prompt_tokens == 5


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m"},
        {"model": "m", "input": []},
        {"model": "m", "input": [""]},
        {"model": "m", "input": [[1, "x"]]},
        {"model": "m", "input": "x", "dimensions": 0},
        {"model": "m", "input": "x", "encoding_format": "int8"},
        {"input": "x"},
    ],
)
async def test_invalid_bodies_are_400(make_sim: SimFactory, body: dict[str, object]) -> None:
    r = await make_sim().http.post("/v1/embeddings", json=body)
    assert r.status_code == 400 and r.json()["error"]["message"]


async def test_embeddings_meet_fault_phases(make_sim: SimFactory) -> None:
    sim = make_sim(profile={"timeline": {"phases": [{"type": "outage", "mode": "503"}]}})
    r = await sim.http.post("/v1/embeddings", json={"model": "m", "input": "x"})
    assert r.status_code == 503
