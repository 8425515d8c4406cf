"""The provider-hangs scenario, replayed with slow-call breaking and hedging (as shipped) and without them (the
router defaults): with them, stream TTFT p99 stays far below the first-byte timeout; without, it is the timeout."""

from __future__ import annotations

import json
import math
from pathlib import Path

from experiments.replay import run_replay
from experiments.scenario_files import load_scenario

FIRST_BYTE_S = 30.0  # the router default the scenario keeps


def _replay(tmp_path: Path, *, features: bool) -> tuple[float, int, int]:
    """(stream TTFT p99, requests that waited >= first_byte_s, breaker opens on slow calls)."""
    sc = load_scenario("provider-hangs")
    if not features:
        sc = sc.model_copy(update={"gateway": {}})
    run_dir = tmp_path / ("on" if features else "off")
    run_dir.mkdir()
    run_replay(sc, run_dir)
    recs = [json.loads(line) for line in (run_dir / "requests.jsonl").read_text().splitlines()]
    ttft = sorted(r["ts_first_byte"] - r["ts_arrival"] for r in recs if r["stream"] and r["ts_first_byte"])
    p99 = ttft[math.ceil(0.99 * len(ttft)) - 1]
    waited = sum(1 for r in recs if r["ts_end"] - r["ts_arrival"] >= FIRST_BYTE_S)
    reasons = [b["reason"] for r in recs for b in r["decisions"].get("breaker", []) if b["to"] == "open"]
    return p99, waited, sum(1 for why in reasons if why in ("consecutive_slow_calls", "slow_call_rate"))


def test_slow_call_breaking_and_hedging_keep_ttft_p99_far_below_the_first_byte_timeout(tmp_path: Path) -> None:
    assert load_scenario("provider-hangs").gateway["router"]["hedging"]["enabled"] is True
    p99, waited, slow_opens = _replay(tmp_path, features=True)
    assert p99 < 3.0 and waited == 0 and slow_opens >= 1
    p99, waited, slow_opens = _replay(tmp_path, features=False)
    assert p99 >= FIRST_BYTE_S and waited > 50 and slow_opens == 0
