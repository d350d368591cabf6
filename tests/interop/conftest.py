"""A real Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) on 127.0.0.1 for the interop
tests: free ports, a temporary storage folder, DICOMweb under ``/dicom-web/``. Where Orthanc
or its DICOMweb plug-in is not installed, or it does not start, the tests that need it skip
and say why (``scripts/install-system-deps.sh`` installs both)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc/plugins"))
REFUSE_ALL_LUA = """
function ReceivedInstanceFilter(dicom, origin, info)
  return false
end
"""
"""A PACS whose storage policy refuses every instance: Orthanc still answers STOW-RS with 200
and lists the instances as referenced (the trap of dicomweb-client issue #42)."""


@dataclass
class Orthanc:
    http_port: int
    storage: Path
    process: subprocess.Popen[bytes]
    log: Path
    user: tuple[str, str] | None = None

    @property
    def root(self) -> str:
        """The DICOMweb service root as ``dicomweb://`` (what medlens takes)."""
        return f"dicomweb://127.0.0.1:{self.http_port}/dicom-web"

    def study(self, study_uid: str, series_uid: str | None = None) -> str:
        address = f"{self.root}/studies/{study_uid}"
        return address + (f"/series/{series_uid}" if series_uid else "")

    def rest(self, path: str, method: str = "GET") -> object:
        """Orthanc's own REST API (to inspect what it really stored, beside DICOMweb)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", method=method)
        if self.user is not None:
            import base64

            token = base64.b64encode(":".join(self.user).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def clear(self) -> None:
        """Delete every patient, so that a test starts from an empty PACS."""
        for patient in self.rest("/patients"):  # type: ignore[union-attr]
            self.rest(f"/patients/{patient}", method="DELETE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _plugin() -> Path | None:
    for folder in PLUGIN_DIRS:
        found = folder / "libOrthancDicomWeb.so"
        if found.exists():
            return found
    return None


def start_orthanc(
    folder: Path, *, user: tuple[str, str] | None = None, lua: str | None = None
) -> Orthanc:
    """Start Orthanc with DICOMweb, storing in ``folder``; skip the test where it cannot."""
    binary = shutil.which("Orthanc")
    plugin = _plugin()
    if binary is None or plugin is None:
        pytest.skip(
            "Orthanc with its DICOMweb plug-in is not installed (Debian packages orthanc, "
            "orthanc-dicomweb; scripts/install-system-deps.sh installs them)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "medlens-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": user is not None,
        "RegisteredUsers": {user[0]: user[1]} if user else {},
        "HttpCompressionEnabled": False,
        "Plugins": [str(plugin)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full"},
        "LuaScripts": [],
    }
    if lua is not None:
        script = folder / "policy.lua"
        script.write_text(lua)
        config["LuaScripts"] = [str(script)]
    (folder / "orthanc.json").write_text(json.dumps(config, indent=2))
    log = folder / "orthanc.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, str(folder / "orthanc.json")],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=folder,
        )
    server = Orthanc(http_port, folder / "storage", process, log, user)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            server.rest("/system")
            return server
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.1)
    stop(server)
    tail = log.read_text(errors="replace")[-600:]
    pytest.skip(f"Orthanc did not start within 30 s (exit {process.poll()}): {tail}")


def stop(server: Orthanc) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """An open Orthanc (no authentication), shared by the session; tests clear it first."""
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    yield server
    stop(server)


@pytest.fixture
def pacs(orthanc: Orthanc) -> Orthanc:
    """The shared Orthanc, emptied for this test."""
    orthanc.clear()
    return orthanc


@pytest.fixture(scope="session")
def orthanc_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """An Orthanc that requires HTTP basic authentication (user medlens, password s3cret)."""
    server = start_orthanc(tmp_path_factory.mktemp("orthanc-auth"), user=("medlens", "s3cret"))
    yield server
    stop(server)


@pytest.fixture(scope="session")
def orthanc_refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """An Orthanc whose storage policy refuses every instance (yet answers STOW with 200)."""
    server = start_orthanc(tmp_path_factory.mktemp("orthanc-refusing"), lua=REFUSE_ALL_LUA)
    yield server
    stop(server)


def stow_folder(server: Orthanc, folder: Path) -> list[str]:
    """Upload every DICOM file under ``folder`` through Orthanc's REST API (not through
    medlens: the fixture data must not depend on the code under test). Returns the study
    UIDs stored."""
    studies: set[str] = set()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if data[128:132] != b"DICM":
            continue
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.http_port}/instances", data=data, method="POST"
        )
        request.add_header("Content-Type", "application/dicom")
        if server.user is not None:
            import base64

            token = base64.b64encode(":".join(server.user).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=30) as response:
            studies.add(json.loads(response.read())["ParentStudy"])
    found = [server.rest(f"/studies/{study}") for study in sorted(studies)]
    return sorted(str(s["MainDicomTags"]["StudyInstanceUID"]) for s in found)  # type: ignore[index]
