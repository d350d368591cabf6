"""One answer out to files and/or a PACS: SR (+ SEG for masks) and FHIR, then STOW-RS.

What ``medlens ask --export DIR --store-to dicomweb://...`` does. The files have fixed names
(never a patient's or a UID): ``sr.dcm``, ``seg.dcm``, ``fhir-r5.json`` (or ``-r4b``),
``answer.json`` (the pipeline record) and ``export.json``, which lists them with the
identifier choice and what the PACS confirmed holding.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlens.errors import ConfigError
from medlens.interop.provenance import Provenance

if TYPE_CHECKING:
    import numpy as np
    from pydicom import Dataset

    from medlens.interop.stow import StoreReceipt
    from medlens.pipeline import Result
    from medlens.types import Study

OUTPUTS = ("sr", "fhir")
"""What an answer can be exported as: ``sr`` (the DICOM SR, with a SEG when the model gave
masks) and ``fhir`` (the DiagnosticReport Bundle); ``/v1/analyze``'s ``export`` field names
them."""
SR_FILENAME = "sr.dcm"


def fhir_filename(version: str) -> str:
    """``fhir-r5.json`` / ``fhir-r4b.json``: fixed names, never a patient's or a UID."""
    return f"fhir-{version.lower()}.json"


@dataclass
class Exported:
    """What ``export_answer`` produced."""

    provenance: Provenance
    sr: Dataset | None = None
    seg: Dataset | None = None
    fhir: dict[str, Any] | None = None
    files: dict[str, Path] = field(default_factory=dict)
    stored: StoreReceipt | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "identifiers": self.provenance.identifiers,
            "deidentified": self.provenance.deidentified,
            "model": self.provenance.model,
            "role": self.provenance.role,
            "files": {name: path.name for name, path in self.files.items()},
            "sr_series": str(self.sr.SeriesInstanceUID) if self.sr is not None else None,
            "seg_series": str(self.seg.SeriesInstanceUID) if self.seg is not None else None,
            "stored": asdict(self.stored) if self.stored is not None else None,
            "notes": self.notes,
        }


def check_exportable(study_headers: tuple[Any, ...], store_to: str | None) -> None:
    """Refuse ``--store-to`` before the model runs when the study is not DICOM."""
    if store_to and not study_headers:
        raise ConfigError(
            "--store-to sends the answer as DICOM SR referencing the study's images, but the "
            "study is not DICOM. Ask about a DICOM file, series or dicomweb:// study."
        )


def parse_outputs(value: str) -> tuple[str, ...]:
    """``"sr,fhir"`` → ``("sr", "fhir")``, in ``OUTPUTS`` order; an unknown name is a
    ``ConfigError`` that lists the known ones."""
    names = {n.strip().lower() for n in value.split(",") if n.strip()}
    unknown = sorted(names - set(OUTPUTS))
    if unknown:
        raise ConfigError(
            f"Unknown export {', '.join(repr(n) for n in unknown)}: an answer is exported as "
            f"{' and/or '.join(OUTPUTS)} (comma-separated, e.g. 'sr,fhir')."
        )
    return tuple(n for n in OUTPUTS if n in names)


def check_outputs(study: Study, outputs: Collection[str]) -> None:
    """Refuse an SR of a study that has no DICOM images to reference, before the model runs
    (the same ``ConfigError`` ``build_sr`` would raise after it)."""
    if "sr" in outputs:
        from medlens.interop.provenance import source_headers

        source_headers(study, "A DICOM SR")


def available_outputs(study: Study) -> tuple[str, ...]:
    """The outputs this installation can build for ``study`` (what the page offers): an SR
    needs a DICOM study and highdicom, FHIR needs fhir.resources (``medlens[pacs]``)."""
    import importlib.util

    def installed(module: str) -> bool:
        return importlib.util.find_spec(module.split(".")[0]) is not None and (
            importlib.util.find_spec(module) is not None
        )

    can = {
        "sr": bool(study.headers) and installed("highdicom"),
        "fhir": installed("fhir.resources"),
    }
    return tuple(name for name in OUTPUTS if can[name])


def dicom_bytes(dataset: Dataset) -> bytes:
    """A DICOM object as the bytes of its Part 10 file (what ``sr.dcm`` holds)."""
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def export_answer(
    result: Result,
    *,
    outputs: Collection[str] = OUTPUTS,
    out_dir: str | os.PathLike[str] | None = None,
    store_to: str | None = None,
    fhir_version: str = "R5",
    masks: Mapping[str, np.ndarray] | None = None,
    revision: str | None = None,
    role: str | None = None,
    auth_file: str | os.PathLike[str] | None = None,
) -> Exported:
    """Build the SR (and SEG when ``masks`` are given) and the FHIR Bundle of ``result``
    (those of them ``outputs`` names); write them into ``out_dir`` and/or STOW them to
    ``store_to``."""
    from medlens.interop.fhir import build_fhir

    provenance = Provenance.of(result, revision=revision, role=role)
    study = result.prepared.studies[0]
    check_exportable(study.headers, store_to)
    exported = Exported(provenance)
    if "sr" in outputs and study.headers:
        from medlens.interop.sr import build_sr

        exported.sr = build_sr(result, provenance=provenance, study=study)
        if masks:
            from medlens.interop.seg import build_seg

            exported.seg = build_seg(study, masks, provenance=provenance)
    elif "sr" in outputs:
        exported.notes.append(
            f"no DICOM SR: the study was read from {study.source_format}, which has no DICOM "
            "images to reference"
        )
    if masks and exported.seg is None and "sr" in outputs:
        exported.notes.append("no DICOM SEG: the masks need a DICOM study to refer to")
    if "fhir" in outputs:
        exported.fhir = build_fhir(result, version=fhir_version, provenance=provenance, study=study)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if exported.sr is not None:
            exported.files["sr"] = out / SR_FILENAME
            exported.sr.save_as(exported.files["sr"], enforce_file_format=True)
        if exported.seg is not None:
            exported.files["seg"] = out / "seg.dcm"
            exported.seg.save_as(exported.files["seg"], enforce_file_format=True)
        if exported.fhir is not None:
            exported.files["fhir"] = out / fhir_filename(fhir_version)
            exported.files["fhir"].write_text(json.dumps(exported.fhir, indent=2))
        exported.files["answer"] = out / "answer.json"
        exported.files["answer"].write_text(json.dumps(result.to_json(), indent=2, default=str))
    if store_to:
        from medlens.interop.stow import store

        objects = [ds for ds in (exported.sr, exported.seg) if ds is not None]
        exported.stored = store(objects, store_to, auth_file=auth_file)
    if out_dir is not None:
        exported.files["export"] = Path(out_dir) / "export.json"
        exported.files["export"].write_text(json.dumps(exported.summary(), indent=2))
    return exported
