"""The scenario runner's locustfile: replays a scenario's seeded arrival schedule against a gateway.

Started by :mod:`experiments.realtime` (not meant to be run by hand) with ``$FAULTLINE_SCHEDULE`` naming a JSON
file it wrote: the time-origin file, the client log path, the duration and drain grace, the user-count plan and
every arrival (time, consumer, key and headers, body, streaming, the consumer's client retry behaviour), all
drawn by :mod:`experiments.workload` from the scenario and the seed.

Open loop: users take the next arrival from one shared feed, sleep until its time and send it, so the arrival
times follow the schedule (not the users' response times) as long as a user is free. :class:`ScenarioShape` keeps
enough users: the plan is ``ceil(rate x load.pacing_s)`` over the rate of the next seconds, never decreasing (a
user stopped mid-wait would drop its arrival). The clock starts when the runner writes the origin (epoch seconds)
into the time-origin file; the test stops once the duration has passed and nothing is in flight, or after the
grace. Each attempt (retries included, ids ``c<idx>-<attempt>`` as in replay) is a line of ``client.jsonl``.

Distributed (the schedule's ``workers`` > 0, locust started with ``--processes``): every worker walks the same
arrivals and claims each one by creating its file in the schedule's ``claims_dir`` (``O_CREAT | O_EXCL``: one
process wins), so each arrival is sent once, at its time, by whichever worker had a user free for it, however
locust spreads or moves the users. A worker marks an arrival answered in ``done_dir``; the master keeps the user
plan and ends the test once the duration has passed and every arrival is answered.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

import gevent
import requests
from locust import LoadTestShape, User, constant, events, task

from experiments.locustfile import chat_call


class Feed:
    """The shared arrival schedule of one locust process."""

    def __init__(self, schedule: dict[str, Any]) -> None:
        self.arrivals: list[dict[str, Any]] = schedule["arrivals"]
        self.plan: list[list[float]] = schedule["users"]
        self.duration_s = float(schedule["duration_s"])
        self.grace_s = float(schedule["grace_s"])
        self.t0_file = Path(schedule["t0_file"])
        self.ready_file = Path(schedule["ready_file"])
        self.log = Path(schedule["client_log"]).open("a")  # noqa: SIM115 - closed at quit
        self.next = 0
        self.in_flight = 0
        self.t0: float | None = None
        shared = int(schedule.get("workers", 0)) > 0
        self.claims = Path(schedule["claims_dir"]) if shared else None
        self.done = Path(schedule["done_dir"]) if shared else None
        self.returned: deque[dict[str, Any]] = deque()  # taken by a user stopped before it could send them

    def _claim(self, idx: int) -> bool:
        """This process sends arrival ``idx`` (always, when it is alone)."""
        if self.claims is None:
            return True
        try:
            os.close(os.open(self.claims / str(idx), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    def answered(self, idx: int) -> None:
        if self.done is not None:
            (self.done / str(idx)).touch()

    def finished(self) -> bool:
        """Every arrival sent and answered: by this process, or by all of them (distributed)."""
        if self.done is not None:
            return sum(1 for _ in os.scandir(self.done)) >= len(self.arrivals)
        return self.exhausted() and self.in_flight == 0

    def origin(self) -> float | None:
        if self.t0 is None and self.t0_file.exists():
            text = self.t0_file.read_text().strip()
            self.t0 = float(text) if text else None
        return self.t0

    def take(self) -> dict[str, Any] | None:
        if self.returned:
            return self.returned.popleft()
        while self.next < len(self.arrivals):
            a = self.arrivals[self.next]
            self.next += 1
            if self._claim(a["i"]):
                return a
        return None

    def exhausted(self) -> bool:
        return self.next >= len(self.arrivals) and not self.returned

    def users_at(self, elapsed: float) -> int:
        n = 1
        for t, users in self.plan:
            if t <= elapsed:
                n = int(users)
        return n

    def record(self, row: dict[str, Any]) -> None:
        self.log.write(json.dumps(row, sort_keys=True) + "\n")
        self.log.flush()


@events.init.add_listener
def _init(environment: Any, **_kw: Any) -> None:
    path = os.environ.get("FAULTLINE_SCHEDULE")
    if not path:
        raise SystemExit("locust_scenario.py needs $FAULTLINE_SCHEDULE (it is started by experiments.realtime)")
    environment.faultline_feed = Feed(json.loads(Path(path).read_text()))


@events.test_start.add_listener
def _ready(environment: Any, **_kw: Any) -> None:
    environment.faultline_feed.ready_file.write_text(str(time.time()))


@events.quitting.add_listener
def _close(environment: Any, **_kw: Any) -> None:
    feed = getattr(environment, "faultline_feed", None)
    if feed is not None:
        feed.log.close()


class ScenarioUser(User):
    wait_time = constant(0)

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.feed: Feed = environment.faultline_feed
        self.session = requests.Session()

    @task
    def arrival(self) -> None:
        feed = self.feed
        t0 = feed.origin()
        if t0 is None:
            gevent.sleep(0.02)
            return
        a = feed.take()
        if a is None:
            gevent.sleep(0.5)
            return
        feed.in_flight += 1
        try:
            try:
                gevent.sleep(max(0.0, t0 + a["t"] - time.time()))
            except gevent.GreenletExit:  # this user is being stopped: another one of this process sends it
                feed.returned.append(a)
                raise
            self._send(a, t0)
            feed.answered(a["i"])
        finally:
            feed.in_flight -= 1

    def _send(self, a: dict[str, Any], t0: float) -> None:
        for attempt in range(a["retries"] + 1):
            rid = f"c{a['i']:06d}-{attempt}"
            out = chat_call(self, self.session, {**a["headers"], "x-request-id": rid}, a["body"], a["stream"])
            self.feed.record(
                {
                    "id": rid,
                    "t": round(time.time() - t0, 6),
                    "consumer": a["consumer"],
                    "stream": a["stream"],
                    "status": out.status,
                    "ttft_s": round(out.ttft_s, 6) if out.ttft_s is not None else None,
                    "stream_error": out.stream_error,
                    "error": out.error,
                }
            )
            if out.status not in a["retry_on"] or attempt == a["retries"]:
                return
            if a["backoff_s"]:
                gevent.sleep(a["backoff_s"] * 2**attempt)

    def on_stop(self) -> None:
        self.session.close()


class ScenarioShape(LoadTestShape):
    """User count from the feed's plan; stops after the duration once idle, or after the grace."""

    spawn_rate = 100.0

    def tick(self) -> tuple[int, float] | None:
        # Ignored on the next line: set on the environment by the locustfile before any tick
        feed: Feed = self.runner.environment.faultline_feed  # type: ignore[union-attr]
        t0 = feed.origin()
        if t0 is None:
            return feed.users_at(0.0), self.spawn_rate
        elapsed = time.time() - t0
        if elapsed > feed.duration_s + feed.grace_s:
            return None
        if elapsed >= feed.duration_s and feed.finished():
            return None
        # the origin is announced ahead of time: until it comes, keep the users of t = 0 (not the 1 of "before")
        return max(1, math.ceil(feed.users_at(max(0.0, elapsed)))), self.spawn_rate
