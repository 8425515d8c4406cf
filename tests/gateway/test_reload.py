"""Reloading the configuration in process (gateway/reload.py): ``POST /admin/reload`` swaps in a valid file at
once, a request in flight finishes on the generation it started with, an invalid file or a restart-only change is
refused with a 400 naming the field while the old configuration keeps serving, and each reload is counted and
logged."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import orjson
import pytest
import yaml

from gateway.app import create_app
from gateway.clock import SystemClock
from gateway.config import ConfigError, hash_key, load_settings, parse_settings
from gateway.reload import Outcome, ReloadWiring, problems, restart_required
from gateway.transport import AsgiTransport, UpstreamResponse
from simulators import create_app as create_simulator

ADMIN = "fl-test-admin"
KEY = "fl-test-chat"


def config(openai_weight: float = 1, vllm_weight: float = 0, **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "seed": 5,
        "admin_key_sha256": hash_key(ADMIN),
        "consumers": [{"name": "app", "key_sha256": hash_key(KEY)}],
        "providers": [
            {"name": "openai", "kind": "openai", "base_url": "http://openai.sim/v1"},
            {"name": "vllm", "kind": "vllm", "base_url": "http://vllm.sim/v1"},
        ],
        "models": [
            {
                "name": "chat",
                "routes": [
                    {"provider": "openai", "model": "gpt-4o-mini", "weight": openai_weight},
                    {"provider": "vllm", "model": "llama", "weight": vllm_weight},
                ],
            }
        ],
    }
    raw.update(extra)
    return raw


class Gated(AsgiTransport):
    """Counts upstream calls per host; while ``hold`` is set, a call waits for it to be cleared."""

    def __init__(self, apps: Mapping[str, Any]) -> None:
        super().__init__(apps)
        self.calls: list[str] = []
        self.hold: asyncio.Event | None = None
        self.reached = asyncio.Event()

    async def send(self, url: str, headers: Mapping[str, str], body: bytes, **kw: Any) -> UpstreamResponse:
        self.calls.append(url.split("/")[2])
        if self.hold is not None:
            self.reached.set()
            await self.hold.wait()
        return await super().send(url, headers, body, **kw)


Setup = tuple[httpx.AsyncClient, Gated, Path, io.StringIO, Any]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    opened: list[tuple[Any, httpx.AsyncClient]] = []

    async def build(notify: Callable[[], None] | None = None) -> Setup:
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(config()))
        clock = SystemClock()
        sims = {
            f"http://{name}.sim": create_simulator(flavour=name, profile="instant", seed=1, name=name, clock=clock)
            for name in ("openai", "vllm")
        }
        transport = Gated(sims)
        wiring = ReloadWiring(source=lambda: load_settings(path), notify=notify)
        state = fakeredis.FakeAsyncRedis()
        app = create_app(load_settings(path), clock=clock, state=state, upstream_transport=transport, reload=wiring)
        logs = io.StringIO()
        app.state.runtime.log.set_stream(logs)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")
        opened.append((lifespan, client))
        return client, transport, path, logs, app

    yield build
    for lifespan, client in reversed(opened):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


async def chat(client: httpx.AsyncClient) -> httpx.Response:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    return await client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"})


async def reload(client: httpx.AsyncClient, key: str = ADMIN) -> httpx.Response:
    return await client.post("/admin/reload", headers={"authorization": f"Bearer {key}"})


def events(app: Any, logs: io.StringIO, name: str) -> list[dict[str, Any]]:
    app.state.runtime.log.flush()  # the lines of the current tick, not written yet
    return [e for e in map(orjson.loads, logs.getvalue().splitlines()) if e.get("event") == name]


def sample(app: Any, name: str, labels: dict[str, str] | None = None) -> float | None:
    value: float | None = app.state.runtime.telemetry.metrics.registry.get_sample_value(name, labels or {})
    return value


async def test_a_valid_file_is_served_from_the_next_request_on(gateway: Callable[..., Any]) -> None:
    client, transport, path, logs, app = await gateway()
    assert [(await chat(client)).status_code for _ in range(3)] == [200] * 3
    path.write_text(yaml.safe_dump(config(openai_weight=0, vllm_weight=1)))
    r = await reload(client)
    assert r.status_code == 200
    assert r.json()["result"] == "ok"
    assert r.json()["generation"] == 2
    assert r.json()["changed"] == ["models"]
    assert [(await chat(client)).status_code for _ in range(3)] == [200] * 3
    assert transport.calls == ["openai.sim"] * 3 + ["vllm.sim"] * 3
    assert sample(app, "faultline_config_generation") == 2
    assert sample(app, "faultline_config_reloads_total", {"result": "ok"}) == 1
    assert [(e["generation"], e["trigger"], e["changed"]) for e in events(app, logs, "config_reload")] == [
        (2, "admin", ["models"])
    ]
    status = (await client.get("/admin/reload", headers={"authorization": f"Bearer {ADMIN}"})).json()
    assert (status["generation"], status["last"]["result"]) == (2, "ok")


async def test_a_new_provider_and_consumer_are_known_to_the_metrics(gateway: Callable[..., Any]) -> None:
    client, _, path, _, app = await gateway()
    raw = config()
    raw["providers"].append({"name": "extra", "kind": "openai", "base_url": "http://openai.sim/v1"})
    raw["models"][0]["routes"] = [{"provider": "extra", "model": "gpt-4o-mini"}]
    raw["consumers"].append({"name": "newcomer", "key_sha256": hash_key("fl-test-newcomer")})
    path.write_text(yaml.safe_dump(raw))
    assert (await reload(client)).status_code == 200
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    r = await client.post("/v1/chat/completions", json=body, headers={"authorization": "Bearer fl-test-newcomer"})
    assert r.status_code == 200
    assert sample(app, "faultline_breaker_state", {"provider": "extra", "state": "closed"}) == 1
    attempts = {"provider": "extra", "outcome": "ok"}
    assert sample(app, "faultline_upstream_attempts_total", attempts) == 1
    requests = {"route": "/v1/chat/completions", "status": "200", "consumer": "newcomer", "model": "chat"}
    assert sample(app, "faultline_requests_total", requests) == 1


async def test_a_health_check_added_by_a_reload_is_run_and_reported(gateway: Callable[..., Any]) -> None:
    client, transport, path, _, app = await gateway()
    raw = config()
    raw["providers"][1]["health_check"] = {"path": "/health", "interval_s": 3600}
    path.write_text(yaml.safe_dump(raw))
    assert (await reload(client)).status_code == 200
    for _ in range(500):  # the new check's task runs its first check at once; let the loop get to its answer
        if app.state.runtime.health.health("vllm") != "unknown":
            break
        await asyncio.sleep(0)
    assert transport.calls == ["vllm.sim"]
    ready = (await client.get("/v1/ready")).json()["providers"]
    assert (ready["vllm"]["health"], ready["openai"]["health"]) == ("healthy", "unchecked")
    path.write_text(yaml.safe_dump(config()))
    assert (await reload(client)).status_code == 200
    assert (await client.get("/v1/ready")).json()["providers"]["vllm"]["health"] == "unchecked"


async def test_a_reload_drops_the_series_of_a_removed_provider_and_of_a_removed_health_check(
    gateway: Callable[..., Any],
) -> None:
    client, _, path, _, app = await gateway()
    raw = config()
    for provider in raw["providers"]:  # the simulators answer 404 here: every check fails
        provider["health_check"] = {"path": "/no-such-path", "interval_s": 3600, "unhealthy_after": 1}
    path.write_text(yaml.safe_dump(raw))
    assert (await reload(client)).status_code == 200
    for _ in range(500):  # each new check's task runs its first check at once
        if {app.state.runtime.health.health(p) for p in ("openai", "vllm")} == {"unhealthy"}:
            break
        await asyncio.sleep(0)
    assert sample(app, "faultline_provider_healthy", {"provider": "vllm"}) == 0
    assert sample(app, "faultline_provider_healthy", {"provider": "openai"}) == 0
    raw["providers"] = raw["providers"][:1]
    del raw["providers"][0]["health_check"]
    raw["models"][0]["routes"] = raw["models"][0]["routes"][:1]
    path.write_text(yaml.safe_dump(raw))
    assert (await reload(client)).status_code == 200
    assert sample(app, "faultline_provider_healthy", {"provider": "vllm"}) is None
    assert sample(app, "faultline_provider_healthy", {"provider": "openai"}) is None
    assert sample(app, "faultline_breaker_state", {"provider": "vllm", "state": "closed"}) is None
    assert sample(app, "faultline_breaker_state", {"provider": "openai", "state": "closed"}) == 1
    path.write_text(yaml.safe_dump(config()))
    assert (await reload(client)).status_code == 200  # vllm is back: its breaker shows closed again
    assert sample(app, "faultline_breaker_state", {"provider": "vllm", "state": "closed"}) == 1


async def test_a_request_in_flight_finishes_on_the_generation_it_started_with(gateway: Callable[..., Any]) -> None:
    client, transport, path, _, _ = await gateway()
    transport.hold = asyncio.Event()
    first = asyncio.ensure_future(chat(client))
    await transport.reached.wait()  # the first request is at the upstream, on generation 1
    path.write_text(yaml.safe_dump(config(openai_weight=0, vllm_weight=1)))
    assert (await reload(client)).status_code == 200
    transport.hold.set()
    assert (await first).status_code == 200
    transport.hold = None
    assert (await chat(client)).status_code == 200
    assert transport.calls == ["openai.sim", "vllm.sim"]


async def test_request_ids_do_not_repeat_across_reloads(gateway: Callable[..., Any]) -> None:
    client, _, path, _, _ = await gateway()
    ids: list[str] = []
    for weights in ((0, 1), (1, 0), (0, 1)):
        ids += [(await chat(client)).headers["x-request-id"] for _ in range(3)]
        path.write_text(yaml.safe_dump(config(*weights)))
        assert (await reload(client)).status_code == 200
    ids += [(await chat(client)).headers["x-request-id"] for _ in range(3)]
    assert len(ids) == 12
    assert len(set(ids)) == 12


async def test_a_request_in_flight_on_a_removed_route_does_not_bring_its_breaker_back(
    gateway: Callable[..., Any],
) -> None:
    client, transport, path, _, app = await gateway()
    path.write_text(yaml.safe_dump(config(openai_weight=0, vllm_weight=1)))
    assert (await reload(client)).status_code == 200
    transport.hold = asyncio.Event()
    first = asyncio.ensure_future(chat(client))
    await transport.reached.wait()  # the request is at vllm, on generation 2
    raw = config()
    raw["providers"] = raw["providers"][:1]
    raw["models"][0]["routes"] = raw["models"][0]["routes"][:1]
    path.write_text(yaml.safe_dump(raw))
    assert (await reload(client)).status_code == 200
    transport.hold.set()
    assert (await first).status_code == 200
    assert transport.calls == ["vllm.sim"]
    assert list(app.state.runtime.router.breakers.states()) == ["openai/gpt-4o-mini"]
    router = (await client.get("/admin/router", headers={"authorization": f"Bearer {ADMIN}"})).json()
    assert "vllm" not in str(router)


async def test_an_invalid_file_is_refused_and_the_old_configuration_serves(gateway: Callable[..., Any]) -> None:
    client, transport, path, logs, app = await gateway()
    bad = config(openai_weight=-1)
    path.write_text(yaml.safe_dump(bad))
    r = await reload(client)
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["type"], err["code"]) == ("invalid_request_error", "invalid_config")
    assert err["param"] == "models.0.routes.0.weight"
    assert "greater than or equal to 0" in err["message"]
    assert (await chat(client)).status_code == 200
    assert transport.calls == ["openai.sim"]
    [event] = events(app, logs, "config_error")
    assert event["generation"] == 1
    assert event["errors"][0].startswith("models.0.routes.0.weight:")
    assert sample(app, "faultline_config_reloads_total", {"result": "invalid"}) == 1
    assert sample(app, "faultline_config_generation") == 1


async def test_a_build_failure_is_told_to_the_client_in_the_gateways_words_and_logged_in_full(
    gateway: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _, path, logs, app = await gateway()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("gateway.reload.next_runtime", broken)
    path.write_text(yaml.safe_dump(config(openai_weight=0, vllm_weight=1)))
    r = await reload(client)
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["code"], err["param"]) == ("invalid_config", None)
    assert "could not be built" in err["message"]
    status = await client.get("/admin/reload", headers={"authorization": f"Bearer {ADMIN}"})
    for text in (r.text, status.text):
        assert "RuntimeError" not in text and "secret" not in text
    assert [e["detail"] for e in events(app, logs, "config_error")] == ["RuntimeError: secret internals"]
    assert app.state.reloader.current.generation == 1


async def test_a_rule_the_router_refuses_is_refused_too(gateway: Callable[..., Any]) -> None:
    client, _, path, _, _ = await gateway()
    path.write_text(yaml.safe_dump(config(router={"task_rules": [{"task": "x", "group": "nope"}]})))
    r = await reload(client)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_config")
    assert "unknown model group 'nope'" in r.json()["error"]["message"]


async def test_a_setting_that_needs_a_restart_is_refused_by_name(gateway: Callable[..., Any]) -> None:
    client, _, path, logs, app = await gateway()
    path.write_text(yaml.safe_dump(config(openai_weight=0, vllm_weight=1, server={"port": 8123}, seed=9)))
    r = await reload(client)
    assert (r.status_code, r.json()["error"]["code"], r.json()["error"]["param"]) == (400, "restart_required", "seed")
    assert [e["errors"] for e in events(app, logs, "config_error")] == [
        ["seed: changed; takes effect only on a restart", "server.port: changed; takes effect only on a restart"]
    ]
    assert sample(app, "faultline_config_reloads_total", {"result": "restart_required"}) == 1
    assert (await chat(client)).status_code == 200


async def test_only_the_admin_key_reloads(gateway: Callable[..., Any]) -> None:
    client, _, _, _, app = await gateway()
    assert (await reload(client, KEY)).status_code in (401, 403)
    assert sample(app, "faultline_config_reloads_total", {"result": "ok"}) == 0


async def test_with_several_workers_the_admin_call_signals_them_and_answers_its_own_result(
    gateway: Callable[..., Any],
) -> None:
    signalled: list[str] = []

    def notify() -> None:  # the supervisor forwards SIGHUP to every worker, this one included
        signalled.append("hup")
        asyncio.get_running_loop().call_soon(lambda: app.state.reloader.reload("signal"))

    client, _, path, logs, app = await gateway(notify)
    path.write_text(yaml.safe_dump(config(openai_weight=-1)))
    assert (await reload(client)).status_code == 400
    assert signalled == []  # refused where it was asked: no worker is disturbed
    path.write_text(yaml.safe_dump(config(openai_weight=0, vllm_weight=1)))
    r = await reload(client)
    assert (r.status_code, r.json()["generation"]) == (200, 2)
    assert signalled == ["hup"]
    assert [e["trigger"] for e in events(app, logs, "config_reload")] == ["signal"]
    outcome: Outcome | None = app.state.reloader.last
    assert outcome is not None and outcome.generation == 2


async def test_a_gateway_built_without_a_configuration_source_refuses_to_reload() -> None:
    app = create_app(parse_settings(config()), state=fakeredis.FakeAsyncRedis(), upstream_transport=AsgiTransport({}))
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            r = await reload(client)
    finally:
        await lifespan.__aexit__(None, None, None)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_config")
    assert "without a configuration file" in r.json()["error"]["message"]


def test_restart_only_settings_are_named_in_a_fixed_order() -> None:
    old = parse_settings(config())
    new = parse_settings(config(state={"timeout_s": 1.0}, quota={"replicas": 2, "default_max_tokens": 99}))
    assert restart_required(old, new) == ["state", "quota.replicas"]  # default_max_tokens reloads
    assert restart_required(old, parse_settings(config(openai_weight=0, vllm_weight=1))) == []


def test_each_problem_of_a_refused_file_is_one_line() -> None:
    with pytest.raises(ConfigError) as listed:
        parse_settings(config(openai_weight=-1, tiers={"default": {"rpm": 0}}), source="f.yaml")
    assert [p.split(":")[0] for p in problems(listed.value)] == ["tiers.default.rpm", "models.0.routes.0.weight"]
    yaml_error = ConfigError("f.yaml: not valid YAML: line 1\n  column 2")
    assert problems(yaml_error) == ["f.yaml: not valid YAML: line 1 column 2"]


async def test_a_supervisor_that_cannot_be_signalled_is_reported(gateway: Callable[..., Any]) -> None:
    def notify() -> None:
        raise ProcessLookupError("no such process")

    client, _, path, _, app = await gateway(notify)
    path.write_text(yaml.safe_dump(config(openai_weight=0, vllm_weight=1)))
    r = await reload(client)
    assert (r.status_code, r.json()["error"]["code"]) == (503, "reload_unconfirmed")
    assert app.state.reloader.current.generation == 1
