"""Process entry points: the server process tunes its garbage collector once its app is built."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from gateway.config import hash_key

PROBE = """
import gc, json
from gateway.main import GC_GEN0_THRESHOLD, app_from_env
before = gc.get_freeze_count()
app = app_from_env()
print(json.dumps({"before": before, "frozen": gc.get_freeze_count(), "gen0": gc.get_threshold()[0],
                  "want": GC_GEN0_THRESHOLD}))
"""


def test_the_server_process_freezes_its_startup_heap_and_raises_the_young_threshold(tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "consumers": [{"name": "a", "key_sha256": hash_key("k")}],
                "providers": [{"name": "p", "kind": "openai", "base_url": "http://127.0.0.1:9/v1"}],
                "models": [{"name": "m", "routes": [{"provider": "p", "model": "m"}]}],
            }
        )
    )
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={"GATEWAY_CONFIG": str(cfg), "PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["before"] == 0
    assert got["frozen"] > 10_000  # the modules, the app and its configuration
    assert got["gen0"] == got["want"] > 700
