"""A scenario's load for ``python -m experiments.loadtest --scenario NAME`` (loaded beside ``locustfile.py``).

The user count follows the scenario's arrival rate: ``ceil(rate(t) x pacing_s)`` users (none at rate 0), each sending a
request every ``pacing_s`` (``--pacing``, set from the scenario by the loadtest command), so the request rate
tracks the scenario's phases and spikes; the run ends at ``duration_s``. In distributed mode the shape runs on
the master, which spreads the users over the workers.
"""

from __future__ import annotations

from typing import Any

from locust import LoadTestShape, events

from experiments.loadplan import paced_users
from experiments.scenario import Scenario
from experiments.scenario_files import load_scenario

SPAWN_RATE = 100.0  # users started a second: a step in the rate takes effect within a second


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--scenario", env_var="FAULTLINE_SCENARIO", default="baseline", help="scenario name or path")


class ScenarioLoadShape(LoadTestShape):
    """Users over time from the scenario named by ``--scenario``; stops at its duration."""

    def tick(self) -> tuple[int, float] | None:
        sc = self._scenario()
        elapsed = self.get_run_time()
        if elapsed >= sc.duration_s:
            return None
        return paced_users(sc, elapsed), SPAWN_RATE

    def _scenario(self) -> Scenario:
        cached: Scenario | None = getattr(self, "_loaded", None)
        if cached is None:
            runner = self.runner
            options = runner.environment.parsed_options if runner is not None else None
            assert options is not None  # a shape runs under locust's command line, which parsed them
            cached = load_scenario(options.scenario)
            self._loaded = cached
        return cached
