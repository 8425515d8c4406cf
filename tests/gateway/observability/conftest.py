"""Shared pieces for observability tests: a minimal valid configuration and promtool lookup."""

from __future__ import annotations

import os
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
    """The promtool binary; fails under CI=true when absent, else skips."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is not installed (apt-get install prometheus)")
        pytest.skip("promtool is not installed")
    return path
