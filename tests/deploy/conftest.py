from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def promtool() -> str:
    """The promtool binary. Required, never skipped: a missing promtool fails the test (``.ci/run`` installs
    Debian's ``prometheus`` package; locally: ``apt-get install prometheus``)."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is required but not installed (apt-get install prometheus)")
    return path
