from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from subprocess import PIPE

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.observability.metrics import Metrics
from gateway.observability.server import MetricsServer
from tests.processes import free_port

from .conftest import promtool


async def test_serves_metrics_on_its_own_port_and_stops() -> None:
    m = Metrics(consumers=["alice"])
    m.shed_request("queue_full")
    server = MetricsServer(m.exposition, port=0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            r = await client.get("/metrics")
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/plain; version=")
            assert 'faultline_shed_requests_total{reason="queue_full"} 1.0' in r.text
            assert (await client.get("/other")).status_code == 404
            assert (await client.post("/metrics")).status_code == 405
            scrape = r.content
    finally:
        await server.stop()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{server.port}/metrics")
    proc = await asyncio.create_subprocess_exec(promtool(), "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=PIPE)
    stdout, stderr = await proc.communicate(scrape)
    assert (proc.returncode, stdout, stderr) == (0, b"", b"")


_WORKER = textwrap.dedent(
    """
    from gateway.observability.metrics import Metrics
    from gateway.requestrecord import RequestRecord
    m = Metrics(consumers=["alice"], models=["m"])
    m.request_finished("/v1/chat/completions",
                       RequestRecord("r", 0.0, consumer="alice", model="m", status=200),
                       duration_s=0.1, ttft_s=0.1)
    m.request_started()
    """
)


@pytest.mark.processes
def test_multiprocess_mode_aggregates_workers(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", _WORKER], env=env, check=True, cwd=Path(__file__).parents[3])
    m = Metrics(multiprocess_dir=str(tmp_path))
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(m.exposition().decode())
        for s in fam.samples
    }
    key = (("consumer", "alice"), ("model", "m"), ("route", "/v1/chat/completions"), ("status", "200"))
    assert values[("faultline_requests_total", key)] == 2


async def test_metrics_port_defaults_to_9090_is_configurable_and_0_turns_it_off() -> None:
    from gateway.clock import FakeClock
    from gateway.config import ServerSettings
    from gateway.observability.telemetry import Telemetry
    from gateway.rng import Rng

    from .conftest import make_settings

    assert ServerSettings().metrics_port == 9090
    off = Telemetry.from_settings(make_settings(), clock=FakeClock(), rng=Rng(1), environ={})  # metrics_port: 0
    assert off.server is None
    port = free_port()
    on = Telemetry.from_settings(
        make_settings(server={"metrics_port": port}), clock=FakeClock(), rng=Rng(1), environ={}
    )
    await on.start()
    try:
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{port}/metrics")
        assert r.status_code == 200 and "faultline_requests_in_flight 0.0" in r.text
    finally:
        await on.stop()


async def test_a_taken_metrics_port_is_logged_and_requests_still_served() -> None:
    import io

    from gateway.clock import FakeClock
    from gateway.observability.telemetry import Telemetry
    from gateway.rng import Rng

    from .conftest import make_settings

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log = io.StringIO()
        t = Telemetry.from_settings(
            make_settings(server={"metrics_port": port}), clock=FakeClock(), rng=Rng(1), environ={}, log_stream=log
        )
        await t.start()
        await t.stop()
    line = orjson.loads(log.getvalue())
    assert (line["event"], line["level"], line["port"]) == ("metrics_listener_failed", "error", port)
    assert t.server is None
