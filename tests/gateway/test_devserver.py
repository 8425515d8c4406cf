"""``make serve``: the ports are checked before anything starts, and the banner is printed only once every
process answers."""

from __future__ import annotations

import io
import os
import signal
import socket
from collections.abc import Sequence

from gateway import devserver
from gateway.devserver import Service, serve


class FakeProc:
    def __init__(self) -> None:
        self.returncode: int | None = None
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self.returncode = 0
        return 0

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)

    def kill(self) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _services() -> list[Service]:
    sim, gw = _free_port(), _free_port()
    return [
        Service("openai simulator", sim, ["sim"], f"http://127.0.0.1:{sim}/v1/models"),
        Service("gateway", gw, ["gw"], f"http://127.0.0.1:{gw}/v1/health"),
    ]


def test_a_busy_port_stops_it_before_anything_starts() -> None:
    svcs = _services()
    spawned: list[Sequence[str]] = []
    out, err = io.StringIO(), io.StringIO()

    def spawn(cmd: Sequence[str]) -> FakeProc:
        spawned.append(cmd)
        return FakeProc()

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", svcs[1].port))
        holder.listen()
        status = serve(svcs, 0, out=out, err=err, spawn=spawn)
    assert status == 1 and spawned == [] and out.getvalue() == ""
    assert f"{svcs[1].port} (gateway)" in err.getvalue() and "already in use" in err.getvalue()


def test_the_banner_waits_until_every_process_answers() -> None:
    svcs = _services()
    out, err = io.StringIO(), io.StringIO()
    asked: list[str] = []

    def ready(url: str) -> bool:
        asked.append(url)
        assert out.getvalue() == "", "the banner came before everything answered"
        return asked.count(url) >= 3  # each answers on its third try

    status = serve(svcs, 0, out=out, err=err, spawn=lambda cmd: FakeProc(), ready=ready, within_s=60)
    assert status == 0
    assert out.getvalue().count("Faultline gateway") == 1
    assert f"http://127.0.0.1:{svcs[1].port}/v1" in out.getvalue()


def test_no_banner_when_the_gateway_never_answers() -> None:
    svcs = _services()
    out, err = io.StringIO(), io.StringIO()
    procs: list[FakeProc] = []

    def spawn(cmd: object) -> FakeProc:
        procs.append(FakeProc())
        return procs[-1]

    status = serve(svcs, 0, out=out, err=err, spawn=spawn, ready=lambda url: "models" in url, within_s=0)
    assert status == 1 and out.getvalue() == ""
    assert "gateway did not answer" in err.getvalue()
    assert all(p.signals for p in procs)  # everything started is stopped


def test_the_demo_services_come_from_the_example_configuration() -> None:
    svcs, metrics_port = devserver.services()
    gateway = svcs[-1]
    assert (gateway.name, gateway.port, metrics_port) == ("gateway", 8000, 9090)
    assert [s.port for s in svcs[:-1]] == [9101, 9102, 9103]


def test_a_sighup_to_make_serve_reaches_the_gateway() -> None:
    class HungUp(FakeProc):
        def wait(self, timeout: float | None = None) -> int:
            if self.returncode is None:  # the operator's SIGHUP arrives while make serve waits for the gateway
                os.kill(os.getpid(), signal.SIGHUP)
            return super().wait(timeout)

    before = signal.getsignal(signal.SIGHUP)
    procs: list[FakeProc] = []

    def spawn(cmd: Sequence[str]) -> FakeProc:
        procs.append(HungUp() if cmd == ["gw"] else FakeProc())
        return procs[-1]

    out = io.StringIO()
    assert serve(_services(), 0, out=out, err=io.StringIO(), spawn=spawn, ready=lambda url: True) == 0
    assert procs[1].signals == [signal.SIGHUP, signal.SIGTERM]
    assert procs[0].signals == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGHUP) == before  # put back once the gateway is gone
    assert f"kill -HUP {os.getpid()}" in out.getvalue()
