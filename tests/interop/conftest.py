"""A real Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) on 127.0.0.1 for the interop
tests, from ``medlens.testing.orthanc``: free ports, a temporary storage folder, DICOMweb under
``/dicom-web/``. Where Orthanc or its plug-in is not installed, or it does not start, the
tests that need it skip and say why (``scripts/install-system-deps.sh`` installs both)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from medlens.testing.orthanc import (
    REFUSE_ALL_LUA,
    Orthanc,
    OrthancUnavailable,
    free_port,
    start_orthanc,
)

__all__ = ["Orthanc", "free_port", "stow_folder"]


def _start(folder: Path, *, user: tuple[str, str] | None = None, lua: str | None = None) -> Orthanc:
    try:
        return start_orthanc(folder, user=user, lua=lua)
    except OrthancUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """An open Orthanc (no authentication), shared by the session; tests clear it first."""
    server = _start(tmp_path_factory.mktemp("orthanc"))
    yield server
    server.stop()


@pytest.fixture
def pacs(orthanc: Orthanc) -> Orthanc:
    """The shared Orthanc, emptied for this test."""
    orthanc.clear()
    return orthanc


@pytest.fixture(scope="session")
def orthanc_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """An Orthanc that requires HTTP basic authentication (user medlens, password s3cret)."""
    server = _start(tmp_path_factory.mktemp("orthanc-auth"), user=("medlens", "s3cret"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def orthanc_refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """An Orthanc whose storage policy refuses every instance (yet answers STOW with 200)."""
    server = _start(tmp_path_factory.mktemp("orthanc-refusing"), lua=REFUSE_ALL_LUA)
    yield server
    server.stop()


def stow_folder(server: Orthanc, folder: Path) -> list[str]:
    """Upload the DICOM files of ``folder`` by Orthanc's REST API; the study UIDs stored."""
    return server.upload(folder)
