"""Event lines and their metrics: configuration errors at start, breaker transitions, state-store (Redis) failures
and recoveries, quota rejections by limit type."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.config import hash_key
from gateway.main import main
from gateway.observability.requestlog import read_records

from .conftest import KEY, Gateway, make_settings
from .helpers import kit

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_a_configuration_error_at_start_is_one_json_event(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "gateway.yaml"
    bad.write_text("providers: []\nmodels: []\nserver: {port: 0}\n")
    assert main(["--config", str(bad)]) == 2
    (line,) = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert (line["event"], line["level"]) == ("config_error", "error")
    assert str(bad) in line["message"] and "providers" in line["message"]
    assert isinstance(line["ts"], float)


def test_breaker_transition_is_logged_and_counted() -> None:
    k = kit(make_settings())
    k.clock.advance(5.0)
    k.telemetry.breaker_transition("openai-sim", "closed", "open", "failure_rate")
    k.telemetry.breaker_transition("openai-sim", "open", "half_open", "cooloff_elapsed")
    lines = [json.loads(x) for x in k.log.getvalue().splitlines()]
    assert lines == [
        {
            "ts": k.clock.now(),
            "level": "warning",
            "event": "breaker_transition",
            "provider": "openai-sim",
            "from_state": "closed",
            "to_state": "open",
            "reason": "failure_rate",
        },
        {
            "ts": k.clock.now(),
            "level": "info",
            "event": "breaker_transition",
            "provider": "openai-sim",
            "from_state": "open",
            "to_state": "half_open",
            "reason": "cooloff_elapsed",
        },
    ]
    text = k.telemetry.metrics.exposition().decode()
    assert 'faultline_breaker_state{provider="openai-sim",state="half_open"} 1.0' in text
    assert 'faultline_breaker_state{provider="openai-sim",state="open"} 0.0' in text
    assert 'faultline_breaker_state{provider="vllm-sim",state="closed"} 1.0' in text  # every provider from the start
    assert 'faultline_breaker_transitions_total{from_state="closed",provider="openai-sim",to_state="open"} 1.0' in text
    assert 'faultline_breaker_opens_total{provider="openai-sim",reason="failure_rate"} 1.0' in text


async def test_an_unreachable_state_store_is_logged_counted_and_requests_still_served(
    gateway: Callable[..., Any],
) -> None:
    alice = {"name": "alice", "key_sha256": hash_key("sk-alice"), "limits": {"rpm": 100}}
    # nothing listens on port 1; no client-side retries, so the refusal is immediate
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    gw: Gateway = await gateway(consumers=[alice], state=dead)
    r = await gw.client.post("/v1/chat/completions", json=BODY, headers=KEY)
    assert r.status_code == 200  # the default failure policy is open: the local limiter answers
    scrape = gw.runtime.telemetry.metrics.exposition().decode()
    await gw.stop()
    await dead.aclose()
    events = {x["event"]: x for x in gw.lines()}
    assert events["state_store_transition"]["healthy"] is False
    assert events["state_store_transition"]["level"] == "warning"
    assert events["state_store_failure"]["error"] in ("ConnectionError", "TimeoutError", "OSError")
    assert events["request"]["status"] == 200
    assert "faultline_state_store_up 0.0" in scrape
    assert 'faultline_quota_decisions_total{backend="local",kind="ok"} 1.0' in scrape
    assert "faultline_state_store_failures_total{operation=" in scrape


async def test_quota_rejections_are_counted_by_limit_type(gateway: Callable[..., Any]) -> None:
    alice = {"name": "alice", "key_sha256": hash_key("sk-alice"), "limits": {"rpm": 1}}
    gw: Gateway = await gateway(consumers=[alice])
    statuses = [(await gw.client.post("/v1/chat/completions", json=BODY, headers=KEY)).status_code for _ in range(3)]
    assert statuses == [200, 429, 429]
    scrape = gw.runtime.telemetry.metrics.exposition().decode()
    await gw.stop()
    assert 'faultline_quota_rejections_total{consumer="alice",limit="requests"} 2.0' in scrape
    assert (
        'faultline_requests_total{consumer="alice",model="gpt-4o-mini",route="/v1/chat/completions",status="429"} 2.0'
        in scrape
    )
    outcomes = [(r["status"], r["outcome"], r["error_type"]) for r in read_records(gw.request_log)]
    assert outcomes == [(200, "ok", None), *[(429, "quota_rejected", "rate_limit_exceeded")] * 2]
