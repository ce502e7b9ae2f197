"""The settings catalogue."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loopml import settings
from loopml.errors import SettingError


def test_every_setting_is_documented_and_its_default_parses() -> None:
    for setting, value in settings.iter_settings():
        assert setting.name.startswith("LOOPML_")
        assert setting.doc and setting.type_name
        assert value == setting.default or setting.name == "LOOPML_HOME"


def test_values_are_parsed_by_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_FLUSH_INTERVAL", "0.25")
    monkeypatch.setenv("LOOPML_CAPTURE_PACKAGES", "no")
    assert settings.get("LOOPML_FLUSH_INTERVAL") == 0.25
    assert settings.get("LOOPML_CAPTURE_PACKAGES") is False


@pytest.mark.parametrize(
    ("name", "raw"),
    [("LOOPML_FLUSH_INTERVAL", "soon"), ("LOOPML_FLUSH_INTERVAL", "-1"), ("LOOPML_DEBUG", "maybe")],
)
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, raw: str) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(SettingError, match=name):
        settings.get(name)


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(SettingError, match="LOOPML_NOPE"):
        settings.get("LOOPML_NOPE")


def test_store_and_artifacts_default_under_home(loopml_home: Path) -> None:
    assert settings.store_uri() == f"sqlite:///{loopml_home.absolute() / 'loopml.db'}"
    assert settings.artifact_uri() == str(loopml_home.absolute() / "artifacts")


# Variables loopml sets for the commands it runs (an alert command's event), never reads.
_SET_FOR_COMMANDS = {"LOOPML_ALERT"}


def test_the_code_reads_no_undeclared_loopml_variable() -> None:
    source = Path(settings.__file__).parent
    used = set()
    for path in source.rglob("*.py"):
        used.update(re.findall(r"\"(LOOPML_[A-Z_]+)\"", path.read_text()))
    assert used - _SET_FOR_COMMANDS <= set(settings.SETTINGS)
