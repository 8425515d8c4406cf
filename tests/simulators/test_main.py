"""The command line: ``python -m simulators`` (its server is exercised in test_process.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.__main__ import build, main, parse
from simulators.decide import Request
from simulators.profile import list_profiles


def test_list_profiles_prints_every_profile_with_its_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list-profiles"]) == 0
    out = capsys.readouterr().out
    for name in list_profiles():
        assert any(line.startswith(name + " ") and len(line.split(None, 1)[1]) > 10 for line in out.splitlines()), name


def test_an_unknown_profile_exits_2_with_the_known_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--profile", "no-such-profile"]) == 2
    err = capsys.readouterr().err
    assert "no-such-profile" in err and "openai-gpt-4o" in err


def test_an_invalid_profile_file_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("latency: {inter-token-latency: -3}\n")
    assert main(["--profile", str(bad)]) == 2
    assert "inter-token-latency" in capsys.readouterr().err


def test_without_control_the_process_keeps_no_decision_log() -> None:
    """Nothing could read it (/_sim/decisions needs --control): up to --log-limit decisions would lengthen every full
    garbage collection of a long run."""
    engine = build(parse(["--profile", "instant"])).engine
    engine.decide(Request("m", 5, 4, False, "k", "hi"))
    assert engine.seq == 1 and list(engine.decisions) == []


def test_with_control_the_log_keeps_the_last_log_limit_decisions() -> None:
    engine = build(parse(["--control", "--log-limit", "2"])).engine
    for _ in range(3):
        engine.decide(Request("m", 5, 4, False, "k", "hi"))
    assert [d["seq"] for d in engine.decision_log()] == [1, 2]
    assert build(parse(["--control"])).engine.decisions.maxlen == 100_000


def test_the_server_starts_with_what_start_up_left_alive_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frozen objects are out of the collector's view: full collections of a long run do not rescan them."""
    import gc

    import uvicorn

    served: list[int] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(gc.get_freeze_count()))
    gc.unfreeze()
    try:
        assert main(["--profile", "instant", "--port", "1"]) == 0
    finally:
        gc.unfreeze()
    assert served and served[0] > 1000
