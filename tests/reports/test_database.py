"""The reports read a run's records from the gateway's database exactly as from its JSONL log."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from gateway.clock import SystemClock
from gateway.db.engine import create_engine
from gateway.db.migrate import upgrade
from gateway.observability.logs import EventLog
from gateway.requestrecord import AttemptRecord, RequestRecord
from gateway.settings.db import UsageSettings
from gateway.usage.writer import UsageWriter
from reports.__main__ import main as reports_main
from reports.load import load_run
from reports.summary import compute
from tests.reports.factory import T0, lines, outage_run, outage_scenario

RUN = "openai-outage-test-db"


def record(d: dict[str, Any]) -> RequestRecord:
    fields = {k: v for k, v in d.items() if k != "schema"}
    fields["attempts"] = [AttemptRecord(**a) for a in d.get("attempts", [])]
    return RequestRecord(**fields)


async def write(database_url: str, records: list[dict[str, Any]]) -> None:
    engine = create_engine(database_url)
    await upgrade(engine)
    writer = UsageWriter(engine, UsageSettings(batch_max=200), clock=SystemClock(), log=EventLog(SystemClock()))
    for r in records:
        writer.submit(record(r))
    writer.submit(record(records[0] | {"run_id": "another-run", "request_id": "x"}))  # not this run's
    await writer.flush()
    await engine.dispose()


def test_a_run_from_the_database_reads_as_from_its_log(tmp_path: Path, database_url: str) -> None:
    records = [r | {"run_id": RUN} for r in outage_run(rate=5, duration=180, seed=3)]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "requests.jsonl").write_bytes(b"\n".join(lines(records)) + b"\n")
    (run_dir / "resolved_scenario.json").write_bytes(orjson.dumps(outage_scenario()))
    (run_dir / "run.json").write_bytes(orjson.dumps({"run_id": RUN, "started_at": T0}))
    asyncio.run(write(database_url, records))

    from_log = compute(load_run(run_dir)).summary
    from_db = compute(load_run(run_dir, database_url=database_url)).summary
    assert from_db == from_log
    availability = from_db["figures"]["availability"]
    assert availability is not None and availability < 1.0  # an outage run, not an empty one


def test_the_command_reads_the_database(tmp_path: Path, database_url: str) -> None:
    run_dir = tmp_path / "empty"
    run_dir.mkdir()
    (run_dir / "run.json").write_bytes(orjson.dumps({"started_at": T0}))
    assert reports_main([str(run_dir), "--database", database_url, "--no-charts"]) == 2  # run.json has no run_id
