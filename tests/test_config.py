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


def test_only_config_reads_the_environment() -> None:
    """``config.env`` is the one reader: no other module of the package touches
    ``os.environ`` or ``os.getenv`` (reading, or writing, which the library never does)."""
    package = REPO / "src" / "medlens"
    readers = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "config.py" or path.parent != package
        if re.search(
            r"\bos\.(environ|getenv|putenv|unsetenv)\b|\bfrom os import\b", path.read_text()
        )
    )
    assert readers == []


def test_hub_variables_follow_the_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    from medlens import hub

    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("HF_ENDPOINT", "")
    assert hub._endpoint() == ("proxy.example", 3128)  # the lower-case spelling is read
    monkeypatch.setenv("https_proxy", " ")
    assert hub._endpoint() == ("huggingface.co", 443)  # empty means unset
    monkeypatch.setenv("HF_HUB_OFFLINE", " TRUE ")
    assert hub.offline_mode()
    monkeypatch.setenv("HF_HUB_OFFLINE", "")
    for name in ("TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    assert not hub.offline_mode()


def test_pacs_settings_read_through_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from medlens.study.readers.dicomweb import Credentials

    for name in ("MEDLENS_PACS_AUTH_FILE", "MEDLENS_PACS_TOKEN"):
        monkeypatch.setenv(name, " ")
    monkeypatch.setenv("MEDLENS_PACS_USER", "reader")
    monkeypatch.setenv("MEDLENS_PACS_PASSWORD", "s3cret")
    credentials = Credentials.resolve()
    assert credentials.kind == "basic" and credentials.secret == ("reader", "s3cret")
