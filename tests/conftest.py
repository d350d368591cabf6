"""Shared fixtures. Tests needing ../shared/data skip with a reason where it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("MEDLENS_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets of ../shared/data (VQA-RAD, SLAKE, DICOM series)."""
    path = shared_data_dir()
    if not (path / "README.md").exists():
        pytest.skip(f"real data not found at {path} (set MEDLENS_SHARED_DATA)")
    return path


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep run stores, caches and profiles of tests out of the user's ~/.medlens."""
    monkeypatch.setenv("MEDLENS_HOME", str(tmp_path_factory.mktemp("medlens-home")))
