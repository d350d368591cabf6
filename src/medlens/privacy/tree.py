"""De-identify a folder tree of DICOM (with or without extension), PNG and JPEG files.

Output names are keyed hashes of the input's relative path (folders too), so neither a
patient name in a file name nor the folder layout's labels leak, while the same input always
maps to the same output. The audit (CSV, or JSON when its name ends in .json) holds one row
per input: its keyed id, output name, kind, status and counts; never a value or an original
name. A second run with ``resume`` skips the inputs the audit already lists.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medlens.errors import ConfigError, MedlensError
from medlens.privacy.pixels import MAX_OCR_PIXELS
from medlens.privacy.policy import DeidPolicy

AUDIT_FIELDS = ("key", "output", "kind", "status", "attributes_changed", "regions", "seconds")
IMAGE_SUFFIX = {"png": ".png", "jpeg": ".jpg"}


@dataclass
class FileResult:
    key: str
    output: str
    kind: str
    status: str
    attributes_changed: int = 0
    regions: int = 0
    seconds: float = 0.0


def sniff(path: Path) -> str | None:
    """ "dicom", "png", "jpeg" from the file's first bytes (extension-less DICOM included)."""
    with path.open("rb") as fh:
        head = fh.read(132)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[128:132] == b"DICM" or path.suffix.lower() in (".dcm", ".dicom"):
        return "dicom"
    return None


def output_path(relative: Path, kind: str, policy: DeidPolicy) -> Path:
    """Hashed path under the output root: each folder and the file named by a keyed hash of
    its relative path."""
    parts = relative.parts
    names = [policy.keyed_hash("path", *parts[: i + 1])[:16] for i in range(len(parts))]
    suffix = IMAGE_SUFFIX.get(kind, ".dcm")
    return Path(*names[:-1], names[-1] + suffix)


def _ocr_wanted(ds: Any, policy: DeidPolicy) -> bool:
    from medlens.privacy.studies import TEXT_PRONE_MODALITIES

    if policy.ocr == "never":
        return False
    if policy.ocr_pixels_always:
        return True
    burned = str(ds.get("BurnedInAnnotation", "")).upper()
    if burned in ("YES", "NO"):
        return burned == "YES"
    return str(ds.get("Modality", "")).upper() in TEXT_PRONE_MODALITIES


def _process_dicom(src: Path, dst: Path, policy: DeidPolicy) -> FileResult:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.uid import ExplicitVRLittleEndian

    from medlens.errors import CorruptFileError, ImageTooLargeError
    from medlens.privacy.header import deidentify_dataset
    from medlens.privacy.studies import _mark_pixels_clean, redact_slices, region_cache

    try:
        # Files without the 128-byte preamble (ACR-NEMA style, found by extension) need force;
        # a SOP Class UID then tells a real dataset from bytes that merely parsed.
        ds = pydicom.dcmread(src, force=True)
        if "SOPClassUID" not in ds:
            raise InvalidDicomError("no SOP Class UID")
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError) as exc:
        raise CorruptFileError(f"not a readable DICOM file ({type(exc).__name__})") from exc
    out, record = deidentify_dataset(ds, policy)
    changed = sum(len(v) for k, v in record.details.items() if k.endswith("_attributes"))
    regions = 0
    status = "ok"
    if "PixelData" not in ds:
        status = "ok: no pixel data"
    elif _ocr_wanted(ds, policy):
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        size = int(ds.get("Rows", 0)) * int(ds.get("Columns", 0)) * frames
        if size > MAX_OCR_PIXELS:
            raise ImageTooLargeError(f"{size:,} pixels is above the OCR cap of {MAX_OCR_PIXELS:,}")
        try:
            array = ds.pixel_array
        except (ValueError, RuntimeError, AttributeError) as exc:
            raise CorruptFileError(f"pixel data cannot be decoded ({type(exc).__name__})") from exc
        color = int(ds.get("SamplesPerPixel", 1)) > 1
        stack = array if (array.ndim == 4 or (array.ndim == 3 and not color)) else array[None]
        cleaned, summary = redact_slices(stack, region_cache(policy))
        regions = summary.regions
        if regions:
            cleaned = cleaned.reshape(array.shape).astype(array.dtype)
            out.PixelData = np.ascontiguousarray(cleaned).tobytes()
            out.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            if color:
                out.PhotometricInterpretation = "RGB"
                out.PlanarConfiguration = 0
        _mark_pixels_clean((out,))
    dst.parent.mkdir(parents=True, exist_ok=True)
    out.save_as(dst)
    return FileResult("", "", "dicom", status, changed, regions)


