"""Metrics of configuration reloads (docs/OPERATIONS.md, "Reload"), on the app's registry.

* ``faultline_config_generation``: the configuration this process serves, 1 once it serves and one more per
  reload applied (in multi-process mode one series per worker, labelled ``pid``);
* ``faultline_config_reloads_total{result}``: reloads by result, ``ok``, ``invalid`` (the file, or what is built
  from it, is refused) or ``restart_required`` (a setting that cannot change while running differs);
* ``faultline_config_last_reload_timestamp_seconds``: when the last reload was applied (epoch seconds).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

RESULTS = ("ok", "invalid", "restart_required")


class ReloadMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.generation = Gauge(
            "faultline_config_generation",
            "The configuration generation served: 1 at start, one more per reload applied.",
            registry=registry,
            multiprocess_mode="all",
        )
        self.reloads = Counter(
            "faultline_config_reloads", "Configuration reloads by result.", ["result"], registry=registry
        )
        for result in RESULTS:
            self.reloads.labels(result)
        self.last_reload = Gauge(
            "faultline_config_last_reload_timestamp_seconds",
            "When the last configuration reload was applied (epoch seconds; 0: none yet).",
            registry=registry,
            multiprocess_mode="max",
        )

    def serving(self, generation: int) -> None:
        self.generation.set(generation)

    def reloaded(self, result: str, *, generation: int, at: float) -> None:
        self.reloads.labels(result if result in RESULTS else "invalid").inc()
        if result == "ok":
            self.generation.set(generation)
            self.last_reload.set(at)
