"""An answer as FHIR: a ``collection`` Bundle holding a preliminary ``DiagnosticReport``, an
``Observation`` per coded finding, the ``ImagingStudy`` the answer is about, the model as a
``Device`` and the ``Patient`` by identifier; in R5 also an ``ImagingSelection`` per box (R4B
has no such resource, so there the boxes stay in the DICOM SR only).

R5 is the default; ``version="R4B"`` writes the R4B shapes (``DiagnosticReport.imagingStudy``
instead of ``study``, ``Coding`` modalities, ``Device.deviceName``). Every resource and the
Bundle are validated by ``fhir.resources`` (pydantic models of the FHIR specification) before
they are returned. Identifiers are those of the study the model saw (de-identified unless
de-identification was turned off); de-identified outputs carry the security label PSEUDED
(HL7 v3 ObservationValue, "pseudonymized").
"""

from __future__ import annotations

import html
import importlib
import json
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from medlens.errors import ConfigError, require
from medlens.interop.codes import CodedFinding, code_label, coded_findings
from medlens.interop.provenance import Provenance

if TYPE_CHECKING:
    from pydicom.sr.coding import Code

    from medlens.interop.sr import BoxPlacement
    from medlens.pipeline import Result
    from medlens.types import Study

VERSIONS = ("R5", "R4B")
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
DICOM_DCM = "http://dicom.nema.org/resources/ontology/DCM"
MEDLENS_SYSTEM = "urn:medlens:codes"
"""The system of medlens' own concepts (the ``99MEDLENS`` scheme of the SR)."""
SCHEMES = {"SCT": SNOMED, "DCM": DICOM_DCM, "LN": LOINC, "99MEDLENS": MEDLENS_SYSTEM}
PSEUDED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "PSEUDED",
    "display": "pseudonymized",
}
IMAGING_REPORT = {"system": LOINC, "code": "18748-4", "display": "Diagnostic imaging study"}
FINDING_SITE = {"system": SNOMED, "code": "363698007", "display": "Finding site"}


def _coding(code: Code) -> dict[str, str]:
    return {
        "system": SCHEMES.get(code.scheme_designator, f"urn:dicom:{code.scheme_designator}"),
        "code": str(code.value),
        "display": str(code.meaning),
    }


def _concept(code: Code) -> dict[str, Any]:
    return {"coding": [_coding(code)], "text": str(code.meaning)}


def _oid(uid: str) -> str:
    return f"urn:oid:{uid}"


