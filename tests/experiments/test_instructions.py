"""`make instructions` reads the instructions counted while instrumentation was on: the ``totals:`` line of the
callgrind file, not its ``summary:`` line (which counts from the start, when instrumentation was off: 0)."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.instructions import callgrind_total, main
from experiments.procs import StartupError

CALLGRIND_FILE = """# callgrind format
version: 1
creator: callgrind-3.19.0
cmd:  python -m experiments.forwarder
events: Ir
summary: 0

fn=(1) main
0 5
totals: 16519704
"""


def test_reads_the_totals_line(tmp_path: Path) -> None:
    out = tmp_path / "x.callgrind"
    out.write_text(CALLGRIND_FILE)
    assert callgrind_total(out) == 16_519_704


def test_a_file_without_totals_is_an_error(tmp_path: Path) -> None:
    out = tmp_path / "x.callgrind"
    out.write_text(CALLGRIND_FILE.replace("totals: 16519704\n", ""))
    with pytest.raises(StartupError, match="no totals"):
        callgrind_total(out)


def test_unknown_systems_are_refused() -> None:
    with pytest.raises(SystemExit):
        main(["--systems", "gateway,nginx"])
