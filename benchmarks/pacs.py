"""PACS round trip: pull and prepare a 300-slice CT from a local Orthanc, and the time to
write an answer as DICOM SR, SEG and FHIR.

    python benchmarks/pacs.py [--slices 300] [--size 512] [--repeats 3]

A throw-away Orthanc is started (``medlens.testing.orthanc``), the
synthetic chest CT phantom (``medlens.testing.studies``, 300 × 512² by default) is written
and uploaded through Orthanc's REST API. Printed figures, the median of ``--repeats`` runs:

- pull: ``load_study(dicomweb://...)`` (QIDO-RS + one instance's WADO-RS metadata + the
  streamed WADO-RS series + geometry sort and Modality LUT), seconds and MB/s of pixel data,
  then the same split into the transfer (with pydicom parsing) and the series assembly;
- prepare: de-identification (headers of every slice) and the default CT recipe's views;
- per answer: building the Comprehensive 3D SR of a grounded answer with two boxes, the SEG
  of a lesion mask over the whole volume, and the R5 FHIR Bundle (validated), each also
  serialised (``dcmwrite`` / JSON), in milliseconds; and STOW-RS of the SR and SEG with the
  QIDO-RS verification.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def timed(fn: Callable[[], Any], repeats: int, *, warm: bool = False) -> tuple[float, Any]:
    """Median wall seconds of ``repeats`` calls, and the last result; ``warm`` makes one
    untimed call first (library imports and caches are not per-answer costs)."""
    times = []
    result = fn() if warm else None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from medlens import pipeline
    from medlens.backends.scripted import ScriptedBackend
    from medlens.interop.fhir import build_fhir
    from medlens.interop.provenance import Provenance
    from medlens.interop.seg import build_seg
    from medlens.interop.sr import build_sr
    from medlens.interop.stow import store
    from medlens.study import load_study
    from medlens.study.readers.dicom import read_datasets
    from medlens.study.readers.dicomweb import connect, pull_series
    from medlens.testing.orthanc import start_orthanc
    from medlens.testing.studies import lesion_location, write_ct_series

    with tempfile.TemporaryDirectory(prefix="medlens-pacs-bench-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        folder = write_ct_series(work / "ct", slices=args.slices, size=args.size)
        print(f"wrote {args.slices} x {args.size}^2 CT in {time.perf_counter() - start:.1f} s")
        server = start_orthanc(work / "orthanc")
        try:
            start = time.perf_counter()
            (study_uid,) = server.upload(folder)
            print(f"uploaded to Orthanc (REST) in {time.perf_counter() - start:.1f} s")
            address = server.study(study_uid)
            megabytes = args.slices * args.size * args.size * 2 / 1e6

            pull_s, study = timed(lambda: load_study(address, progress=False), args.repeats)
            print(f"pull      {pull_s:7.2f} s  ({megabytes / pull_s:6.1f} MB/s of pixels, "
                  f"{study.num_slices} slices, {study.pixels.shape})")  # fmt: skip
            client, _ = connect(address)
            series_uid = str(study.headers[0].SeriesInstanceUID)
            wado_s, datasets = timed(
                lambda: pull_series(client, study_uid, series_uid, progress=False), 1
            )
            client.close()
            build_s, _ = timed(lambda: read_datasets(datasets, max_pixels=10**9, where="bench"), 1)
            print(f"  of which WADO-RS transfer + parsing {wado_s:.2f} s, series assembly "
                  f"(sort, Modality LUT, stack) {build_s:.2f} s")  # fmt: skip

            def prepare() -> Any:
                return pipeline.prepare(study, "Outline the nodule", kind="grounding")

            prep_s, prepared = timed(prepare, args.repeats, warm=True)
            print(f"prepare   {prep_s:7.2f} s  (de-identify {study.num_slices} headers + "
                  f"recipe {prepared.recipe}: {len(prepared.views)} view(s))")  # fmt: skip
            view = prepared.views[0]
            w, h = view.image.size
            reply = (
                f'[{{"label": "nodule", "bbox_2d": [{w * 0.2:.0f}, {h * 0.2:.0f}, '
                f'{w * 0.3:.0f}, {h * 0.3:.0f}]}}, {{"label": "heart", "bbox_2d": '
                f"[{w * 0.5:.0f}, {h * 0.5:.0f}, {w * 0.6:.0f}, {h * 0.6:.0f}]}}]"
            )
            result = pipeline.ask(study, "Outline the nodule", kind="grounding",
                                  backend=ScriptedBackend(answers=lambda r: reply))  # fmt: skip
            seen = result.prepared.studies[0]
            provenance = Provenance.of(result)
            lesion = lesion_location(slices=args.slices, size=args.size)
            mask = np.zeros(seen.pixels.shape, dtype=bool)
            c, r, k = (round(v) for v in lesion.voxel)
            mask[max(0, k - 2) : k + 3, r - 8 : r + 8, c - 8 : c + 8] = True

            def sr_bytes() -> Any:
                ds = build_sr(result, provenance=provenance)
                ds.save_as(io.BytesIO(), enforce_file_format=True)
                return ds

            def seg_bytes() -> Any:
                ds = build_seg(seen, {"nodule": mask}, provenance=provenance)
                ds.save_as(io.BytesIO(), enforce_file_format=True)
                return ds

            def fhir_json() -> str:
                return json.dumps(build_fhir(result, provenance=provenance))

            sr_s, sr = timed(sr_bytes, args.repeats, warm=True)
            seg_s, seg = timed(seg_bytes, args.repeats, warm=True)
            fhir_s, fhir = timed(fhir_json, args.repeats, warm=True)
            print(f"SR        {sr_s * 1e3:7.1f} ms (2 boxes, {len(seen.headers)} evidence refs)")
            print(f"SEG       {seg_s * 1e3:7.1f} ms (1 segment over {seen.num_slices} slices)")
            print(f"FHIR R5   {fhir_s * 1e3:7.1f} ms ({len(fhir) / 1e3:.0f} kB, validated)")
            stow_s, receipt = timed(lambda: store([sr, seg], server.root), 1)
            print(f"STOW+QIDO {stow_s * 1e3:7.1f} ms ({len(receipt.sop_instance_uids)} objects, "
                  f"verified in {receipt.checks} check(s))")  # fmt: skip
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
