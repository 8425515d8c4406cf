"""Active health checks of the upstreams, on the virtual-time loop: a provider in a full outage turns unhealthy
after ``unhealthy_after`` failed checks and healthy again at the first answered one; a hung upstream fails a check
after ``timeout_s``; the checks run on their own task through the transport seam, with the provider's
credentials."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Literal

import fakeredis
import pytest

from gateway.clock import LoopClock, run_virtual
from gateway.rng import Rng
from gateway.runtime import build_runtime
from gateway.settings.upstream import HealthCheck
from gateway.transport import AsgiTransport, UpstreamResponse
from gateway.upstream.health import HealthChecks, Target, check_url
from simulators import create_app as create_simulator
from tests.gateway.conftest import GEMINI_MODEL, GEMINI_PROVIDER, make_settings

CHECK = HealthCheck(interval_s=10, timeout_s=2, unhealthy_after=2)


class Recorded:
    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []

    def provider_health(self, provider: str, healthy: bool, reason: str) -> None:
        self.seen.append((provider, healthy))


class Seen(AsgiTransport):
    """Keeps the URL and headers of every call."""

    def __init__(self, apps: Mapping[str, Any]) -> None:
        super().__init__(apps)
        self.sent: list[tuple[str, dict[str, str]]] = []

    async def send(self, url: str, headers: Mapping[str, str], body: bytes, *, connect_timeout: float) -> Any:
        self.sent.append((url, dict(headers)))
        return await super().send(url, headers, body, connect_timeout=connect_timeout)


class Hung:
    """An upstream that accepts the call and never answers."""

    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, *, connect_timeout: float
    ) -> UpstreamResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        return None


def test_check_urls() -> None:
    assert check_url("http://vllm:8000/v1", "/health") == "http://vllm:8000/health"
    assert check_url("https://api.openai.com/v1/", "models") == "https://api.openai.com/v1/models"
    assert check_url("https://g.example/v1beta", "models") == "https://g.example/v1beta/models"


def test_an_outage_turns_a_provider_unhealthy_and_its_end_healthy_again() -> None:
    outage = {"base": "instant", "timeline": [{"type": "outage", "start_s": 0, "end_s": 25, "mode": "503"}]}

    async def main() -> tuple[list[dict[str, Any]], list[tuple[str, bool]], Seen]:
        clock = LoopClock()
        transport = Seen(
            {
                "http://openai.sim": create_simulator(flavour="openai", profile=outage, seed=1, clock=clock),
                "http://vllm.sim": create_simulator(flavour="vllm", profile="instant", seed=1, clock=clock),
            }
        )
        targets = [
            Target("openai", check_url("http://openai.sim/v1", "models"), {"authorization": "Bearer k"}, CHECK),
            Target("vllm", check_url("http://vllm.sim/v1", "/health"), {}, CHECK),
        ]
        events = Recorded()
        checks = HealthChecks(targets, transport, clock, events)
        samples = [checks.states()]
        await checks.start()
        for _ in range(4):  # checks at 0, 10, 20, 30 s: sampled in between
            await asyncio.sleep(5 if len(samples) == 1 else 10)
            samples.append(checks.states())
        await checks.stop()
        return samples, events.seen, transport

    samples, seen, transport = run_virtual(main())
    health = [(s["openai"]["health"], s["vllm"]["health"]) for s in samples]
    assert health == [
        ("unknown", "unknown"),  # before the first check
        ("unknown", "healthy"),  # one failed check of two
        ("unhealthy", "healthy"),
        ("unhealthy", "healthy"),
        ("healthy", "healthy"),  # the outage ended at 25 s, the check at 30 s passed
    ]
    assert seen == [("vllm", True), ("openai", False), ("openai", True)]
    urls = {url for url, _ in transport.sent}
    assert urls == {"http://openai.sim/v1/models", "http://vllm.sim/health"}
    assert all(h == {"authorization": "Bearer k"} for url, h in transport.sent if "openai" in url)
    assert len(transport.sent) == 8  # every interval_s, one per provider, no more


def test_a_hung_upstream_fails_its_check_after_the_timeout() -> None:
    async def main() -> tuple[list[float], str | None, dict[str, Any]]:
        clock = LoopClock()
        checks = HealthChecks([Target("p", "http://p/v1/models", {}, CHECK)], Hung(), clock, Recorded())
        loop = asyncio.get_running_loop()
        took = []
        for _ in range(2):
            start = loop.time()
            await checks.check(Target("p", "http://p/v1/models", {}, CHECK))
            took.append(round(loop.time() - start, 6))
        return took, checks.health("p"), checks.states()["p"]

    took, health, state = run_virtual(main())
    assert took == [2.0, 2.0] and health == "unhealthy"
    assert state["checked_at"] is not None


def test_stop_waits_for_the_checks_a_reload_cancelled() -> None:
    async def main() -> list[asyncio.Task[Any]]:
        checks = HealthChecks([Target("p", "http://p/v1/models", {}, CHECK)], Hung(), LoopClock(), Recorded())
        await checks.start()
        await asyncio.sleep(1)  # the check waits on the hung upstream
        checks.retarget([])
        await checks.stop()
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    assert run_virtual(main()) == []


def test_a_reload_keeps_unchanged_checks_and_starts_new_ones() -> None:
    def target(provider: str, url: str, tag: str) -> Target:
        return Target(provider, url, {"x-check": tag}, CHECK)  # the tag tells the checks apart in the transport

    async def main() -> tuple[list[dict[str, Any]], list[str]]:
        clock = LoopClock()
        sims = {f"http://{n}.sim": create_simulator(flavour=n, profile="instant", seed=1, clock=clock) for n in NAMES}
        transport = Seen(sims)
        openai = target("openai", "http://openai.sim/v1/models", "a")
        vllm = target("vllm", "http://vllm.sim/health", "b")
        checks = HealthChecks([openai, vllm], transport, clock, Recorded())
        await checks.start()
        await asyncio.sleep(5)  # both checked at 0 s
        states = [checks.states()]
        moved = target("vllm", "http://vllm.sim/v1/models", "c")  # a changed check starts over
        added = target("gemini", "http://openai.sim/v1/models", "d")
        checks.retarget([openai, moved, added])  # at 5 s
        states.append(checks.states())
        await asyncio.sleep(7)  # openai's own task checks at 10 s, the new ones were checked at 5 s
        states.append(checks.states())
        checks.retarget([added])  # at 12 s
        await asyncio.sleep(20)
        states.append(checks.states())
        await checks.stop()
        return states, [h["x-check"] for _, h in transport.sent]

    states, sent = run_virtual(main())
    assert [{n: s["health"] for n, s in st.items()} for st in states] == [
        {"openai": "healthy", "vllm": "healthy"},
        {"openai": "healthy", "vllm": "unknown", "gemini": "unknown"},
        {"openai": "healthy", "vllm": "healthy", "gemini": "healthy"},
        {"gemini": "healthy"},
    ]
    # a at 0 and 10 s; b at 0 s only; c at 5 s only (removed at 12 s); d at 5, 15, 25 s
    assert sorted(sent) == ["a", "a", "b", "c", "d", "d", "d"]


NAMES: tuple[Literal["openai", "vllm"], ...] = ("openai", "vllm")


def test_each_kind_is_checked_with_its_own_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime's targets: each provider's own list of models (Gemini's with its key header), vLLM's /health."""

    monkeypatch.setenv("FL_TEST_GEMINI", "g-key")

    async def main() -> tuple[dict[str, Any], list[tuple[str, dict[str, str]]]]:
        clock = LoopClock()
        base = make_settings()
        providers = [p.model_dump() for p in base.providers] + [{**GEMINI_PROVIDER, "api_key_env": "FL_TEST_GEMINI"}]
        for p in providers:
            p["health_check"] = {"path": "/health"} if p["kind"] == "vllm" else {}
        models = [m.model_dump() for m in base.models] + [GEMINI_MODEL]
        settings = make_settings(providers=providers, models=models)
        sims = {
            f"http://{f}.sim": create_simulator(flavour=f, profile="instant", seed=1, clock=clock)
            for f in ("openai", "vllm", "gemini")
        }
        transport = Seen(sims)
        rt = build_runtime(settings, clock=clock, rng=Rng(1), state=fakeredis.FakeAsyncRedis(), transport=transport)
        await rt.health.start()
        await asyncio.sleep(1)
        await rt.health.stop()
        return rt.health.states(), transport.sent

    states, sent = run_virtual(main())
    assert {name: s["health"] for name, s in states.items()} == dict.fromkeys(("openai", "vllm", "gemini"), "healthy")
    urls = {url: headers for url, headers in sent}
    assert set(urls) == {"http://openai.sim/v1/models", "http://vllm.sim/health", "http://gemini.sim/v1beta/models"}
    assert urls["http://gemini.sim/v1beta/models"] == {"x-goog-api-key": "g-key"}
