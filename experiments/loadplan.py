"""The load of a real-time run, as locust's side reads it: the seeded arrivals and the user-count plan.

:func:`schedule` draws the arrivals exactly as replay does (:func:`experiments.workload.arrivals`: phases and spikes,
consumers, streaming, token counts, all from the seed) and renders each one to what goes on the wire (headers
without the request id, body, the consumer's client retry behaviour); ``experiments/locust_scenario.py`` sends
them. :func:`user_plan` is the user count its ``LoadTestShape`` keeps.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from experiments.scenario import Scenario
from experiments.workload import arrivals, request_body, request_headers
from gateway.config import Settings

GRACE_S = 5.0  # after the duration, the gateway's request deadline plus this for requests still in flight


def user_plan(sc: Scenario, *, lookahead_s: float = 2.0, minimum: int = 2) -> list[list[float]]:
    """[t, users] steps: ``ceil(peak rate over [t, t + lookahead] x pacing_s)``, never decreasing."""
    plan: list[list[float]] = []
    users = 0
    for t in range(math.ceil(sc.duration_s) + 1):
        samples = [t + lookahead_s * k / 8 for k in range(9)]
        rate = max(sc.load.rate_at(s) for s in samples if s < sc.duration_s) if t < sc.duration_s else 0.0
        need = max(minimum, math.ceil(rate * sc.load.pacing_s))
        if need > users:
            users = need
            plan.append([float(t), float(users)])
    return plan


def paced_users(sc: Scenario, t: float) -> int:
    """Closed-loop users that send one request every ``pacing_s`` each, for the scenario's rate at ``t``
    (``python -m experiments.loadtest --scenario``): ``ceil(rate x pacing_s)``, none while the rate is 0."""
    return math.ceil(sc.load.rate_at(t) * sc.load.pacing_s)


def schedule(sc: Scenario, seed: int, settings: Settings, run_dir: Path, *, workers: int = 0) -> dict[str, Any]:
    """The locust side's input: every arrival with its body, headers and client behaviour. With ``workers`` > 0
    (locust's distributed mode) the plan keeps at least one user per worker, and the workers claim arrivals and
    mark them answered in two directories (see ``experiments/locust_scenario.py``)."""
    mix = sc.request_mix
    header = settings.router.timeouts.deadline_header
    rows = []
    for a in arrivals(sc, seed):
        headers = request_headers(mix, a.consumer.key, "-", header)
        headers.pop("x-request-id")
        if a.consumer.client.idempotency_key:
            headers["idempotency-key"] = f"c{a.idx:06d}"  # the same on every retry of this logical request
        rows.append(
            {
                "i": a.idx,
                "t": round(a.t, 6),
                "consumer": a.consumer.name,
                "stream": a.stream,
                "headers": headers,
                "body": request_body(mix, a.stream, a.prompt_tokens, a.max_tokens, a.idx).decode(),
                "retries": a.consumer.client.retries,
                "retry_on": list(a.consumer.client.retry_on),
                "backoff_s": a.consumer.client.backoff_s,
            }
        )
    return {
        "duration_s": sc.duration_s,
        "grace_s": settings.router.timeouts.request_deadline_s + GRACE_S,
        "users": user_plan(sc, minimum=max(2, workers)),
        "workers": workers,
        "claims_dir": str(run_dir / ".arrivals" / "claimed"),
        "done_dir": str(run_dir / ".arrivals" / "answered"),
        "t0_file": str(run_dir / ".t0"),
        "ready_file": str(run_dir / ".locust-ready"),
        "client_log": str(run_dir / "client.jsonl"),
        "arrivals": rows,
    }
