"""Hand-made request logs for the report tests: small records with known answers, and a seeded outage run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from gateway.rng import Rng

T0 = 1_700_000_000.0


def attempt(provider: str, t: float, outcome: str = "ok", status: int | None = 200, dur: float = 0.5) -> dict[str, Any]:
    return {
        "provider": provider,
        "model": "m",
        "started": T0 + t,
        "duration_s": dur,
        "outcome": outcome,
        "status": status,
        "injected": False,
    }


def rec(
    rid: str,
    t: float,
    outcome: str = "ok",
    *,
    consumer: str = "alice",
    provider: str | None = "openai",
    model: str = "gpt",
    stream: bool = True,
    ttft: float | None = 0.5,
    e2e: float | None = 1.0,
    attempts: list[dict[str, Any]] | None = None,
    decisions: dict[str, Any] | None = None,
    tokens: tuple[int, int] = (10, 20),
    cost: float = 0.001,
) -> dict[str, Any]:
    ok = outcome == "ok"
    if attempts is None:
        attempts = [attempt(provider, t, "ok" if ok else "server_error", 200 if ok else 503)] if provider else []
    return {
        "schema": 1,
        "request_id": rid,
        "run_id": "run-1",
        "consumer": consumer,
        "priority": 1,
        "model": model,
        "stream": stream,
        "ts_arrival": T0 + t,
        "ts_first_byte": T0 + t + ttft if (ttft is not None and ok) else None,
        "ts_end": T0 + t + (e2e if e2e is not None else 0.0),
        "status": 200 if ok else 503,
        "outcome": outcome,
        "error_type": None if ok else "server_error",
        "provider": provider,
        "attempts": attempts,
        "retries": max(0, len(attempts) - 1),
        "breaker_states": {},
        "decisions": decisions or {},
        "tokens_in": tokens[0],
        "tokens_out": tokens[1],
        "cost_usd": cost,
    }


def lines(records: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(r) for r in records]


def outage_scenario(duration: float = 180.0, expectations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "name": "openai-outage",
        "description": "openai answers 503 for 60 s; vllm stays healthy",
        "duration_s": duration,
        "faults": [{"upstream": "openai", "kind": "outage", "start_s": 60, "end_s": 120, "mode": "503"}],
        "slo": {"availability": 0.995, "ttft_p95_s": 2.0, "e2e_p99_s": 10.0},
        "slo_gate": {"allowed_burn_pct": {"availability": 500}, "reason": "a 60 s outage of the main provider"},
        "expectations": expectations
        if expectations is not None
        else [
            {"kind": "breaker_opens_within", "provider": "openai", "after_s": 60, "within_s": 10},
            {"kind": "no_requests_while_breaker_open", "provider": "openai"},
            {"kind": "max_upstream_calls_per_request", "value": 1.5},
            {"kind": "min_failover_share", "value": 0.5, "window": [60, 120]},
        ],
    }


def outage_run(rate: float = 20.0, duration: float = 180.0, seed: int = 7) -> list[dict[str, Any]]:
    """A seeded synthetic openai-outage run: Poisson arrivals; openai 503s in [60, 70) until its breaker opens at
    t=65 (failures fail over to vllm, except every 4th, which fails), open until 120, half-open, closed at 121."""
    rng = Rng(seed)
    out: list[dict[str, Any]] = []
    t, i = 0.0, 0
    consumers = ("alice", "bob", "carol")
    while True:
        t += rng.expovariate(rate)
        if t >= duration:
            break
        i += 1
        rid = f"r{i:06d}"
        consumer = consumers[i % 3]
        first = "openai" if rng.random() < 0.5 else "vllm"
        ttft = 0.2 + rng.random() * 0.8
        e2e = ttft + rng.random() * 3
        dec: dict[str, Any] = {}
        if 65 <= t < 121 and first == "openai":
            atts = [attempt("openai", t, "breaker_open", None, 0.0), attempt("vllm", t, "ok", 200, e2e)]
            out.append(rec(rid, t, "ok", consumer=consumer, provider="vllm", ttft=ttft, e2e=e2e, attempts=atts))
        elif 60 <= t < 65 and first == "openai":
            atts = [attempt("openai", t, "server_error", 503, 0.05)]
            if i % 4 == 0:
                out.append(rec(rid, t, "error", consumer=consumer, provider=None, e2e=0.05, attempts=atts))
            else:
                atts.append(attempt("vllm", t + 0.05, "ok", 200, e2e))
                out.append(
                    rec(
                        rid,
                        t,
                        "ok",
                        consumer=consumer,
                        provider="vllm",
                        ttft=ttft + 0.05,
                        e2e=e2e + 0.05,
                        attempts=atts,
                    )
                )
        else:
            if t >= 65 and t < 65.2:
                dec["breaker_transitions"] = [{"provider": "openai", "from": "closed", "to": "open", "ts": T0 + 65}]
            out.append(rec(rid, t, "ok", consumer=consumer, provider=first, ttft=ttft, e2e=e2e, decisions=dec))
    return out


def outage_events() -> list[dict[str, Any]]:
    return [
        {"ts": T0 + 65, "event": "breaker_transition", "provider": "openai", "from": "closed", "to": "open"},
        {"ts": T0 + 120, "event": "breaker_transition", "provider": "openai", "from": "open", "to": "half_open"},
        {"ts": T0 + 121, "event": "breaker_transition", "provider": "openai", "from": "half_open", "to": "closed"},
    ]


def write_run(
    run_dir: Path, records: list[dict[str, Any]], scenario: dict[str, Any], events: list[dict[str, Any]] | None = None
) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "requests.jsonl").write_bytes(b"\n".join(lines(records)) + b"\n")
    if events is not None:
        (run_dir / "events.jsonl").write_bytes(b"\n".join(lines(events)) + b"\n")
    (run_dir / "resolved_scenario.json").write_bytes(orjson.dumps(scenario))
    (run_dir / "run.json").write_bytes(orjson.dumps({"started_at": T0, "run_id": "run-1", "mode": "replay"}))
    return run_dir
