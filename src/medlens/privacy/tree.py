"""De-identify a folder tree of DICOM (with or without extension), PNG and JPEG files.

Output names are keyed hashes of the input's relative path (folders too), so neither a
patient name in a file name nor the folder layout's labels leak, while the same input always
maps to the same output. The audit (CSV, or JSON when its name ends in .json) holds one row
per input: its keyed id, output name, kind, status, counts, the share of the image redacted
and whether it needs review; never a value or an original name. A second run with ``resume``
skips the inputs the audit already lists.

Beside the outputs, on request: the text lines of each file as JSON (``boxes``: box,
decision, reason, keyed text hash, as Presidio's ``save_bboxes``), and before/after overlays
for a person to check (``review_dir``, as Presidio's verify engine draws them: they show the
original pixels, so that folder holds PHI). ``inspect_tree`` reads without writing anything.
Files are processed by ``workers`` processes, each with one OCR thread.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlens.errors import ConfigError, MedlensError
from medlens.privacy.pixels import MAX_OCR_PIXELS
from medlens.privacy.policy import DeidPolicy

if TYPE_CHECKING:
    from PIL import Image

    from medlens.privacy.pixels import TextRegion
    from medlens.types import RedactionSummary

AUDIT_FIELDS = (
    "key",
    "output",
    "kind",
    "status",
    "attributes_changed",
    "regions",
    "lines_kept",
    "redacted_share",
    "needs_review",
    "seconds",
)
IMAGE_SUFFIX = {"png": ".png", "jpeg": ".jpg"}


@dataclass
class FileResult:
    key: str
    output: str
    kind: str
    status: str
    attributes_changed: int = 0
    regions: int = 0
    lines_kept: int = 0
    redacted_share: float = 0.0
    needs_review: str = ""
    """The review reasons joined by "+" ("area+body"), empty when none."""
    seconds: float = 0.0
    source: str = field(default="", compare=False)
    """The input's path relative to the input folder: for the person running the tool (the
    CLI lists failed inputs by it), never written to the audit, which may leave the machine."""


@dataclass(frozen=True)
class Extras:
    """What to write beside the de-identified copies."""

    boxes: bool = False
    review_dir: Path | None = None


def _pixel_fields(result: FileResult, summary: RedactionSummary) -> None:
    result.regions = summary.regions
    result.lines_kept = summary.lines_kept
    result.redacted_share = round(summary.redacted_share, 6)
    result.needs_review = "+".join(summary.review_reasons)


def _write_extras(
    extras: Extras,
    dst: Path,
    before: np.ndarray,
    after: np.ndarray,
    lines: list[TextRegion],
) -> None:
    """Boxes JSON beside the output, and a before | after overlay in the review folder, of
    the first frame of (frames, rows, cols[, 3]) pixels."""
    if extras.boxes:
        rows = [line.audit() for line in lines]
        dst.with_name(dst.name + ".boxes.json").write_text(json.dumps(rows, indent=1))
    if extras.review_dir is not None:
        extras.review_dir.mkdir(parents=True, exist_ok=True)
        overlay = review_overlay(before[0], after[0], lines)
        overlay.save(extras.review_dir / f"{dst.stem}.review.png")


def review_overlay(before: np.ndarray, after: np.ndarray, lines: list[TextRegion]) -> Image.Image:
    """Before and after side by side, each line outlined: red where it was redacted, green
    where it was kept as a clinical label."""
    from PIL import Image, ImageDraw

    from medlens.privacy.pixels import to_grey8

    def page(array: np.ndarray) -> Image.Image:
        rgb = array if array.ndim == 3 and array.dtype == np.uint8 else to_grey8(array)
        return Image.fromarray(np.ascontiguousarray(rgb)).convert("RGB")

    left, right = page(before), page(after)
    canvas = Image.new("RGB", (left.width * 2 + 8, left.height), (40, 40, 40))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + 8, 0))
    draw = ImageDraw.Draw(canvas)
    for line in lines:
        colour = (255, 40, 40) if line.redact else (40, 220, 40)
        for shift in (0, left.width + 8):
            draw.rectangle(
                (line.x0 + shift, line.y0, line.x1 - 1 + shift, line.y1 - 1),
                outline=colour,
                width=2,
            )
    return canvas


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


def _process_dicom(
    src: Path, dst: Path, policy: DeidPolicy, extras: Extras, write: bool = True
) -> tuple[FileResult, list[TextRegion]]:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.uid import ExplicitVRLittleEndian

    from medlens.errors import CorruptFileError, ImageTooLargeError
    from medlens.privacy.header import deidentify_dataset
    from medlens.privacy.labels import Identifiers
    from medlens.privacy.studies import (
        _mark_pixels_clean,
        recipe_regions,
        redact_slices,
        region_cache,
    )

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
    result = FileResult("", "", "dicom", "ok", changed)
    lines: list[TextRegion] = []
    if "PixelData" not in ds:
        result.status = "ok: no pixel data"
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
        if color and str(ds.get("PhotometricInterpretation", "")).startswith("YBR"):
            from pydicom.pixels.processing import convert_color_space

            array = convert_color_space(array, ds.PhotometricInterpretation, "RGB")
        stack = array if (array.ndim == 4 or (array.ndim == 3 and not color)) else array[None]
        cleaned, summary, lines = redact_slices(
            stack,
            region_cache(policy),
            identifiers=Identifiers.from_dataset(ds),
            redact_all=policy.redact_all_text,
            key=policy.project_key,
            fixed=recipe_regions(policy, ds, stack),
            budget_s=policy.time_budget_s,
        )
        _pixel_fields(result, summary)
        if write and summary.regions:
            # Only changed pixels are re-encoded (uncompressed, lossless); otherwise the
            # original PixelData and its transfer syntax stay as they were.
            encoded = cleaned.reshape(array.shape).astype(array.dtype)
            out.PixelData = np.ascontiguousarray(encoded).tobytes()
            out.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            if color:
                out.PhotometricInterpretation = "RGB"
                out.PlanarConfiguration = 0
        _mark_pixels_clean((out,))
        if write:
            dst.parent.mkdir(parents=True, exist_ok=True)
            _write_extras(extras, dst, stack, cleaned, lines)
    if write:
        dst.parent.mkdir(parents=True, exist_ok=True)
        out.save_as(dst)
    return result, lines


def _process_image(
    src: Path, dst: Path, kind: str, policy: DeidPolicy, extras: Extras, write: bool = True
) -> tuple[FileResult, list[TextRegion]]:
    from PIL import Image, JpegImagePlugin, PngImagePlugin, UnidentifiedImageError

    from medlens.errors import CorruptFileError, ImageTooLargeError
    from medlens.privacy.studies import redact_slices, region_cache

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
            # The pixels alone: EXIF, text chunks and ICC names stay behind.
            array = np.asarray(
                image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode)
            )
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError("pixel count above Pillow's decompression-bomb limit") from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise CorruptFileError(f"not a readable image ({type(exc).__name__})") from exc
    result = FileResult("", "", kind, "ok")
    lines: list[TextRegion] = []
    clean = array
    if policy.ocr != "never":
        cleaned, summary, lines = redact_slices(
            array[None],
            region_cache(policy),
            redact_all=policy.redact_all_text,
            key=policy.project_key,
            budget_s=policy.time_budget_s,
        )
        clean = cleaned[0]
        _pixel_fields(result, summary)
        if write:
            dst.parent.mkdir(parents=True, exist_ok=True)
            _write_extras(extras, dst, array[None], cleaned, lines)
    if write:
        dst.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(clean).save(dst, format="PNG" if kind == "png" else "JPEG", quality=95)
    return result, lines


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


def _one(
    src: Path, relative: Path, out_dir: Path, policy: DeidPolicy, extras: Extras, write: bool
) -> tuple[FileResult, list[TextRegion]]:
    """De-identify (or, without ``write``, only read) one file; never raises for bad input."""
    start = time.perf_counter()
    kind = sniff(src) or "unknown"
    out_rel = output_path(relative, kind, policy)
    lines: list[TextRegion] = []
    try:
        if kind == "dicom":
            result, lines = _process_dicom(src, out_dir / out_rel, policy, extras, write)
        elif kind in IMAGE_SUFFIX:
            result, lines = _process_image(src, out_dir / out_rel, kind, policy, extras, write)
        else:
            result = FileResult("", "", kind, "skipped: not DICOM, PNG or JPEG")
    except MedlensError as exc:
        result = FileResult("", "", kind, f"skipped: {type(exc).__name__}: {exc}")
    result.key = policy.keyed_hash("file", *relative.parts)[:20]
    result.output = str(out_rel) if write and result.status.startswith("ok") else ""
    result.seconds = round(time.perf_counter() - start, 3)
    return result, lines


def _run_all(
    jobs: list[tuple[Path, Path]],
    out_dir: Path,
    policy: DeidPolicy,
    extras: Extras,
    *,
    write: bool,
    workers: int,
    progress: bool,
) -> Iterator[tuple[Path, FileResult, list[TextRegion]]]:
    """Results as files finish, on ``workers`` processes (one file each at a time)."""
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="deid", unit="file", disable=not progress)
    try:
        if workers <= 1:
            for src, relative in jobs:
                result, lines = _one(src, relative, out_dir, policy, extras, write)
                bar.update()
                yield relative, result, lines
            return
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {
                pool.submit(_one, src, relative, out_dir, policy, extras, write): relative
                for src, relative in jobs
            }
            for future in as_completed(futures):
                result, lines = future.result()
                bar.update()
                yield futures[future], result, lines
    finally:
        bar.close()


def _check_dirs(in_dir: Path, out_dir: Path | None) -> None:
    if not in_dir.is_dir():
        raise ConfigError(f"Input folder {in_dir} does not exist or is not a folder.")
    if out_dir is not None and out_dir.resolve().is_relative_to(in_dir.resolve()):
        raise ConfigError("The output folder must not be inside the input folder.")


def deidentify_tree(
    in_dir: Path,
    out_dir: Path,
    policy: DeidPolicy | None = None,
    *,
    audit_path: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    workers: int = 1,
    boxes: bool = False,
    review_dir: Path | None = None,
) -> list[FileResult]:
    """De-identify every DICOM/PNG/JPEG file under ``in_dir`` into ``out_dir``.

    A file that cannot be read (corrupt, too large, not an image) is listed in the audit
    with status "skipped: <reason>", never dropped silently. Returns this run's results.
    """
    policy = policy or DeidPolicy()
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    _check_dirs(in_dir, out_dir)
    if review_dir is not None:
        _check_dirs(in_dir, Path(review_dir))
    audit_path = Path(audit_path) if audit_path else out_dir / "deid-audit.csv"
    if audit_path.exists() and not resume:
        audit_path.unlink()  # a fresh run starts a fresh audit
    rows = read_audit(audit_path) if resume else []
    done = {row["key"] for row in rows}
    jobs = [
        (src, src.relative_to(in_dir))
        for src in iter_files(in_dir)
        if policy.keyed_hash("file", *src.relative_to(in_dir).parts)[:20] not in done
    ]
    extras = Extras(boxes, Path(review_dir) if review_dir else None)
    results: list[FileResult] = []
    for relative, result, _lines in _run_all(
        jobs, out_dir, policy, extras, write=True, workers=workers, progress=progress
    ):
        results.append(result)
        rows.append({name: value for name, value in asdict(result).items() if name in AUDIT_FIELDS})
        result.source = str(relative)
        _append_audit(audit_path, rows)
    return results


INSPECT_FIELDS = ("path", "kind", "status", "lines", "to_redact", "kept", "reasons", "seconds")


def inspect_tree(
    in_dir: Path, policy: DeidPolicy | None = None, *, workers: int = 1, progress: bool = True
) -> list[dict[str, Any]]:
    """Which files under ``in_dir`` carry burned-in text, and what would be redacted, one
    row per file (``INSPECT_FIELDS``: its path relative to ``in_dir``, the lines found, how
    many would go, the reasons), without writing anything. The paths are the user's own
    input names: the rows are for them, not for an audit."""
    policy = policy or DeidPolicy()
    in_dir = Path(in_dir)
    _check_dirs(in_dir, None)
    jobs = [(src, src.relative_to(in_dir)) for src in iter_files(in_dir)]
    rows = []
    for relative, result, lines in _run_all(
        jobs, in_dir, policy, Extras(), write=False, workers=workers, progress=progress
    ):
        reasons = sorted({line.reason for line in lines if line.redact})
        rows.append(
            {
                "path": str(relative),
                "kind": result.kind,
                "status": result.status,
                "lines": len(lines),
                "to_redact": sum(line.redact for line in lines),
                "kept": sum(not line.redact for line in lines),
                "reasons": ",".join(reasons),
                "seconds": result.seconds,
            }
        )
    return sorted(rows, key=lambda row: row["path"])
