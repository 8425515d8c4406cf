"""The progress display of real-time runs: the status line, the client-log tail, TTY and plain output."""

from __future__ import annotations

import io
from pathlib import Path

import orjson

from experiments.progress import ClientTail, Progress, status_line
from experiments.scenario_files import load_scenario


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _row(t: float, status: int, error: str | None = None) -> bytes:
    return orjson.dumps({"id": "c", "t": t, "status": status, "error": error}) + b"\n"


def test_tail_reads_a_growing_log_including_a_line_cut_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "client.jsonl"
    tail = ClientTail(path, window_s=5.0)
    tail.poll()  # no file yet
    assert tail.total == 0
    whole = _row(1.0, 200) + _row(2.0, 503, "HTTP 503 overloaded")
    third = _row(7.5, 200)
    path.write_bytes(whole + third[:10])
    tail.poll()
    assert (tail.total, tail.errors, tail.status) == (2, 1, {"200": 1, "503": 1})
    with path.open("ab") as f:
        f.write(third[10:])
    tail.poll()
    assert (tail.total, tail.status["200"]) == (3, 2)
    rps, recent_errors = tail.rate(8.0)  # the window (3, 8]: only the row at 7.5
    assert (rps, recent_errors) == (1 / 5, 0)


def test_status_line_names_the_phase_the_active_faults_and_the_error_share(tmp_path: Path) -> None:
    sc = load_scenario("openai-outage")
    tail = ClientTail(tmp_path / "client.jsonl")
    (tmp_path / "client.jsonl").write_bytes(_row(40.0, 200) + _row(41.0, 503, "HTTP 503 overloaded"))
    tail.poll()  # read as the runner reads the client log
    line = status_line(sc, 42.0, tail)
    assert line.startswith("[openai-outage]  42.0/150 s")
    assert "phase outage" in line
    assert "faults openai:outage:503" in line
    assert "errors 1 (50.0%)" in line
    quiet = status_line(sc, 10.0, ClientTail(tmp_path / "none.jsonl"))
    assert "phase steady" in quiet and "faults none" in quiet and "errors 0," in quiet
    assert "phase draining" in status_line(sc, 151.0, tail)  # past the duration, requests still in flight


def test_plain_output_prints_a_line_every_period_and_messages_always() -> None:
    out = io.StringIO()
    p = Progress(stream=out, every_s=5.0)
    for t in (0.0, 1.0, 4.9, 5.0, 7.0, 10.5):
        p.update(f"at {t}", t)
    p.message("done")
    assert out.getvalue().splitlines() == ["at 0.0", "at 5.0", "at 10.5", "done"]


def test_a_terminal_gets_one_line_rewritten_in_place() -> None:
    out = _Tty()
    p = Progress(stream=out)
    p.update("a long first line", 0.0)
    p.update("short", 0.25)
    p.message("stopping")
    p.update("again", 1.0)
    p.done()
    text = out.getvalue()
    assert text.startswith("\ra long first line\rshort" + " " * 12)
    assert "\r     \rstopping\n" in text  # the status line is blanked out, the message keeps a line of its own
    assert text.endswith("\ragain\n")
    assert text.count("\n") == 2


def test_disabled_progress_writes_nothing() -> None:
    out = _Tty()
    p = Progress(enabled=False, stream=out)
    p.update("x", 0.0)
    p.message("y")
    p.done()
    assert out.getvalue() == ""
