"""The environment: one reader (``medlens.config``), empty means unset everywhere, and the
README's table lists exactly the variables the package reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medlens import config

REPO = Path(__file__).resolve().parents[1]


def test_readme_table_lists_every_variable_in_order() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| `([A-Z_]+)` \|", readme, flags=re.MULTILINE)
    assert listed == [v.name for v in config.ENVIRONMENT]


def test_every_variable_named_in_the_package_is_in_the_table() -> None:
    named = set()
    for path in (REPO / "src" / "medlens").rglob("*.py"):
        named |= set(re.findall(r"[\"'`$]((?:MEDLENS|OPENAI)_[A-Z_]+)\b", path.read_text()))
    assert named <= {v.name for v in config.ENVIRONMENT}, named


def test_empty_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    from medlens.bench.store import default_store_path
    from medlens.privacy.policy import medlens_home
    from medlens.serve.auth import default_key_file
    from medlens.trust.calibration import profiles_dir

    monkeypatch.setenv("MEDLENS_HOME", "")
    monkeypatch.setenv("MEDLENS_DATA", "")
    home = Path.home() / ".medlens"
    assert config.home_dir() == home == medlens_home()
    assert default_store_path() == home / "runs.sqlite"  # was ./runs.sqlite
    assert profiles_dir() == home / "profiles"
    assert default_key_file() == home / "serve" / "api_keys.json"
    assert config.data_dir() is None
    monkeypatch.setenv("MEDLENS_MAX_PIXELS", " ")
    assert config.env("MEDLENS_MAX_PIXELS") is None


def test_set_values_are_used_and_stripped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEDLENS_HOME", f" {tmp_path} ")
    monkeypatch.setenv("MEDLENS_DATA", str(tmp_path / "data"))
    assert config.home_dir() == tmp_path
    assert config.data_dir() == tmp_path / "data"
    assert config.data_dir("/elsewhere") == Path("/elsewhere")  # --data-dir wins


def test_unknown_variable_is_a_programming_error() -> None:
    with pytest.raises(KeyError, match="not a medlens environment variable"):
        config.env("MEDLENS_NOPE")
