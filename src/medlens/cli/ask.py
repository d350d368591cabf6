"""``medlens ask STUDY QUESTION --model M``: one question about one study."""

from __future__ import annotations

import argparse
import dataclasses
import json

from medlens.cli.common import (
    add_model_options,
    add_privacy_options,
    add_prompt_options,
    backend_from_args,
    candidate_scoring,
    generation_options,
    probability,
    prompt_from_args,
)

COMMAND = "ask"
ORDER = 10


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        COMMAND,
        help="ask a model a question about a study",
        description="Load a study (DICOM file or series folder, NIfTI, PNG/JPEG/TIFF), "
        "de-identify it, show it to a model and print the parsed answer.",
    )
    parser.add_argument("study", help="path to a DICOM file or series folder, NIfTI, PNG/JPEG")
    parser.add_argument("question")
    add_model_options(parser, scores_by_default=True)
    add_privacy_options(parser)
    add_prompt_options(parser, scoring=False)
    parser.add_argument(
        "--kind",
        choices=["closed", "open", "choice", "report", "grounding"],
        help="answer format (guessed from the question when omitted)",
    )
    parser.add_argument("--choices", help="multiple-choice options separated by '|'")
    parser.add_argument("--prior", help="an earlier study of the same patient, for comparison")
    study = parser.add_argument_group("study")
    study.add_argument(
        "--series", metavar="UID", help="the series to use when the folder holds several"
    )
    study.add_argument(
        "--volume",
        type=int,
        metavar="N",
        help="the time point of a 4D DICOM series or NIfTI (default: 0, the first)",
    )
    study.add_argument(
        "--modality",
        metavar="CODE",
        help="DICOM modality code where the file carries none (a NIfTI CT: CT; an X-ray "
        "PNG: DX), so the modality's recipe applies (e.g. medgemma-ct for MedGemma)",
    )
    study.add_argument(
        "--format",
        choices=["dicom", "nifti", "image"],
        help="force a reader (a DICOM file written without its 128-byte preamble)",
    )
    study.add_argument(
        "--save-views",
        metavar="DIR",
        help="write the images the model received into DIR as PNG, in order",
    )
    parser.add_argument("--recipe", help="preprocessing recipe (default: the study's/model's)")
    parser.add_argument("--calibration", help="calibration profile name or path")
    parser.add_argument(
        "--abstain-below",
        type=probability,
        metavar="P",
        help="abstain when the confidence is below P (0..1; default: the profile's threshold)",
    )
    parser.add_argument(
        "--confidence",
        default="auto",
        help="confidence method: auto, candidates, sequence, consistency, verbalized",
    )
    parser.add_argument("--json", action="store_true", help="print a machine-readable record")
    interop = parser.add_argument_group("hospital systems (medlens[pacs])")
    interop.add_argument(
        "--export",
        metavar="DIR",
        help="write the answer as DICOM SR (TID 1500) and a FHIR DiagnosticReport into DIR",
    )
    interop.add_argument(
        "--store-to",
        metavar="DICOMWEB",
        help="send the SR to a PACS (dicomweb://HOST:PORT/dicom-web) and verify it is held",
    )
    interop.add_argument("--fhir-version", choices=["R5", "R4B"], default="R5")
    return parser


def run(args: argparse.Namespace) -> int:
    import sys

    from medlens import pipeline
    from medlens.study import load_study, save_images, study_notes

    shared = {"modality": args.modality, "format": args.format}
    picked = {"series_uid": args.series, "volume": args.volume}
    study = load_study(args.study, **shared, **{k: v for k, v in picked.items() if v is not None})
    if args.prior:
        study = dataclasses.replace(study, prior=load_study(args.prior, **shared))
    for note in study_notes(study):
        print(f"medlens ask: note: {note}", file=sys.stderr)
    if args.store_to:
        from medlens.interop.export import check_exportable

        check_exportable(study.headers, args.store_to)
    calibration = None
    if args.calibration:
        from medlens.trust.calibration import CalibrationProfile

        calibration = CalibrationProfile.load(args.calibration)
    candidates = tuple(c.strip() for c in args.choices.split("|")) if args.choices else ()
    from medlens.tasks import guess_kind

    kind = args.kind or guess_kind(args.question, candidates)
    backend = backend_from_args(args)
    try:
        result = pipeline.ask(
            study,
            args.question,
            backend=backend,
            kind=kind,
            candidates=candidates,
            recipe=args.recipe,
            deidentify=not args.no_deid,
            options=generation_options(args),
            candidate_scoring=candidate_scoring(args),
            calibration=calibration,
            confidence_method=args.confidence,
            abstain_threshold=args.abstain_below,
            prompt=prompt_from_args(args),
        )
    finally:
        backend.close()
    if args.save_views:
        labels = [v.label for v in result.prepared.views]
        labels += [f"prior {label}" for label in labels][: len(result.request.images) - len(labels)]
        paths = save_images(result.request.images, args.save_views, labels)
        print(
            f"medlens ask: wrote the {len(paths)} image(s) the model received to {args.save_views}",
            file=sys.stderr,
        )
    exported = None
    if args.export or args.store_to:
        from medlens.interop.export import export_answer

        exported = export_answer(
            result, out_dir=args.export, store_to=args.store_to, fhir_version=args.fhir_version
        )
    if args.json:
        record = result.to_json()
        if exported is not None:
            record["export"] = exported.summary()
        print(json.dumps(record, indent=2, default=str))
    else:
        print(format_result(result))
        if exported is not None:
            for name, path in exported.files.items():
                print(f"Wrote {name}: {path}")
            if exported.stored is not None:
                count = len(exported.stored.sop_instance_uids)
                print(f"Stored {count} object(s) on {exported.stored.root} (verified by QIDO-RS)")
            for note in exported.notes:
                print(f"Note: {note}")
    return 0


def format_result(result: object) -> str:
    """A short human-readable answer: the answer line, then rationale, boxes, confidence."""
    from medlens.pipeline import Result

    assert isinstance(result, Result)
    answer = result.answer
    lines = []
    if answer.abstained:
        lines.append(f"Answer: abstain ({answer.abstain_reason})")
    elif not answer.parsed:
        lines.append(f"Answer (unparsed): {answer.raw.strip()}")
    else:
        lines.append(f"Answer: {answer.text}")
    if answer.rationale:
        lines.append(f"Rationale: {answer.rationale}")
    for name, text in answer.sections.items():
        lines.append(f"{name.capitalize()}: {text}")
    for box in answer.boxes:
        lines.append(
            f"Box: {box.label or 'finding'} ({box.x0:.0f}, {box.y0:.0f}) - ({box.x1:.0f}, {box.y1:.0f})"
        )
    if answer.confidence is not None:
        c = answer.confidence
        note = f", calibrated by {c.profile}" if c.calibrated else ""
        lines.append(f"Confidence: {c.value:.2f} ({c.method}{note})")
    for study in result.prepared.studies:
        if study.redaction is not None:
            lines.append(f"De-identification: {study.redaction.describe()}")
    generation = result.generation
    lines.append(f"Model: {generation.model} ({result.model_label}, {generation.backend} backend)")
    if result.model_note:
        lines.append(f"About the model: {result.model_note}")
    return "\n".join(lines)
