"""Reloading the configuration of a real gateway process (``python -m gateway``) in front of a simulator process:

* one worker: a weight change sent with SIGHUP while the official SDK keeps 8 requests in flight takes effect
  with no failed request (every request started after the reload was confirmed goes to the new route, every one
  finished before the signal went to the old one); an invalid file changes nothing (SIGHUP: a ``config_error``
  line and the old configuration serves; ``POST /admin/reload``: 400 naming the field); the process lives on;
* two workers: SIGHUP to the parent reaches both workers, which reload in place (same process ids, generation 2
  in each one's ``faultline_config_generation``); ``POST /admin/reload`` on one worker reloads both; a file that
  needs a restart is refused by each worker, which goes on serving its generation.

Bounded: at most 400 requests per load, every wait polls a bounded number of times, processes are always stopped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import hash_key
from tests.processes import free_port, stop, wait_http

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-reload-test"
ADMIN = "sk-reload-admin"
CONCURRENCY = 8
MAX_REQUESTS = 400


def config(ports: dict[str, int], a: float, b: float, **extra: Any) -> dict[str, Any]:
    sim = f"http://127.0.0.1:{ports['sim']}/v1"
    raw: dict[str, Any] = {
        "seed": 3,
        "admin_key_sha256": hash_key(ADMIN),
        "server": {"host": "127.0.0.1", "port": ports["http"], "metrics_port": ports["metrics"]},
        "consumers": [{"name": "app", "key_sha256": hash_key(KEY), "permissions": ["chat", "served_by"]}],
        "providers": [{"name": name, "kind": "openai", "base_url": sim} for name in ("a", "b")],
        "models": [
            {
                "name": "chat",
                "routes": [{"provider": p, "model": "gpt-4o-mini", "weight": w} for p, w in (("a", a), ("b", b))],
            }
        ],
    }
    raw.update(extra)
    return raw


class Gateway:
    def __init__(self, tmp: Path, workers: int) -> None:
        self.ports = {"sim": free_port(), "http": free_port(), "metrics": free_port()}
        self.path = tmp / "gateway.yaml"
        self.write(a=1, b=0)
        self.stderr = tmp / "gateway.stderr"
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "FAULTLINE_REQUEST_LOG")}
        env["PYTHONPATH"] = str(ROOT)
        if workers > 1:
            (tmp / "prometheus").mkdir()
            env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / "prometheus")
        sim = [sys.executable, "-m", "simulators", "--profile", "instant", "--port", str(self.ports["sim"])]
        gw = [sys.executable, "-m", "gateway", "--config", str(self.path), "--workers", str(workers)]
        with self.stderr.open("wb") as err:
            self.procs = [subprocess.Popen(sim, cwd=ROOT, env=env), subprocess.Popen(gw, cwd=ROOT, env=env, stderr=err)]
        self.base = f"http://127.0.0.1:{self.ports['http']}"

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.procs[1]

    def write(self, **weights_and_extra: Any) -> None:
        self.path.write_text(yaml.safe_dump(config(self.ports, **weights_and_extra)))

    def events(self, name: str) -> list[dict[str, Any]]:
        lines = self.stderr.read_bytes().splitlines()
        return [e for e in (orjson.loads(x) for x in lines if x.startswith(b"{")) if e.get("event") == name]

    async def up(self) -> None:
        await wait_http(f"http://127.0.0.1:{self.ports['sim']}/v1/models")
        await wait_http(f"{self.base}/v1/health")

    async def admin(self, method: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base, timeout=30.0) as c:
            return await c.request(method, "/admin/reload", headers={"authorization": f"Bearer {ADMIN}"})

    async def until(self, field: str, want: Any) -> dict[str, Any]:
        """GET /admin/reload until ``field`` of its answer is ``want`` (one worker: every answer is its own)."""
        for _ in range(200):
            status: dict[str, Any] = (await self.admin("GET")).json()
            got = status["last"][field] if status["last"] and field != "generation" else status["generation"]
            if got == want:
                return status
            await asyncio.sleep(0.05)
        raise AssertionError(f"/admin/reload never showed {field}={want!r}")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Any]:
    started: list[Gateway] = []

    def start(workers: int = 1) -> Gateway:
        gw = Gateway(tmp_path, workers)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        stop(gw.procs)


class Load:
    """Requests through the official SDK, ``CONCURRENCY`` at a time, each noted with the phase it started and
    ended in and the route that served it."""

    def __init__(self, base: str) -> None:
        self.client = openai.AsyncOpenAI(api_key=KEY, base_url=f"{base}/v1", max_retries=0, timeout=30.0)
        self.phase = 0
        self.sent = 0
        self.done: list[tuple[int, int, int, str]] = []  # (started in, ended in, status, served by)
        self.stopped = False

    async def _one(self) -> None:
        started = self.phase
        try:
            raw = await self.client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": "hi"}]
            )
            status, served = raw.http_response.status_code, raw.headers.get("x-faultline-served-by", "")
        except openai.APIError as exc:
            status, served = getattr(exc, "status_code", 0) or 0, ""
        self.done.append((started, self.phase, status, served.split("/")[0]))

    async def _worker(self) -> None:
        while not self.stopped and self.sent < MAX_REQUESTS:
            self.sent += 1
            await self._one()

    async def until_done(self, n: int) -> None:
        for _ in range(2000):
            if len(self.done) >= n:
                return
            assert self.sent < MAX_REQUESTS, "the load ran out of requests"
            await asyncio.sleep(0.01)
        raise AssertionError("the load stalled")

    def run(self) -> asyncio.Future[list[None]]:
        return asyncio.gather(*(self._worker() for _ in range(CONCURRENCY)))


async def test_one_worker_takes_a_weight_change_under_load_without_a_failed_request(gateway: Any) -> None:
    gw: Gateway = gateway(1)
    await gw.up()
    load = Load(gw.base)
    running = load.run()
    try:
        await load.until_done(40)
        gw.write(a=0, b=1)
        load.phase = 1
        gw.process.send_signal(signal.SIGHUP)
        await gw.until("generation", 2)
        load.phase = 2
        await load.until_done(len(load.done) + 40 + CONCURRENCY)
    finally:
        load.stopped = True
        await running
        await load.client.close()
    assert [d for d in load.done if d[2] != 200] == []
    assert {d[3] for d in load.done if d[1] == 0} == {"a"}
    assert {d[3] for d in load.done if d[0] == 2} == {"b"}
    assert len([d for d in load.done if d[0] == 2]) >= 40
    assert gw.process.poll() is None
    [event] = gw.events("config_reload")
    assert (event["generation"], event["trigger"], event["changed"]) == (2, "signal", ["models"])


async def test_an_invalid_file_changes_nothing(gateway: Any) -> None:
    gw: Gateway = gateway(1)
    await gw.up()
    gw.path.write_text("models: [unclosed\n")
    gw.process.send_signal(signal.SIGHUP)
    await gw.until("result", "invalid")
    [event] = gw.events("config_error")
    assert event["level"] == "error" and "not valid YAML" in event["message"]
    gw.write(a=-1, b=1)
    r = await gw.admin("POST")
    assert r.status_code == 400
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("invalid_config", "models.0.routes.0.weight")
    load = Load(gw.base)
    load.stopped = True
    for _ in range(5):
        await load._one()
    await load.client.close()
    assert [(d[2], d[3]) for d in load.done] == [(200, "a")] * 5
    assert (await gw.until("generation", 1))["generation"] == 1
    assert gw.process.poll() is None


def _generations(scrape: str) -> dict[str, float]:
    return {
        s.labels["pid"]: s.value
        for fam in text_string_to_metric_families(scrape)
        for s in fam.samples
        if s.name == "faultline_config_generation"
    }


async def _workers_at(gw: Gateway, generation: int) -> dict[str, float]:
    """Scrape the metrics until two workers report ``generation`` (any worker's scrape shows both)."""
    async with httpx.AsyncClient(timeout=10.0) as c:
        for _ in range(300):
            try:
                got = _generations((await c.get(f"http://127.0.0.1:{gw.ports['metrics']}/metrics")).text)
            except httpx.TransportError:
                got = {}
            if len(got) == 2 and set(got.values()) == {generation}:
                return got
            await asyncio.sleep(0.05)
    raise AssertionError(f"two workers never both showed generation {generation}")


async def test_two_workers_reload_in_place_on_sighup_to_the_parent_and_on_the_admin_call(gateway: Any) -> None:
    gw: Gateway = gateway(2)
    await gw.up()
    first = await _workers_at(gw, 1)
    gw.write(a=0, b=1)
    gw.process.send_signal(signal.SIGHUP)
    second = await _workers_at(gw, 2)
    assert second.keys() == first.keys()  # the same workers, reloaded, not replaced
    gw.write(a=1, b=0)
    r = await gw.admin("POST")
    assert (r.status_code, r.json()["generation"]) == (200, 3)
    third = await _workers_at(gw, 3)
    assert third.keys() == first.keys()
    assert sorted(e["trigger"] for e in gw.events("config_reload")) == ["signal"] * 4
    gw.write(a=1, b=0, server={"host": "127.0.0.1", "port": gw.ports["http"] + 1})
    gw.process.send_signal(signal.SIGHUP)
    for _ in range(200):  # each worker refuses it on its own
        if len(gw.events("config_error")) == 2:
            break
        await asyncio.sleep(0.05)
    assert [e["result"] for e in gw.events("config_error")] == ["restart_required"] * 2
    assert await _workers_at(gw, 3) == third
    assert gw.process.poll() is None