class _Bundle:
    """Resources with ``urn:uuid`` full URLs, referenced by them."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def add(self, resource: dict[str, Any]) -> dict[str, str]:
        url = f"urn:uuid:{uuid.uuid4()}"
        self.entries.append({"fullUrl": url, "resource": resource})
        return {"reference": url}


def _imaging_study(study: Study, version: str, patient: dict[str, str]) -> dict[str, Any]:
    first = study.headers[0]
    modality = {"system": DICOM_DCM, "code": str(first.get("Modality") or study.modality)}
    modality_value: Any = {"coding": [modality]} if version == "R5" else modality
    instances = [
        {
            "uid": str(h.SOPInstanceUID),
            "sopClass": {"system": "urn:ietf:rfc:3986", "code": _oid(str(h.SOPClassUID))},
            **({"number": int(h.InstanceNumber)} if h.get("InstanceNumber") is not None else {}),
        }
        for h in study.headers
    ]
    series = {
        "uid": str(first.SeriesInstanceUID),
        "modality": modality_value,
        "numberOfInstances": len(instances),
        "instance": instances,
    }
    if first.get("SeriesNumber") is not None:
        series["number"] = int(first.SeriesNumber)
    return {
        "resourceType": "ImagingStudy",
        "status": "available",
        "identifier": [{"system": "urn:dicom:uid", "value": _oid(str(first.StudyInstanceUID))}],
        "subject": patient,
        "modality": [modality_value],
        "numberOfSeries": 1,
        "numberOfInstances": len(instances),
        "series": [series],
    }


def _device(provenance: Provenance, version: str) -> dict[str, Any]:
    name = provenance.model
    device: dict[str, Any] = {
        "resourceType": "Device",
        "manufacturer": provenance.software,
        "version": [{"value": provenance.version}],
        "note": [{"text": f"{provenance.role}; " + "; ".join(provenance.parameters)}],
    }
    if version == "R5":
        device["name"] = [{"value": name, "type": "model-name"}]
    else:
        device["deviceName"] = [{"name": name, "type": "model-name"}]
    return device


def _observation(
    coded: CodedFinding,
    *,
    subject: dict[str, str],
    device: dict[str, str],
    derived: list[dict[str, str]],
    confidence: Any,
    issued: str,
    label: str = "",
) -> dict[str, Any]:
    """One finding: its code and presence, or the site an answer names, or (a box whose
    label maps to no code) the label as text."""
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "preliminary",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "imaging",
                        "display": "Imaging",
                    }
                ]
            }
        ],
        "subject": subject,
        "device": device,
        "derivedFrom": derived,
        "issued": issued,
    }
    if coded.finding is not None:
        observation["code"] = _concept(coded.finding)
        if coded.presence is not None:
            observation["valueCodeableConcept"] = _concept(coded.presence)
        if coded.site is not None:
            observation["bodySite"] = _site(coded)
    elif coded.site is not None:
        observation["code"] = {"coding": [FINDING_SITE], "text": "Finding site"}
        observation["valueCodeableConcept"] = _site(coded)
    else:
        observation["code"] = {"text": label or "finding"}
    if confidence is not None:
        label = "calibrated probability" if confidence.calibrated else "uncalibrated score"
        observation["component"] = [
            {
                "code": {
                    "coding": [{"system": MEDLENS_SYSTEM, "code": "confidence"}],
                    "text": f"Model confidence ({label}, {confidence.method})",
                },
                "valueQuantity": {
                    "value": round(float(confidence.value), 6),
                    "unit": "1",
                    "system": "http://unitsofmeasure.org",
                    "code": "1",
                },
            }
        ]
    return observation


def _site(coded: CodedFinding) -> dict[str, Any]:
    assert coded.site is not None
    concept = _concept(coded.site)
    if coded.laterality is not None:
        concept["coding"].append(_coding(coded.laterality))
        concept["text"] = f"{coded.laterality.meaning} {coded.site.meaning}".lower()
    return concept


def _selection(
    placement: BoxPlacement, study: Study, subject: dict[str, str], derived: dict[str, str]
) -> dict[str, Any] | None:
    """An R5 ImagingSelection for a box placed on one source instance (polyline)."""
    if placement.polyline is None or placement.header is None:
        return None
    header = placement.header
    instance: dict[str, Any] = {
        "uid": str(header.SOPInstanceUID),
        "sopClass": {"system": "urn:ietf:rfc:3986", "code": _oid(str(header.SOPClassUID))},
        "imageRegion2D": [
            {
                "regionType": "polyline",
                "coordinate": [round(float(v), 4) for v in placement.polyline.ravel()],
            }
        ],
    }
    if placement.frame is not None:
        instance["subset"] = [str(placement.frame)]
    coded = code_label(placement.box.label or "finding", "box label")
    named = coded.finding or coded.site
    selection: dict[str, Any] = {
        "resourceType": "ImagingSelection",
        "status": "available",
        "subject": subject,
        "studyUid": str(header.StudyInstanceUID),
        "seriesUid": str(header.SeriesInstanceUID),
        "derivedFrom": [derived],
        "code": _concept(named) if named else {"text": placement.box.label or "finding"},
        "instance": [instance],
    }
    if "FrameOfReferenceUID" in header:
        selection["frameOfReferenceUid"] = str(header.FrameOfReferenceUID)
    return selection


def _narrative(text: str) -> dict[str, str]:
    body = "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines() if line.strip())
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>'}


def build_fhir(
    result: Result,
    *,
    version: str = "R5",
    provenance: Provenance | None = None,
    study: Study | None = None,
) -> dict[str, Any]:
    """The FHIR Bundle (as JSON data, validated) for one answer."""
    require("fhir.resources", "pacs", "Writing FHIR")
    wanted = version.upper()
    if wanted not in VERSIONS:
        raise ConfigError(f"Unknown FHIR version {version!r}; medlens writes R5 or R4B.")
    provenance = provenance or Provenance.of(result)
    study = study or result.prepared.studies[0]
    answer = result.answer
    issued = datetime.now(timezone.utc).isoformat(timespec="seconds")
    security = {"security": [PSEUDED]} if provenance.deidentified else {}
    bundle = _Bundle()
    patient: dict[str, Any] = (
        {"resourceType": "Patient", "meta": security} if security else {"resourceType": "Patient"}
    )
    patient_id = str(study.headers[0].get("PatientID") or "") if study.headers else ""
    if patient_id:
        patient["identifier"] = [{"value": patient_id}]
    subject = bundle.add(patient)
    device = bundle.add(_device(provenance, wanted))
    imaging = bundle.add(_imaging_study(study, wanted, subject)) if study.headers else None
    derived = [imaging] if imaging else []
    confidence = answer.confidence if not answer.abstained else None
    coded = coded_findings(answer, result.request.question)
    observations = [
        bundle.add(
            _observation(
                c, subject=subject, device=device, derived=derived, confidence=confidence,
                issued=issued,
            )
        )
        for c in coded
    ]  # fmt: skip
    if wanted == "R5" and study.headers and imaging is not None:
        from medlens.interop.sr import place_box

        for index, box in enumerate(answer.boxes):
            placement = place_box(study, result.prepared.views, box, index)
            selection = _selection(placement, study, subject, imaging)
            if selection is None:
                continue
            label = box.label or "finding"
            observations.append(
                bundle.add(
                    _observation(
                        code_label(label, "box label"),
                        subject=subject,
                        device=device,
                        derived=[imaging, bundle.add(selection)],
                        confidence=None,
                        issued=issued,
                        label=label,
                    )
                )
            )
    shown = "abstained" if answer.abstained else (answer.text or answer.raw.strip() or "-")
    conclusion = f"Question: {result.request.question}\nModel answer: {shown}"
    about = (
        f"Model output, not verified by a clinician: {provenance.role} {provenance.model} "
        f"({provenance.backend}, {provenance.task}, {provenance.recipe}). "
        f"Identifiers: {provenance.identifiers}."
    )
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "status": "preliminary",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                        "code": "RAD",
                        "display": "Radiology",
                    }
                ]
            }
        ],
        "code": {"coding": [IMAGING_REPORT], "text": "Imaging question answered by a model"},
        "subject": subject,
        "issued": issued,
        "result": observations,
        "conclusion": conclusion,
        "text": _narrative(f"{conclusion}\n{about}"),
    }
    if security:
        report["meta"] = security
    if coded:
        report["conclusionCode"] = [_concept(c.finding or c.site) for c in coded]  # type: ignore[arg-type]
    if imaging is not None:
        report["study" if wanted == "R5" else "imagingStudy"] = [imaging]
    if wanted == "R5":
        report["note"] = [{"text": about}]
    bundle.add(report)
    data = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": issued,
        "entry": bundle.entries,
        **({"meta": security} if security else {}),
    }
    return validate(data, wanted)


def _model(resource_type: str, version: str) -> Any:
    package = "fhir.resources" if version == "R5" else "fhir.resources.R4B"
    module = importlib.import_module(f"{package}.{resource_type.lower()}")
    return getattr(module, resource_type)


def validate(bundle: dict[str, Any], version: str = "R5") -> dict[str, Any]:
    """Validate every entry and the Bundle with ``fhir.resources`` of ``version``; returns
    the Bundle as the models serialise it (a pydantic ``ValidationError`` names what is
    wrong)."""
    for entry in bundle.get("entry", []):
        resource = entry["resource"]
        _model(resource["resourceType"], version.upper()).model_validate(resource)
    model = _model("Bundle", version.upper()).model_validate(bundle)
    data: dict[str, Any] = json.loads(model.model_dump_json(exclude_none=True))
    return data