def _process_image(src: Path, dst: Path, kind: str, policy: DeidPolicy) -> FileResult:
    from PIL import Image, JpegImagePlugin, PngImagePlugin, UnidentifiedImageError

    from medlens.errors import CorruptFileError, ImageTooLargeError
    from medlens.privacy.pixels import redact_burned_in_text
    from medlens.privacy.studies import region_cache

    plugin = PngImagePlugin.PngImageFile if kind == "png" else JpegImagePlugin.JpegImageFile
    try:
        # The format's own header reader gives the size without Image.open's bomb check,
        # which would report a huge image as merely unidentified.
        with plugin(src) as header:
            pixels = header.width * header.height
        if pixels > MAX_OCR_PIXELS:
            raise ImageTooLargeError(f"{pixels:,} pixels is above the cap of {MAX_OCR_PIXELS:,}")
        with Image.open(src) as image:
            image.load()
            # A new image from the pixels alone: EXIF, text chunks and ICC names stay behind.
            clean = Image.fromarray(
                np.asarray(image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode))
            )
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError("pixel count above Pillow's decompression-bomb limit") from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise CorruptFileError(f"not a readable image ({type(exc).__name__})") from exc
    regions = 0
    if policy.ocr != "never":
        redacted, found = redact_burned_in_text(clean, cache=region_cache(policy))
        clean, regions = redacted, len(found)  # type: ignore[assignment]
    dst.parent.mkdir(parents=True, exist_ok=True)
    clean.save(dst, format="PNG" if kind == "png" else "JPEG", quality=95)
    return FileResult("", "", kind, "ok", 0, regions)


def read_audit(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    if path.suffix == ".json":
        return list(json.loads(path.read_text() or "[]"))
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _append_audit(path: Path, rows: list[dict[str, Any]]) -> None:
    """Add the last row: appended to a CSV (one line per file, so an interrupted run keeps
    what it finished), the whole list rewritten atomically for JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(rows, indent=1))
        tmp.replace(path)
        return
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=AUDIT_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(rows[-1])


def iter_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            yield path


def deidentify_tree(
    in_dir: Path,
    out_dir: Path,
    policy: DeidPolicy | None = None,
    *,
    audit_path: Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> list[FileResult]:
    """De-identify every DICOM/PNG/JPEG file under ``in_dir`` into ``out_dir``.

    A file that cannot be read (corrupt, too large, not an image) is listed in the audit
    with status "skipped: <reason>", never dropped silently. Returns this run's results.
    """
    from tqdm import tqdm

    policy = policy or DeidPolicy()
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise ConfigError(f"Input folder {in_dir} does not exist or is not a folder.")
    if out_dir.resolve().is_relative_to(in_dir.resolve()):
        raise ConfigError("The output folder must not be inside the input folder.")
    audit_path = Path(audit_path) if audit_path else out_dir / "deid-audit.csv"
    if audit_path.exists() and not resume:
        audit_path.unlink()  # a fresh run starts a fresh audit
    rows = read_audit(audit_path) if resume else []
    done = {row["key"] for row in rows}
    files = list(iter_files(in_dir))
    results: list[FileResult] = []
    for src in tqdm(files, desc="deid", unit="file", disable=not progress):
        relative = src.relative_to(in_dir)
        key = policy.keyed_hash("file", *relative.parts)[:20]
        if key in done:
            continue
        start = time.perf_counter()
        kind = sniff(src) or "unknown"
        out_rel = output_path(relative, kind, policy)
        try:
            if kind == "dicom":
                result = _process_dicom(src, out_dir / out_rel, policy)
            elif kind in IMAGE_SUFFIX:
                result = _process_image(src, out_dir / out_rel, kind, policy)
            else:
                result = FileResult("", "", kind, "skipped: not DICOM, PNG or JPEG")
        except MedlensError as exc:
            result = FileResult("", "", kind, f"skipped: {type(exc).__name__}: {exc}")
        result.key = key
        result.output = str(out_rel) if result.status.startswith("ok") else ""
        result.seconds = round(time.perf_counter() - start, 3)
        results.append(result)
        rows.append(asdict(result))
        _append_audit(audit_path, rows)
    return results
