"""``load_study``: one entry point for every format medlens reads.

The reader is chosen by the caller (``format=``), else by content (magic bytes: DICOM's
``DICM`` at offset 128, PNG/JPEG/TIFF signatures, gzip, the NIfTI ``sizeof_hdr``), else by
extension; never by trusting an extension over the bytes.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from medlens import config
from medlens.errors import ConfigError, StudyError, UnsupportedFormatError
from medlens.study.readers import ORDER, READERS, Reader, Source
from medlens.types import Study

DEFAULT_MAX_PIXELS = 300_000_000
"""Default cap on the pixels of one study (all slices and frames together): about a
17,000² whole image or a 512² × 1,100-slice CT, well above clinical studies and far below
what a decompression bomb claims. Override per call or with ``MEDLENS_MAX_PIXELS``."""


def resolve_max_pixels(max_pixels: int | None) -> int:
    """The explicit cap, else ``MEDLENS_MAX_PIXELS``, else ``DEFAULT_MAX_PIXELS``."""
    if max_pixels is not None:
        return int(max_pixels)
    env = (config.env("MEDLENS_MAX_PIXELS") or "").replace("_", "")
    if not env:
        return DEFAULT_MAX_PIXELS
    if not env.isdigit():
        raise ConfigError(
            f"MEDLENS_MAX_PIXELS={env!r} is not a whole number of pixels; set it to e.g. "
            f"{DEFAULT_MAX_PIXELS} or unset it."
        )
    return int(env)


def _reader_for(source: Source, format: str | None) -> Reader:
    if format is not None:
        wanted = format.lower().lstrip(".")
        for name in ORDER:
            reader = READERS.get(name)
            if wanted == name or wanted in reader.formats:
                return reader
        known = sorted({f for n in ORDER for f in (n, *READERS.get(n).formats)})
        raise UnsupportedFormatError(
            f"Unknown format {format!r}. Known formats: {', '.join(known)}."
        )
    for name in ORDER:
        reader = READERS.get(name)
        if reader.can_read(source):
            return reader
    what = "these bytes" if isinstance(source, bytes) else f"'{Path(source).name}'"
    raise UnsupportedFormatError(
        f"Cannot tell the format of {what}: it is not DICOM (no 'DICM' marker), NIfTI, PNG, "
        "JPEG or TIFF. Convert it to one of those, or pass --format dicom (format='dicom' in "
        "Python) for a DICOM file written without its 128-byte preamble."
    )


def load_study(
    source: str | os.PathLike[str] | bytes,
    *,
    max_pixels: int | None = None,
    format: str | None = None,
    modality: str | None = None,
    **options: Any,
) -> Study:
    """Read an image, a DICOM file, a DICOM series folder, a NIfTI volume or a series on a
    PACS into a ``Study``.

    ``source`` is a path (file or folder), the bytes of one file, or a
    ``dicomweb[s]://HOST:PORT/dicom-web/studies/<uid>[/series/<uid>]`` address
    (``medlens.study.readers.dicomweb``; options ``auth_file``, ``timeout``, ``retries``,
    ``progress``). ``max_pixels`` caps the
    pixels of the whole study, checked from the header before decoding (``None``: the
    ``MEDLENS_MAX_PIXELS`` variable, else ``DEFAULT_MAX_PIXELS``). ``format`` forces a reader
    ("dicom", "nifti", "image", "png", "jpeg", "tiff"). ``modality`` sets the DICOM modality
    code where the file cannot carry it (a CT NIfTI: "CT"; an X-ray PNG: "DX"). Reader options: ``series_uid`` (pick
    one series of a folder holding several) and ``volume`` (which time point of a 4D DICOM
    series or NIfTI, default 0).

    >>> from medlens.testing.studies import write_ct_series
    >>> study = load_study(write_ct_series(tmp / "ct"))  # doctest: +SKIP
    >>> study.pixels.shape, study.modality  # doctest: +SKIP
    ((24, 128, 128), 'CT')
    """
    cap = resolve_max_pixels(max_pixels)
    if isinstance(source, str) and source.split("://", 1)[0].lower() in ("dicomweb", "dicomwebs"):
        from medlens.study.readers.dicomweb import read_dicomweb

        study = read_dicomweb(source, max_pixels=cap, **options)
        return dataclasses.replace(study, modality=modality.upper()) if modality else study
    if isinstance(source, (bytes, bytearray, memoryview)):
        data: Source = bytes(source)
        if not data:
            raise StudyError("The study is empty (0 bytes). Upload or pass the whole file.")
    else:
        path = Path(os.fspath(source)).expanduser()
        if not path.exists():
            raise StudyError(
                f"No file or folder at '{path}'. Check the path (relative paths start from "
                f"'{Path.cwd()}')."
            )
        data = path
    study = _reader_for(data, format).read(data, max_pixels=cap, **options)
    if modality is not None:
        study = dataclasses.replace(study, modality=modality.upper())
    return study


def study_notes(study: Study) -> list[str]:
    """What loading left out or could not keep, in words for the user: the other volumes of a
    4D series or NIfTI (only one is shown to a model), files of a folder that were skipped,
    uneven slice spacing."""
    meta = study.metadata
    notes = []
    volumes = int(meta.get("num_volumes") or 1)
    if volumes > 1:
        what = {"nifti": "NIfTI file", "dicom-series": "DICOM series"}.get(
            study.source_format, study.source_format
        )
        notes.append(
            f"the {what} holds {volumes} volumes (time points); only volume "
            f"{int(meta.get('volume') or 0)} is used. Pick another with --volume N "
            f"(0..{volumes - 1})."
        )
    skipped = meta.get("skipped") or {}
    if skipped:
        what = ", ".join(f"{count} {kind}" for kind, count in skipped.items())
        notes.append(f"{sum(skipped.values())} file(s) of the folder were skipped ({what}).")
    if meta.get("irregular_spacing"):
        notes.append("the slice spacing is uneven; distances along the slices are approximate.")
    return notes


def load_pair(
    prior: str | os.PathLike[str] | bytes | Study,
    current: str | os.PathLike[str] | bytes | Study,
    **options: Any,
) -> Study:
    """Load a prior and a current study of the same patient for comparison: returns the
    current ``Study`` with ``prior`` set. Either may already be a ``Study``; ``options``
    go to both ``load_study`` calls."""
    prior_study = prior if isinstance(prior, Study) else load_study(prior, **options)
    current_study = current if isinstance(current, Study) else load_study(current, **options)
    return dataclasses.replace(current_study, prior=prior_study)
