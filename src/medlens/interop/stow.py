"""STOW-RS to a PACS, verified by QIDO-RS.

A STOW-RS status is not proof of storage: dicomweb-client issue #42 reports Orthanc answering
200 and storing nothing, and a storage policy that refuses instances (an Orthanc Lua
``ReceivedInstanceFilter``, a PACS that takes no SR) can still answer 200 with every
instance in the Referenced SOP Sequence. So after the server answers, ``store`` asks it by
QIDO-RS for every SOP Instance UID it sent (waiting briefly for PACS that index
asynchronously), and raises a ``PacsError`` naming what is missing.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from medlens.errors import PacsError

if TYPE_CHECKING:
    from pydicom import Dataset

VERIFY_WAITS_S = (0.0, 0.5, 1.0, 2.0)
"""Pauses before each QIDO-RS check: a PACS may index what it stored a moment later."""


@dataclass(frozen=True)
class StoreReceipt:
    """What the server holds after ``store``: every instance sent, found by QIDO-RS."""

    root: str
    study_uids: tuple[str, ...]
    series_uids: tuple[str, ...]
    sop_instance_uids: tuple[str, ...]
    checks: int
    """How many QIDO-RS rounds it took to find them all."""


def _failures(response: Dataset) -> list[str]:
    reasons = []
    for item in response.get("FailedSOPSequence") or []:
        code = item.get("FailureReason")
        reasons.append(f"{item.get('ReferencedSOPInstanceUID', '?')} (failure reason {code})")
    return reasons


def store(
    datasets: Sequence[Dataset],
    destination: str,
    *,
    auth_file: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    waits: Sequence[float] = VERIFY_WAITS_S,
) -> StoreReceipt:
    """Send ``datasets`` to the DICOMweb server of ``destination`` (a ``dicomweb://``
    service root or study address) and confirm by QIDO-RS that it holds each of them."""
    from medlens.study.readers.dicomweb import TAG_SOP_INSTANCE, connect, json_value

    if not datasets:
        raise PacsError("Nothing to store: no DICOM objects were given.")
    client, _ = connect(destination, auth_file=auth_file, timeout=timeout, retries=retries)
    with contextlib.closing(client):
        response = client.store(datasets)
        failed = _failures(response)
        if failed:
            raise PacsError(
                f"The DICOMweb server at {client.root} refused {len(failed)} of "
                f"{len(datasets)} object(s) sent by STOW-RS: {'; '.join(failed)}. Its log "
                "says why (storage policy, SOP class not accepted, storage full)."
            )
        wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
        for ds in datasets:
            wanted[(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))].add(
                str(ds.SOPInstanceUID)
            )
        missing: set[str] = set()
        checks = 0
        for pause in waits:
            time.sleep(pause)
            checks += 1
            missing = set()
            for (study, series), uids in wanted.items():
                rows = client.search_instances(study, series)
                found = {str(json_value(row, TAG_SOP_INSTANCE)) for row in rows}
                missing |= uids - found
            if not missing:
                break
    if missing:
        raise PacsError(
            f"The DICOMweb server at {client.root} accepted the STOW-RS request but does not "
            f"hold {len(missing)} of {len(datasets)} object(s) sent (QIDO-RS finds no "
            f"{', '.join(sorted(missing)[:3])}{' ...' if len(missing) > 3 else ''} after "
            f"{sum(waits):g} s). The server refused them silently (a storage policy, or "
            "dicomweb-client issue #42); check its log before relying on the results there."
        )
    return StoreReceipt(
        root=client.root,
        study_uids=tuple(sorted({study for study, _ in wanted})),
        series_uids=tuple(sorted({series for _, series in wanted})),
        sop_instance_uids=tuple(sorted(uid for uids in wanted.values() for uid in uids)),
        checks=checks,
    )
