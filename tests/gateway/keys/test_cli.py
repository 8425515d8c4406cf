"""``python -m gateway migrate`` and ``python -m gateway keys ...``, in process."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml

from gateway.main import main
from tests.gateway.keys.conftest import settings_with


@pytest.fixture
def config(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A configuration naming no database; $DATABASE_URL (which overrides it) names the test's."""
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(settings_with(None).model_dump(mode="json")))
    monkeypatch.setenv("DATABASE_URL", database_url)
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_create_list_show_revoke(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "migrate", "--config", config)[0] == 0
    code, out, _ = run(
        capsys,
        *("keys", "create", "--name", "ops", "--models", "mini", "--usd-per-day", "0.5"),
        *("--tag", "team=sre", "--config", config),
    )
    made = orjson.loads(out)
    assert code == 0 and made["key"].startswith("fl-") and made["budget"]["usd_per_day"] == 0.5
    assert made["models"] == ["mini"] and made["tags"] == {"team": "sre"}
    listed = orjson.loads(run(capsys, "keys", "list", "--config", config)[1])
    assert [k["id"] for k in listed["data"]] == [made["id"]]
    assert orjson.loads(run(capsys, "keys", "show", made["id"], "--config", config)[1])["name"] == "ops"
    assert orjson.loads(run(capsys, "keys", "revoke", made["id"], "--config", config)[1])["status"] == "revoked"


def test_errors_are_clear(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "keys", "create", "--name", "x", "--tier", "nope", "--config", config)
    assert code == 1 and orjson.loads(err)["error"]["param"] == "tier"
    code, _, err = run(capsys, "keys", "show", "key_nope", "--config", config)
    assert code == 1 and orjson.loads(err)["error"]["code"] == "not_found"
