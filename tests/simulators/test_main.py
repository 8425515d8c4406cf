"""The command line: ``python -m simulators`` (its server is exercised in test_process.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.__main__ import main
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
