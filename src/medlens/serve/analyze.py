"""``/v1/analyze`` and the viewer's slice stacks: uploaded study → ``pipeline.ask`` → JSON.

Nothing here re-implements a stage: loading is ``medlens.study``, protection is
``pipeline.protect`` (the same de-identification ``ask`` runs), the answer is ``pipeline.ask``,
its DICOM SR and FHIR are ``medlens.interop.export`` (what ``medlens ask --export`` writes).
These functions are synchronous; the routes run them in the model gate's worker thread.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from medlens.serve.protocol import (
    AnalyzeResponse,
    BoxOut,
    ConfidenceOut,
    DicomFile,
    ExportOut,
    FhirDocument,
    SliceStack,
    ViewOut,
)
from medlens.serve.uploads import UNZIP_FACTOR, Upload, load_uploads, private_dir
from medlens.types import AnswerKind

if TYPE_CHECKING:
    from PIL import Image

    from medlens.backends.base import Backend
    from medlens.pipeline import Result
    from medlens.serve.config import ServeConfig

CT_WINDOWS = ("soft-tissue", "lung", "bone", "brain", "liver", "mediastinum")
"""The window buttons the page offers for CT (presets of ``medlens.study.display``)."""


def png_data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def ask_uploaded(
    config: ServeConfig,
    backend: Backend,
    current: Upload,
    question: str,
    *,
    prior: Upload | None = None,
    kind: AnswerKind | None = None,
    choices: Sequence[str] = (),
    recipe: str | None = None,
    modality: str | None = None,
    request_id: str | None = None,
    outputs: Collection[str] = (),
) -> Result:
    """Load the uploads in a private directory, ask, and remove the directory. ``outputs``
    (``interop.export.OUTPUTS``) are checked before the model runs: an SR needs a DICOM
    study."""
    from medlens import pipeline

    with private_dir() as workdir:
        study = load_uploads(
            current,
            prior,
            workdir,
            max_pixels=config.max_pixels,
            max_bytes=UNZIP_FACTOR * config.max_upload_bytes,
            modality=modality,
        )
        if outputs:
            from medlens.interop.export import check_outputs

            check_outputs(study, outputs)
        return pipeline.ask(
            study,
            question,
            backend=backend,
            calibration=config.calibration,
            abstain_threshold=config.abstain_threshold,
            kind=kind or ("choice" if choices else None),
            candidates=tuple(choices),
            recipe=recipe,
            deidentify=True,
            candidate_scoring=config.candidate_scoring,  # also for the guessed kind
            request_id=request_id,
        )


def export_result(result: Result, outputs: Collection[str], fhir_version: str) -> ExportOut:
    """The answer as DICOM SR and/or FHIR, built by ``interop.export.export_answer`` (nothing
    is written to disk or kept: the SR travels as base64, the FHIR Bundle as JSON)."""
    from medlens.interop.export import SR_FILENAME, dicom_bytes, export_answer, fhir_filename

    exported = export_answer(result, outputs=outputs, fhir_version=fhir_version)
    summary = exported.summary()
    sr = exported.sr
    return ExportOut(
        identifiers=summary["identifiers"],
        deidentified=summary["deidentified"],
        role=summary["role"],
        sr=None
        if sr is None
        else DicomFile(
            filename=SR_FILENAME,
            data=base64.b64encode(dicom_bytes(sr)).decode("ascii"),
            series_instance_uid=str(sr.SeriesInstanceUID),
            sop_instance_uid=str(sr.SOPInstanceUID),
        ),
        fhir=None
        if exported.fhir is None
        else FhirDocument(
            filename=fhir_filename(fhir_version),
            version=fhir_version,  # type: ignore[arg-type]
            resource=exported.fhir,
        ),
        notes=exported.notes,
    )


def to_response(result: Result, model: str, export: ExportOut | None = None) -> AnalyzeResponse:
    """The API's view of a ``Result``: ``Result.to_json`` plus the images the model saw (and
    its SR/FHIR when asked for)."""
    record = result.to_json()
    answer = result.answer
    confidence = record["confidence"]
    return AnalyzeResponse(
        id=record["request_id"],
        model=model,
        model_label=record["model_label"],
        model_note=record["model_note"],
        question=record["question"],
        kind=record["kind"],
        answer=None if answer.abstained or not answer.parsed else answer.text,
        choice=answer.choice,
        rationale=answer.rationale,
        sections=record["sections"],
        boxes=[BoxOut(**b) for b in record["boxes"]],
        confidence=None if confidence is None else ConfidenceOut(**confidence),
        abstained=answer.abstained,
        abstain_reason=answer.abstain_reason,
        parsed=answer.parsed,
        parse_error=answer.parse_error,
        raw=answer.raw,
        deidentification=record["deidentification"],
        study=record["studies"][0] if record["studies"] else {},
        views=[
            ViewOut(
                label=v.label,
                width=v.image.width,
                height=v.image.height,
                image=png_data_url(v.image),
            )
            for v in result.prepared.views
        ],
        timings={k: float(v) for k, v in record["timings"].items()},
        export=export,
    )


def render_stack(
    config: ServeConfig, upload: Upload, window: str | None, modality: str | None = None
) -> SliceStack:
    """The de-identified study as PNG slices for the viewer, windowed for people.

    Burned-in text is redacted here too (``pipeline.protect``), so the page never shows more
    than the model may see. Volumes with more than ``config.max_slices`` slices are sampled.
    """
    from PIL import Image

    from medlens import pipeline
    from medlens.interop.export import available_outputs
    from medlens.study.display import to_display
    from medlens.study.views import evenly_spaced

    with private_dir() as workdir:
        study = load_uploads(
            upload,
            None,
            workdir,
            max_pixels=config.max_pixels,
            max_bytes=UNZIP_FACTOR * config.max_upload_bytes,
            modality=modality,
        )
    study = pipeline.protect(study)
    indices = evenly_spaced(study.num_slices, config.max_slices)
    chosen = window if study.modality == "CT" else None
    images = [Image.fromarray(to_display(study, window=chosen, slice_index=i)) for i in indices]
    return SliceStack(
        modality=study.modality,
        window=chosen,
        windows=list(CT_WINDOWS) if study.modality == "CT" else [],
        num_slices=study.num_slices,
        slice_indices=indices,
        width=images[0].width,
        height=images[0].height,
        slices=[png_data_url(im) for im in images],
        deidentification=[{"action": r.action, **dict(r.details)} for r in study.audit],
        exports=list(available_outputs(study)),
    )
