"""Shared pieces for observability tests: a minimal valid configuration and the promtool binary."""

from __future__ import annotations

import shutil

import pytest

from gateway.config import Settings, hash_key, parse_settings


def make_settings(**overrides: object) -> Settings:
    raw: dict[str, object] = {
        "seed": 7,
        "server": {"metrics_port": 0},
        "consumers": [{"name": "alice", "key_sha256": hash_key("sk-alice")}],
        "providers": [
            {"name": "openai-sim", "kind": "openai", "base_url": "http://openai.sim/v1"},
            {"name": "vllm-sim", "kind": "vllm", "base_url": "http://vllm.sim/v1"},
        ],
        "models": [
            {
                "name": "gpt-4o-mini",
                "routes": [{"provider": "openai-sim", "model": "gpt-4o-mini"}],
                "aliases": ["mini"],
            }
        ],
    }
    raw.update(overrides)
    return parse_settings(raw)


def promtool() -> str:
    """The promtool binary. Required, never skipped: a missing promtool fails the test (``.ci/run`` installs
    Debian's ``prometheus`` package; locally: ``apt-get install prometheus``)."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is required but not installed (apt-get install prometheus)")
    return path
