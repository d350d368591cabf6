"""Uploaded studies: read into memory, never written under their original names.

A single file (DICOM, NIfTI, PNG/JPEG/TIFF) is loaded from its bytes and never touches the
disk. A zip of a DICOM series is extracted into a private directory (mode 0700) under random
member names, with the uncompressed size counted while extracting (zip bombs), and removed
when the request ends. The client's file names are never used, stored or logged.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from medlens.errors import CorruptFileError, ImageTooLargeError
from medlens.types import Study

ZIP_MAGIC = b"PK\x03\x04"
UNZIP_FACTOR = 4
"""A zip may expand to this many times the upload limit (DICOM compresses about 2-3×)."""
MAX_ZIP_MEMBERS = 5000


@dataclass(frozen=True)
class Upload:
    """One uploaded file's bytes (its name is deliberately not kept)."""

    data: bytes


@contextlib.contextmanager
def private_dir() -> Iterator[Path]:
    """A fresh 0700 directory with a random name, removed on exit whatever happens."""
    path = Path(tempfile.mkdtemp(prefix="medlens-upload-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _extract(data: bytes, into: Path, max_bytes: int) -> Path:
    try:
        archive = zipfile.ZipFile(BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise CorruptFileError(
            f"The upload starts like a zip but cannot be opened ({exc}). Zip the series "
            "folder again and retry."
        ) from exc
    members = [m for m in archive.infolist() if not m.is_dir()]
    if not members:
        raise CorruptFileError("The zip holds no files. Zip the folder of the DICOM series.")
    if len(members) > MAX_ZIP_MEMBERS:
        raise ImageTooLargeError(
            f"The zip holds {len(members)} files; this server takes at most {MAX_ZIP_MEMBERS}. "
            "Send one series at a time."
        )
    into.mkdir(mode=0o700)
    total = 0
    for member in members:
        name = member.filename.rsplit("/", 1)[-1]
        if name.startswith(".") or name.upper() == "DICOMDIR":
            continue  # macOS resource forks, the media directory: not images
        target = into / secrets.token_hex(8)
        with archive.open(member) as source, target.open("wb") as sink:
            while chunk := source.read(1 << 20):
                total += len(chunk)
                if total > max_bytes:
                    raise ImageTooLargeError(
                        f"The zip expands to more than {max_bytes / 1e6:.0f} MB, more than this "
                        "server accepts. Send one series at a time, or raise --max-upload-mb."
                    )
                sink.write(chunk)
    return into


def load_upload(
    upload: Upload,
    workdir: Path,
    *,
    max_pixels: int,
    max_bytes: int,
    modality: str | None = None,
) -> Study:
    """Load an uploaded study; a zip is extracted (random names) into ``workdir``, which the
    caller removes (``private_dir``). ``modality`` names what the file cannot say (NIfTI,
    PNG): "CT" enables the CT window presets."""
    from medlens.study import load_study

    source: Path | bytes = upload.data
    if upload.data[:4] == ZIP_MAGIC:
        source = _extract(upload.data, workdir / secrets.token_hex(4), max_bytes)
    return load_study(source, max_pixels=max_pixels, modality=modality)


def load_uploads(
    current: Upload,
    prior: Upload | None,
    workdir: Path,
    *,
    max_pixels: int,
    max_bytes: int,
    modality: str | None = None,
) -> Study:
    """The current study, with ``prior`` attached for comparison when given."""

    def load(upload: Upload) -> Study:
        return load_upload(
            upload, workdir, max_pixels=max_pixels, max_bytes=max_bytes, modality=modality
        )

    study = load(current)
    if prior is None:
        return study
    from medlens.study import load_pair

    before = load(prior)
    return load_pair(before, study)
