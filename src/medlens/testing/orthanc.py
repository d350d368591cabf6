"""A throw-away Orthanc PACS on 127.0.0.1 with DICOMweb, for tests and benchmarks.

Debian's ``orthanc`` and ``orthanc-dicomweb`` packages provide the server and its plug-in
(``scripts/install-system-deps.sh`` installs them). ``start_orthanc(folder)`` picks free
ports, stores in ``folder``, allows no remote access, and returns once the REST API answers;
``OrthancUnavailable`` says why it could not (a test suite turns that into a skip)::

    server = start_orthanc(tmp / "pacs")
    load_study(server.study(study_uid))
    server.stop()
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medlens.errors import MedlensError

PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc/plugins"))
REFUSE_ALL_LUA = """
function ReceivedInstanceFilter(dicom, origin, info)
  return false
end
"""
"""A storage policy that refuses every instance: Orthanc still answers STOW-RS with 200 and
lists the instances as referenced (the trap of dicomweb-client issue #42)."""


class OrthancUnavailable(MedlensError):
    """Orthanc or its DICOMweb plug-in is missing, or the server did not start."""


@dataclass
class Orthanc:
    """A running Orthanc: its ports, storage and process."""

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

    def _request(self, path: str, method: str = "GET", data: bytes | None = None) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method
        )
        if data is not None:
            request.add_header("Content-Type", "application/dicom")
        if self.user is not None:
            token = base64.b64encode(":".join(self.user).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read()
        return json.loads(body) if body else None

    def rest(self, path: str, method: str = "GET") -> Any:
        """Orthanc's own REST API (to see what it really stored, beside DICOMweb)."""
        return self._request(path, method)

    def upload(self, folder: Path) -> list[str]:
        """Store every DICOM Part 10 file under ``folder`` through Orthanc's REST API (not
        through medlens, so that test data does not depend on the code under test); returns
        the Study Instance UIDs stored."""
        studies: set[str] = set()
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            data = path.read_bytes()
            if data[128:132] == b"DICM":
                studies.add(self._request("/instances", "POST", data)["ParentStudy"])
        found = [self.rest(f"/studies/{study}") for study in sorted(studies)]
        return sorted(str(s["MainDicomTags"]["StudyInstanceUID"]) for s in found)

    def clear(self) -> None:
        """Delete every patient, so that a test starts from an empty PACS."""
        for patient in self.rest("/patients"):
            self.rest(f"/patients/{patient}", method="DELETE")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _plugin() -> Path | None:
    return next(
        (
            d / "libOrthancDicomWeb.so"
            for d in PLUGIN_DIRS
            if (d / "libOrthancDicomWeb.so").exists()
        ),
        None,
    )


def start_orthanc(
    folder: Path,
    *,
    user: tuple[str, str] | None = None,
    lua: str | None = None,
    wait_s: float = 30.0,
) -> Orthanc:
    """Start Orthanc with DICOMweb under ``/dicom-web/``, storing in ``folder``; ``user``
    turns on HTTP basic authentication, ``lua`` installs a Lua script (a storage policy)."""
    binary = shutil.which("Orthanc")
    plugin = _plugin()
    if binary is None or plugin is None:
        raise OrthancUnavailable(
            "Orthanc with its DICOMweb plug-in is not installed (Debian packages orthanc, "
            "orthanc-dicomweb; scripts/install-system-deps.sh installs them)"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "Name": "medlens-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "HttpPort": free_port(),
        "DicomPort": free_port(),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": user is not None,
        "RegisteredUsers": {user[0]: user[1]} if user else {},
        "HttpCompressionEnabled": False,
        "Plugins": [str(plugin)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full"},
        "LuaScripts": [],
    }
    if lua is not None:
        (folder / "policy.lua").write_text(lua)
        config["LuaScripts"] = [str(folder / "policy.lua")]
    (folder / "orthanc.json").write_text(json.dumps(config, indent=2))
    log = folder / "orthanc.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, str(folder / "orthanc.json")], stdout=out, stderr=subprocess.STDOUT, cwd=folder
        )
    server = Orthanc(int(config["HttpPort"]), folder / "storage", process, log, user)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            server.rest("/system")
            return server
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    server.stop()
    tail = log.read_text(errors="replace")[-600:]
    raise OrthancUnavailable(
        f"Orthanc did not start within {wait_s:g} s (exit {process.poll()}): {tail}"
    )
