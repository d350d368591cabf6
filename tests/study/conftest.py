"""Fixtures for medlens.study tests: files shipped inside the pydicom and nibabel wheels, and
synthetic studies written once per session."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from medlens.testing.studies import write_ct_series


def _pydicom_file(name: str) -> Path:
    """A test file from the pydicom wheel, never downloaded (pydicom would try the network
    for files that are not in the wheel)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not shipped in this pydicom wheel")
    return Path(str(path))


def _nibabel_file(name: str) -> Path:
    import nibabel.testing

    path = Path(os.path.join(nibabel.testing.data_path, name))
    if not path.exists():
        pytest.skip(f"{name} is not shipped in this nibabel wheel")
    return path


@pytest.fixture
def pydicom_file() -> Callable[[str], Path]:
    """``pydicom_file("CT_small.dcm")``: the path, or a skip where the wheel lacks it."""
    return _pydicom_file


@pytest.fixture
def nibabel_file() -> Callable[[str], Path]:
    """``nibabel_file("anatomical.nii")``: the path, or a skip where the wheel lacks it."""
    return _nibabel_file


@pytest.fixture(scope="session")
def ct_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic chest CT phantom: 24 slices of 128², shuffled file names."""
    return write_ct_series(tmp_path_factory.mktemp("ct") / "series")


@pytest.fixture(scope="session")
def ct_study(ct_series: Path):  # type: ignore[no-untyped-def]
    from medlens.study import load_study

    return load_study(ct_series)
