"""The ``config-reload`` scenario replayed (at 0.4 of its length): each reload takes effect from the next request,
the requests in flight across it finish where they started, none fails, and the gateway logs each one."""

from __future__ import annotations

import json
from pathlib import Path

from experiments.replay import run_replay
from experiments.scenario import scaled
from experiments.scenario_files import load_scenario

SCALE = 0.4


def test_the_routes_follow_each_reload_and_no_request_fails(tmp_path: Path) -> None:
    sc = scaled(load_scenario("config-reload"), SCALE)
    drain, restore = (r.at_s for r in sc.reloads)
    result = run_replay(sc, tmp_path, scale=SCALE)
    t0 = json.loads((tmp_path / "run.json").read_text())["started_at"]
    records = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert result.records == len(records) > 0
    assert {r["status"] for r in records} == {200}
    by_phase: dict[str, set[str]] = {"before": set(), "drained": set(), "restored": set()}
    crossed = 0
    for r in records:
        arrived, ended = r["ts_arrival"] - t0, r["ts_end"] - t0
        phase = "before" if arrived < drain else "drained" if arrived < restore else "restored"
        if arrived not in (drain, restore):  # one arriving at the very instant of a reload may go either way
            by_phase[phase].add(r["provider"])
        crossed += arrived < drain < ended and r["provider"] == "openai"
    assert by_phase == {"before": {"openai", "vllm"}, "drained": {"vllm"}, "restored": {"openai", "vllm"}}
    assert crossed > 0  # sent to openai before the drain, answered by it after
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    reloads = [(e["generation"], e["trigger"], e["ts"] - t0) for e in events if e["event"] == "config_reload"]
    assert reloads == [(2, "replay", drain), (3, "replay", restore)]
