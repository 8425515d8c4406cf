"""A connection protocol without sockets or an event loop: a transport that records what is written, a loop whose
clock moves only when a test says so (its timers fire then, in order), and ASGI tasks run in place."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.connection.policy import STATE_KEY, ConnectionPolicy
from gateway.settings.connection import ConnectionLimits


class Transport:
    def __init__(self) -> None:
        self.out = bytearray()
        self.closed = False
        self.eof = False

    def write(self, data: bytes) -> None:
        self.out += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@dataclass
class Timer:
    when: float
    callback: Callable[..., None]
    args: tuple[Any, ...]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class Task:
    """An ASGI task, run by :meth:`Loop.run_ready` in one step: done if its coroutine returned, else pending for
    good."""

    def __init__(self, coro: Coroutine[Any, Any, None]) -> None:
        self.coro: Coroutine[Any, Any, None] | None = coro
        self.started = False
        self.callbacks: list[Callable[[Any], None]] = []

    def step(self) -> None:
        self.started = True
        assert self.coro is not None
        try:
            self.coro.send(None)
        except StopIteration:
            self.coro = None
            for fn in self.callbacks:
                fn(self)

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        self.callbacks.append(fn)

    def end(self) -> None:
        """Ends a pending app (uvicorn's cycle catches the exception and answers or closes)."""
        if self.coro is not None and self.started:
            with contextlib.suppress(StopIteration):
                self.coro.throw(RuntimeError("the test is over"))
            self.coro = None


@dataclass
class Loop:
    now: float = 0.0
    timers: list[Timer] = field(default_factory=list)
    ready: list[Task] = field(default_factory=list)  # created, not run yet
    held: list[Task] = field(default_factory=list)  # run, still pending

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[..., None], *args: Any) -> Timer:
        if len(self.timers) > 64:
            self.timers = [t for t in self.timers if not t.cancelled]
        timer = Timer(self.now + delay, callback, args)
        self.timers.append(timer)
        return timer

    def create_task(self, coro: Coroutine[Any, Any, None], **_: Any) -> Task:
        task = Task(coro)
        self.ready.append(task)
        return task

    def run_ready(self) -> None:
        """Runs the tasks created since the last call (what a real loop does after a read)."""
        ready, self.ready = self.ready, []
        for task in ready:
            task.step()
            if task.coro is not None:
                self.held.append(task)

    def pending(self) -> list[float]:
        """The delays of the timers still armed, from now."""
        return sorted(t.when - self.now for t in self.timers if not t.cancelled)

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while due := sorted((t for t in self.timers if not t.cancelled and t.when <= end), key=lambda t: t.when):
            timer = due[0]
            timer.cancelled = True
            self.now = timer.when
            timer.callback(*timer.args)
            self.run_ready()
        self.now = end


class Never:
    """An awaitable that never resolves: an app that holds its request."""

    def __await__(self) -> Generator[None, None, None]:
        while True:
            yield None


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def holding_app(scope: Any, receive: Any, send: Any) -> None:
    await Never()


def connection(
    limits: ConnectionLimits,
    *,
    app: Any = ok_app,
    closed: list[str] | None = None,
    cls: type[HttpToolsProtocol] | None = None,
    policy: ConnectionPolicy | None = None,
) -> tuple[HttpToolsProtocol, Transport, Loop]:
    """A protocol of class ``cls`` (default: the guarded one) on a fresh connection; ``closed`` collects the
    reasons it counts; connections given the same ``policy`` share one worker's count."""
    from gateway.connection.protocol import GuardedHttpToolsProtocol

    sink = closed if closed is not None else []
    policy = policy or ConnectionPolicy.build(limits, sink.append)
    config = Config(app=app, log_config=None, lifespan="off", http="httptools")
    config.load()
    loop = Loop()
    proto = (cls or GuardedHttpToolsProtocol)(
        config=config,
        server_state=ServerState(),
        app_state={STATE_KEY: policy},
        _loop=loop,  # type: ignore[arg-type]  # the fake loop has only the calls the protocol makes
    )
    transport = Transport()
    proto.connection_made(transport)  # type: ignore[arg-type]  # the fake transport records what is written
    return proto, transport, loop


def feed(proto: HttpToolsProtocol, data: bytes) -> None:
    """One read, then the tasks it started run (as the event loop would run them next)."""
    proto.data_received(data)
    proto.loop.run_ready()  # type: ignore[attr-defined]  # the fake loop's own method


def end(loop: Loop) -> None:
    for task in loop.held:
        task.end()
    for task in loop.ready:  # never started
        assert task.coro is not None
        task.coro.close()
