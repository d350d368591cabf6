"""One answer out to files and/or a PACS: SR (+ SEG for masks) and FHIR, then STOW-RS.

What ``medlens ask --export DIR --store-to dicomweb://...`` does. The files have fixed names
(never a patient's or a UID): ``sr.dcm``, ``seg.dcm``, ``fhir-r5.json`` (or ``-r4b``),
``answer.json`` (the pipeline record) and ``export.json``, which lists them with the
identifier choice and what the PACS confirmed holding.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
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


def export_answer(
    result: Result,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    store_to: str | None = None,
    fhir_version: str = "R5",
    masks: Mapping[str, np.ndarray] | None = None,
    revision: str | None = None,
    role: str | None = None,
    auth_file: str | os.PathLike[str] | None = None,
) -> Exported:
    """Build the SR (and SEG when ``masks`` are given) and the FHIR Bundle of ``result``;
    write them into ``out_dir`` and/or STOW them to ``store_to``."""
    from medlens.interop.fhir import build_fhir

    provenance = Provenance.of(result, revision=revision, role=role)
    study = result.prepared.studies[0]
    check_exportable(study.headers, store_to)
    exported = Exported(provenance)
    if study.headers:
        from medlens.interop.sr import build_sr

        exported.sr = build_sr(result, provenance=provenance, study=study)
        if masks:
            from medlens.interop.seg import build_seg

            exported.seg = build_seg(study, masks, provenance=provenance)
    else:
        exported.notes.append(
            f"no DICOM SR: the study was read from {study.source_format}, which has no DICOM "
            "images to reference"
        )
    if masks and exported.seg is None:
        exported.notes.append("no DICOM SEG: the masks need a DICOM study to refer to")
    exported.fhir = build_fhir(result, version=fhir_version, provenance=provenance, study=study)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if exported.sr is not None:
            exported.files["sr"] = out / "sr.dcm"
            exported.sr.save_as(exported.files["sr"], enforce_file_format=True)
        if exported.seg is not None:
            exported.files["seg"] = out / "seg.dcm"
            exported.seg.save_as(exported.files["seg"], enforce_file_format=True)
        exported.files["fhir"] = out / f"fhir-{fhir_version.lower()}.json"
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
