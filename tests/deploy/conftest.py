from __future__ import annotations

from pathlib import Path

import pytest

from tests.tools import tool

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def promtool() -> str:
    """The promtool binary. Required, never skipped: a missing promtool fails the test (``make tools``)."""
    return tool("promtool")
