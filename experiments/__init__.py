"""Named failure scenarios, run in real time (processes + locust) or replayed in virtual time (one process).

* :mod:`experiments.scenario` — the scenario file schema (``experiments/scenarios/*.yaml``).
* :mod:`experiments.resolve` — scenario -> gateway settings and simulator profiles.
* :mod:`experiments.workload` — the seeded open-loop arrival process and request mix.
* :mod:`experiments.replay` — virtual-time replay: byte-identical request log for a seed.
* :mod:`experiments.realtime` — real processes on loopback, locust driving the load (docs/LOADTEST.md).
* ``python -m experiments`` — the command line the Makefile calls.
"""
