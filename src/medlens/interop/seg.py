"""Masks as a DICOM Segmentation (PS3.3 A.51) built with highdicom: one binary segment per
label, each frame referencing the source instance (and frame) it lies on, the model as the
segmentation algorithm (AUTOMATIC, family "Artificial Intelligence", PS3.16 CID 7162).

Masks are in the study's voxel order, shaped like ``study.pixels`` without colour:
``(slices, rows, cols)``, the slices sorted by geometry as the reader sorted them; each frame
goes back to the source instance of its slice (for an enhanced multi-frame source, to the
frame it was read from). Labels are coded where ``medlens.interop.codes`` knows them (a
finding → morphologically abnormal structure; an organ → anatomical structure), else under
the private scheme ``99MEDLENS``.

Like the SR: new Series and SOP Instance UIDs, the de-identified identifiers of the study
the model saw unless de-identification was turned off, the choice recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from medlens.errors import ConfigError, require
from medlens.interop.codes import code_label
from medlens.interop.provenance import Provenance, source_headers
from medlens.interop.sr import _evidence, _frame_order, private, record_identifiers

if TYPE_CHECKING:
    from pydicom import Dataset

    from medlens.types import Study

SERIES_NUMBER = 9902
SERIES_DESCRIPTION = "medlens model segmentation (PRELIMINARY, not verified)"


def _segment(number: int, label: str, provenance: Provenance) -> Any:
    from highdicom.content import AlgorithmIdentificationSequence
    from highdicom.seg import SegmentAlgorithmTypeValues, SegmentDescription
    from pydicom.sr.codedict import codes

    coded = code_label(label, "mask label")
    if coded.finding is not None:
        category, kind = codes.SCT.MorphologicallyAbnormalStructure, coded.finding
    elif coded.site is not None:
        category, kind = codes.SCT.Organ, coded.site
    else:
        category = codes.SCT.MorphologicallyAbnormalStructure
        kind = private(f"label-{number}", label[:64] or f"segment {number}")
    return SegmentDescription(
        segment_number=number,
        segment_label=label[:64] or f"segment {number}",
        segmented_property_category=category,
        segmented_property_type=kind,
        algorithm_type=SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=AlgorithmIdentificationSequence(
            name=provenance.model[:64],
            family=codes.cid7162.ArtificialIntelligence,
            version=provenance.version[:64],
            source=provenance.software,
            parameters=dict(p.split("=", 1) for p in provenance.parameters),
        ),
    )


def build_seg(study: Study, masks: Mapping[str, np.ndarray], *, provenance: Provenance) -> Dataset:
    """A DICOM SEG of ``masks`` (label → boolean ``(slices, rows, cols)`` array) over the
    DICOM ``study`` they were drawn on."""
    require("highdicom", "pacs", "Writing DICOM SEG")
    from highdicom.seg import Segmentation, SegmentationTypeValues
    from pydicom.uid import generate_uid

    headers = source_headers(study, "A DICOM SEG")
    if not masks:
        raise ConfigError("A DICOM SEG needs at least one mask.")
    shape = study.pixels.shape[:3]
    stacked = []
    for label, mask in masks.items():
        array = np.asarray(mask).astype(bool)
        if array.ndim == 2 and shape[0] == 1:
            array = array[np.newaxis]
        if array.shape != shape:
            raise ConfigError(
                f"The mask '{label}' is shaped {array.shape}, the study {shape} "
                "(slices, rows, cols); a mask must cover the study voxel for voxel."
            )
        stacked.append(array)
    pixels = np.stack(stacked, axis=-1).astype(np.uint8)  # (frames, rows, cols, segments)
    sources: list[Dataset] = _evidence(headers)
    if len(headers) == 1 and int(headers[0].get("NumberOfFrames") or 1) > 1:
        order = _frame_order(headers[0], shape[0])  # study slice k came from frame order[k]
        unsorted = np.empty_like(pixels)
        unsorted[order] = pixels
        pixels = unsorted
    elif len(headers) != shape[0]:
        raise ConfigError(
            f"The study has {shape[0]} slices but {len(headers)} source headers; a SEG needs "
            "one source image per slice (or one multi-frame image)."
        )
    seg = Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type=SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment(i + 1, label, provenance) for i, label in enumerate(masks)],
        series_instance_uid=generate_uid(),
        series_number=SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="medlens",
        manufacturer_model_name=provenance.model[:64],
        software_versions=provenance.software,
        device_serial_number=provenance.version[:64],
        series_description=SERIES_DESCRIPTION,
    )
    record_identifiers(seg, headers[0], provenance)
    return seg
