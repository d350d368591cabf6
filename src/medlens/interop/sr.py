"""An answer as a DICOM Comprehensive 3D SR: a TID 1500 Measurement Report built with
highdicom (PS3.16 TID 1500, 1501, 1410, 4019, 1004).

What the report holds, for one pipeline ``Result``:

- the model as the **device observer** (TID 1004) and, in every measurement group, its
  **algorithm identification** (TID 4019: model id, revision, and as parameters the backend,
  the model's role — baseline, demonstration model, user's model —, the recipe and the prompt
  template version);
- one **measurement group** (TID 1501) for the answer: the coded finding where the answer maps
  to a code (yes/no → SCT Present/Absent of the finding the question names; the organ named
  → finding site, with laterality), and the confidence as a TID 300 measurement: DCM
  "Probability" when calibrated, a labelled uncalibrated score otherwise;
- one **planar ROI group** (TID 1410) per box, as a closed POLYLINE in the source image's
  pixel coordinates (highdicom has no RECTANGLE for SR regions; PS3.3 C.18.6.1.2: the top
  left corner of the top left pixel is 0,0) on the source instance (and frame) of the slice
  the box was drawn on; a box on a reformatted plane (sagittal/coronal) is a closed SCOORD3D
  POLYGON in patient millimetres instead, and a box on a projection (MIP) cannot be placed in
  one plane and is listed as text;
- a clearly labelled **container of free text** (TID 1500 qualitative evaluations are coded
  only): the question, the model's answer, its rationale, the model's role and the
  identifier choice, under the private coding scheme ``99MEDLENS`` (declared in the
  Coding Scheme Identification Sequence);
- evidence references to every source instance (Current Requested Procedure Evidence).

The SR gets new Series and SOP Instance UIDs (the source is never overwritten) and is
flagged PRELIMINARY and UNVERIFIED. Its patient and study attributes are those of the study
the model saw: de-identified ones unless de-identification was turned off, the choice
written into the report (text item, PatientIdentityRemoved, De-identification Method).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from medlens.errors import require
from medlens.interop.codes import CodedFinding, code_label, coded_findings
from medlens.interop.provenance import Provenance, source_headers

if TYPE_CHECKING:
    from pydicom import Dataset
    from pydicom.sr.coding import Code

    from medlens.pipeline import Result
    from medlens.types import Box, Study, View

PRIVATE_SCHEME = "99MEDLENS"
SERIES_NUMBER = 9901
SERIES_DESCRIPTION = "medlens model answer (PRELIMINARY, not verified)"


def private(value: str, meaning: str) -> Code:
    """A concept of the ``99MEDLENS`` private coding scheme (PS3.16 8.2: designators that
    begin with "99" are private)."""
    from pydicom.sr.coding import Code

    return Code(value, PRIVATE_SCHEME, meaning)


ANSWER_CONTAINER = ("model-answer", "Vision-language model answer (unverified)")
QUESTION = ("question", "Question asked of the model")
ANSWER_TEXT = ("answer-text", "Model answer (free text)")
RAW_TEXT = ("raw-output", "Model output as generated")
RATIONALE = ("rationale", "Model rationale")
ROLE = ("model-role", "Kind of model")
IDENTIFIERS = ("identifiers", "Identifiers used in this report")
UNPLACED = ("unplaced-box", "Box not placed in one source plane")
SCORE = ("uncalibrated-score", "Model confidence (uncalibrated, not a probability)")


@dataclass(frozen=True)
class BoxPlacement:
    """Where a view box lies in the source: a closed polyline on one instance (and frame), or
    a closed polygon in patient millimetres (a reformatted plane), or nowhere (``note``)."""

    box: Box
    index: int
    header: Dataset | None = None
    frame: int | None = None
    """1-based frame number in a multi-frame source instance."""
    polyline: np.ndarray | None = None
    """(5, 2) closed (column, row) pixel coordinates on ``header``."""
    polygon_mm: np.ndarray | None = None
    """(5, 3) closed patient (LPS) coordinates, for a box on a reformatted plane."""
    slice_index: int | None = None
    note: str = ""


def _frame_order(header: Dataset, frames: int) -> np.ndarray:
    """Where each slice of a multi-frame study came from (enhanced objects may store frames
    out of spatial order; the reader sorted them)."""
    from medlens.study.readers.dicom import _multiframe_geometry

    _, _, order = _multiframe_geometry(header, frames)
    return order if order is not None else np.arange(frames)


def place_box(study: Study, views: tuple[View, ...], box: Box, index: int) -> BoxPlacement:
    """Locate ``box`` (drawn on ``views[box.view_index]``) in the source images."""
    from medlens.study.views import map_box_to_study

    if not 0 <= box.view_index < len(views):
        return BoxPlacement(box, index, note=f"box on view {box.view_index}, which was not sent")
    located = map_box_to_study(study, views[box.view_index], box)
    if located.cols is None or located.rows is None or located.slices is None:
        return BoxPlacement(
            box, index, note=f"box on a projection ({located.region}): no single source plane"
        )
    headers = study.headers
    (c0, c1), (r0, r1), (s0, s1) = located.cols, located.rows, located.slices
    if s1 - s0 < 1.0:
        k = int(np.clip(round((s0 + s1) / 2), 0, study.num_slices - 1))
        frame: int | None = None
        if len(headers) == study.num_slices:
            header = headers[k]
        else:
            header = headers[0]
            frames = int(header.get("NumberOfFrames") or 1)
            if frames > 1:
                frame = int(_frame_order(header, frames)[k]) + 1
        x0, x1, y0, y1 = c0 + 0.5, c1 + 0.5, r0 + 0.5, r1 + 0.5
        polyline = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=float)
        return BoxPlacement(box, index, header, frame, polyline=polyline, slice_index=k)
    if study.affine is None or "FrameOfReferenceUID" not in headers[0]:
        return BoxPlacement(box, index, note="box across slices of a study without geometry")
    spans = [(c0, c1), (r0, r1), (s0, s1)]
    flat = int(np.argmin([hi - lo for lo, hi in spans]))
    a, b = (axis for axis in range(3) if axis != flat)
    level = (spans[flat][0] + spans[flat][1]) / 2
    corners = []
    for u, v in ((0, 0), (1, 0), (1, 1), (0, 1), (0, 0)):
        voxel = [0.0, 0.0, 0.0, 1.0]
        voxel[flat], voxel[a], voxel[b] = level, spans[a][u], spans[b][v]
        corners.append((np.asarray(study.affine) @ voxel)[:3])
    return BoxPlacement(box, index, headers[0], polygon_mm=np.asarray(corners, dtype=float))


def _text(name: tuple[str, str], value: str) -> Any:
    from highdicom.sr import RelationshipTypeValues, TextContentItem

    return TextContentItem(
        name=private(*name), value=value, relationship_type=RelationshipTypeValues.CONTAINS
    )


def _answer_container(result: Result, provenance: Provenance, unplaced: list[str]) -> Any:
    from highdicom.sr import ContainerContentItem, ContentSequence, RelationshipTypeValues

    answer = result.answer
    container = ContainerContentItem(
        name=private(*ANSWER_CONTAINER), relationship_type=RelationshipTypeValues.CONTAINS
    )
    items = [_text(QUESTION, result.request.question)]
    shown = "abstained" if answer.abstained else (answer.text or answer.raw.strip() or "-")
    if answer.abstained and answer.abstain_reason:
        shown = f"abstained ({answer.abstain_reason})"
    items.append(_text(ANSWER_TEXT, shown))
    if answer.raw.strip() and answer.raw.strip() != shown:
        items.append(_text(RAW_TEXT, answer.raw.strip()))
    if answer.rationale:
        items.append(_text(RATIONALE, answer.rationale))
    for section, text in answer.sections.items():
        items.append(_text((f"section-{section}"[:16], f"Model report section: {section}"), text))
    items.append(_text(ROLE, f"{provenance.role}: {provenance.model} ({provenance.backend})"))
    items.append(_text(IDENTIFIERS, provenance.identifiers))
    items.extend(_text(UNPLACED, note) for note in unplaced)
    container.ContentSequence = ContentSequence(items)
    return container


def _algorithm(provenance: Provenance) -> Any:
    from highdicom.sr import AlgorithmIdentification
    from pydicom.sr.codedict import codes

    return AlgorithmIdentification(
        name=provenance.model[:64],
        version=provenance.version[:64],
        parameters=provenance.parameters,
        family=codes.cid7162.ArtificialIntelligence,
        manufacturer=provenance.software,
    )


def _observer(provenance: Provenance) -> Any:
    from highdicom.sr import (
        DeviceObserverIdentifyingAttributes,
        ObservationContext,
        ObserverContext,
    )
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    device = DeviceObserverIdentifyingAttributes(
        uid=generate_uid(entropy_srcs=[provenance.model, provenance.version]),
        name=provenance.model[:64],
        manufacturer_name=provenance.software,
        model_name=provenance.model[:64],
        serial_number=provenance.version[:64],
    )
    return ObservationContext(
        observer_device_context=ObserverContext(
            observer_type=codes.cid270.Device, observer_identifying_attributes=device
        )
    )


def _sites(coded: CodedFinding) -> list[Any] | None:
    from highdicom.sr import FindingSite

    if coded.site is None:
        return None
    return [FindingSite(anatomic_location=coded.site, laterality=coded.laterality)]


def _confidence(result: Result) -> list[Any]:
    from highdicom.sr import Measurement
    from pydicom.sr.codedict import codes

    confidence = result.answer.confidence
    if confidence is None or result.answer.abstained:
        return []
    if confidence.calibrated:
        name = codes.DCM.Probability
        method = private(
            "calibrated", f"Calibrated ({confidence.method}, {confidence.profile})"[:64]
        )
    else:
        name = private(*SCORE)
        method = private(confidence.method[:16], f"Confidence method: {confidence.method}"[:64])
    return [
        Measurement(
            name=name, value=float(confidence.value), unit=codes.UCUM.NoUnits, method=method
        )
    ]


def _answer_group(result: Result, provenance: Provenance, coded: tuple[CodedFinding, ...]) -> Any:
    from highdicom.sr import (
        MeasurementsAndQualitativeEvaluations,
        QualitativeEvaluation,
        TrackingIdentifier,
    )
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    first = coded[0] if coded else CodedFinding()
    evaluations = [
        QualitativeEvaluation(name=codes.DCM.PresenceOfProperty, value=c.presence)
        for c in coded
        if c.presence is not None
    ]
    return MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=generate_uid(), identifier=f"medlens answer {result.request.id}"[:64]
        ),
        finding_type=first.finding,
        algorithm_id=_algorithm(provenance),
        finding_sites=_sites(first),
        measurements=_confidence(result) or None,
        qualitative_evaluations=evaluations or None,
    )


def _box_group(placement: BoxPlacement, provenance: Provenance) -> Any:
    from highdicom.sr import (
        ImageRegion,
        ImageRegion3D,
        PlanarROIMeasurementsAndQualitativeEvaluations,
        SourceImageForRegion,
        TrackingIdentifier,
    )
    from pydicom.uid import generate_uid

    assert placement.header is not None
    if placement.polyline is not None:
        frames = [placement.frame] if placement.frame is not None else None
        region: Any = ImageRegion(
            graphic_type="POLYLINE",
            graphic_data=placement.polyline,
            source_image=SourceImageForRegion(
                referenced_sop_class_uid=placement.header.SOPClassUID,
                referenced_sop_instance_uid=placement.header.SOPInstanceUID,
                referenced_frame_numbers=frames,
            ),
        )
    else:
        assert placement.polygon_mm is not None
        region = ImageRegion3D(
            graphic_type="POLYGON",
            graphic_data=placement.polygon_mm,
            frame_of_reference_uid=placement.header.FrameOfReferenceUID,
        )
    label = placement.box.label or "finding"
    coded = code_label(label, "box label")
    return PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=generate_uid(), identifier=f"box {placement.index + 1}: {label}"[:64]
        ),
        referenced_region=region,
        finding_type=coded.finding or coded.site,
        algorithm_id=_algorithm(provenance),
        finding_sites=_sites(coded) if coded.finding is not None else None,
    )


def _evidence(headers: tuple[Dataset, ...]) -> list[Dataset]:
    """Copies of the source headers with the patient/study attributes highdicom reads
    present (de-identification may have removed some: they become empty, PS3.15 action Z)."""
    out = []
    for header in headers:
        ds = copy.copy(header)
        for keyword in (
            "PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber",
            "StudyID", "StudyDate", "StudyTime",
        ):  # fmt: skip
            if keyword not in ds:
                setattr(ds, keyword, "")
        if "SpecificCharacterSet" in ds and not ds.SpecificCharacterSet:
            del ds.SpecificCharacterSet  # empty means the default repertoire (PS3.3 C.12.1.1.2)
        out.append(ds)
    return out


def record_identifiers(ds: Dataset, source: Dataset, provenance: Provenance) -> None:
    """Write the identifier choice into an output dataset: the PS3.15 de-identification
    attributes of a de-identified source, carried over (PS3.3 C.7.1.1)."""
    if not provenance.deidentified:
        return
    ds.PatientIdentityRemoved = "YES"
    for keyword in (
        "DeidentificationMethod",
        "DeidentificationMethodCodeSequence",
        "LongitudinalTemporalInformationModified",
    ):
        if keyword in source:
            setattr(ds, keyword, copy.deepcopy(source.get(keyword)))
    if "DeidentificationMethod" not in ds:
        ds.DeidentificationMethod = "medlens DICOM PS3.15 E.1 Basic Profile"


def declare_private_scheme(ds: Dataset) -> None:
    from pydicom import Dataset

    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = "medlens model output concepts"
    item.CodingSchemeResponsibleOrganization = "medlens project"
    ds.CodingSchemeIdentificationSequence = [item]


def build_sr(
    result: Result,
    *,
    provenance: Provenance | None = None,
    study: Study | None = None,
) -> Dataset:
    """The Comprehensive 3D SR (a pydicom ``Dataset``, highdicom's ``Comprehensive3DSR``) for
    one answer about one DICOM study. ``study`` defaults to the first study the model saw."""
    require("highdicom", "pacs", "Writing DICOM SR")
    from highdicom.sr import Comprehensive3DSR, MeasurementReport
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    provenance = provenance or Provenance.of(result)
    study = study or result.prepared.studies[0]
    headers = source_headers(study, "A DICOM SR")
    placements = [
        place_box(study, result.prepared.views, box, i) for i, box in enumerate(result.answer.boxes)
    ]
    placed = [p for p in placements if p.header is not None]
    unplaced = [
        f"box {p.index + 1} ({p.box.label or 'finding'}): {p.note}"
        for p in placements
        if p.header is None
    ]
    coded = coded_findings(result.answer, result.request.question)
    evidence = _evidence(headers)
    groups = [_answer_group(result, provenance, coded)]
    groups.extend(_box_group(p, provenance) for p in placed)
    report = MeasurementReport(
        observation_context=_observer(provenance),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=groups,
    )
    report[0].ContentSequence.append(_answer_container(result, provenance, unplaced))
    sr = Comprehensive3DSR(
        evidence=evidence,
        content=report[0],
        series_instance_uid=generate_uid(),
        series_number=SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="medlens",
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description=SERIES_DESCRIPTION,
    )
    sr.PreliminaryFlag = "PRELIMINARY"
    sr.SoftwareVersions = provenance.software
    declare_private_scheme(sr)
    record_identifiers(sr, headers[0], provenance)
    return sr
