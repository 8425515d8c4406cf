"""SLO and postmortem reports computed with polars from a run's request log.

``python -m reports RUN_DIR`` regenerates the outputs; :func:`reports.build.build` does the same from code.
Schemas other packages import: ``reports.slo.SloSpec``, ``reports.slo.SloGate``,
``reports.expectations.Expectation`` (``parse_expectations`` validates a list). CI regression:
``reports.slogate`` (driven over replays by ``experiments.slocheck``). Real-time runs add locust's CSVs
(``reports.locust``) and the gateway's Prometheus snapshots (``reports.promsnapshots``). See docs/REPORTS.md.
"""
