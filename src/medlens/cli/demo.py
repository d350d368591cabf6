"""``medlens demo``: the whole pipeline, offline, on studies medlens generates itself.

It writes a synthetic chest CT series (DICOM, with geometry, rescale and window settings, a
known nodule and obviously fake identifying data) and the same phantom as a NIfTI volume,
then loads, de-identifies, turns them into model images with their recipes (a montage of the
series; MedGemma's three-window CT recipe for the volume), asks questions and writes
``report.html``. Without ``--model`` the model is the weightless ``prior`` baseline (the most
frequent VQA-RAD training answer per question type; it never looks at the image), labelled as
such; ``--model ID_OR_PATH`` runs the same with a real VLM.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medlens.cli.common import (
    add_model_options,
    backend_from_args,
    candidate_scoring,
    generation_options,
)

COMMAND = "demo"
ORDER = 1

# (study, question, answer kind, recipe: None = the default for the study and model)
QUESTIONS = (
    ("ct-series", "Is there a nodule in the lungs?", "closed", None),
    ("ct-series", "Which organ contains the abnormality?", "open", None),
    ("ct-series", "Where is the nodule? Give a bounding box.", "grounding", None),
    ("ct-volume", "Describe the findings of this CT.", "report", "medgemma-ct"),
)


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        COMMAND,
        help="run the whole pipeline offline on generated studies (no download)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out", default="medlens-demo", help="output folder (default: %(default)s)"
    )
    add_model_options(parser, required=False, scores_by_default=True)
    parser.set_defaults(model="prior")
    return parser


def run(args: argparse.Namespace) -> int:
    import time

    from medlens import pipeline
    from medlens.backends.base import BASELINES
    from medlens.study import load_study
    from medlens.testing.studies import write_ct_nifti, write_ct_series

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sources = {
        "ct-series": write_ct_series(out / "studies" / "ct-series"),
        "ct-volume": write_ct_nifti(out / "studies" / "ct-volume.nii.gz"),
    }
    studies = {
        "ct-series": load_study(sources["ct-series"]),
        "ct-volume": load_study(sources["ct-volume"], modality="CT"),  # NIfTI has no modality
    }
    is_baseline = (args.backend or args.model).lower() in BASELINES
    backend = backend_from_args(args)
    results = []
    try:
        for study_name, question, kind, recipe in QUESTIONS:
            result = pipeline.ask(
                studies[study_name],
                question,
                backend=backend,
                kind=kind,
                recipe=recipe,
                options=generation_options(args),
                candidate_scoring=candidate_scoring(args),
            )
            results.append((study_name, result))
    finally:
        backend.close()
    elapsed = time.perf_counter() - started

    label = (
        f"BASELINE '{args.model}' (answers without looking at the image; not a VLM)"
        if is_baseline
        else f"model {args.model}"
    )
    page = out / "report.html"
    page.write_text(render_page(results, label, elapsed), encoding="utf-8")
    print(f"medlens demo — {label}")
    for study_name, result in results:
        study = result.prepared.studies[0]
        summary = study.summary()
        removed = len(
            {
                name
                for r in result.audit
                if r.action == "header-deid"
                for key, names in r.details.items()
                if key.endswith("_attributes")
                for name in names
            }
        )
        print(
            f"\n[{study_name}] {summary['modality']} {summary['format']} "
            f"{'x'.join(map(str, summary['shape']))}, de-identified: {study.deidentified} "
            f"({len(result.audit)} audit record(s), {removed} header attribute(s) changed)"
        )
        print(f"  recipe {result.prepared.recipe}: {len(result.prepared.views)} image(s)")
        print(f"  Q: {result.request.question}")
        answer = result.answer
        if answer.parsed:
            text = answer.text or "; ".join(f"{k}: {v}" for k, v in answer.sections.items())
        elif not answer.raw.strip():
            text = f"(no answer: the baseline has none for {answer.kind} questions)"
        else:
            text = f"(unparsed) {answer.raw.strip()[:80]}"
        conf = (
            f"  confidence {answer.confidence.value:.2f} ({answer.confidence.method})"
            if answer.confidence
            else ""
        )
        print(
            f"  A: {'abstain: ' + str(answer.abstain_reason) if answer.abstained else text}{conf}"
        )
    print(f"\nWrote {page} ({elapsed:.1f} s)")
    return 0


def render_page(results: list, label: str, elapsed: float) -> str:  # type: ignore[type-arg]
    """A self-contained HTML page: each question with the exact images the model received."""
    import base64
    import html
    import io

    from PIL import ImageDraw

    cards = []
    for study_name, result in results:
        answer = result.answer
        images = []
        for index, view in enumerate(result.prepared.views[:12]):
            image = view.image.convert("RGB")
            boxes = [b for b in answer.boxes if b.view_index == index]
            if boxes:
                draw = ImageDraw.Draw(image)
                for b in boxes:
                    draw.rectangle((b.x0, b.y0, b.x1, b.y1), outline=(255, 64, 64), width=2)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            data = base64.b64encode(buffer.getvalue()).decode()
            images.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(view.label)}">'
                f"<figcaption>{html.escape(view.label)}</figcaption></figure>"
            )
        more = len(result.prepared.views) - len(images)
        if more > 0:
            images.append(f"<p>… and {more} more image(s) sent to the model</p>")
        if answer.abstained:
            shown = f"abstain — {answer.abstain_reason}"
        elif answer.parsed:
            shown = answer.text or ""
            if answer.sections:
                shown = "<br>".join(
                    f"<b>{html.escape(k)}</b>: {html.escape(v)}" for k, v in answer.sections.items()
                )
        else:
            shown = f"(could not be parsed) {answer.raw}"
        confidence = (
            f"{answer.confidence.value:.2f} ({html.escape(answer.confidence.method)})"
            if answer.confidence
            else "n/a"
        )
        summary = result.prepared.studies[0].summary()
        audit = ", ".join(html.escape(r.action) for r in result.audit) or "none"
        cards.append(
            f"""<section class="card"><h2>{html.escape(study_name)}: {html.escape(result.request.question)}</h2>
<p class="meta">{html.escape(str(summary["modality"]))} · {html.escape(str(summary["format"]))} ·
shape {html.escape(str(summary["shape"]))} · recipe <code>{html.escape(result.prepared.recipe)}</code> ·
task <code>{html.escape(result.prepared.task_version)}</code> · de-identification: {audit}</p>
<div class="views">{"".join(images)}</div>
<p class="answer"><b>Answer:</b> {shown if answer.sections else html.escape(shown)}</p>
<p><b>Confidence:</b> {confidence} · <b>Raw output:</b> <code>{html.escape(answer.raw[:300])}</code></p>
</section>"""
        )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>medlens demo</title><style>
body{{font-family:system-ui,sans-serif;margin:2rem;background:#111;color:#eee}}
.card{{background:#1d1d1d;border-radius:8px;padding:1rem;margin-bottom:1.5rem}}
.views{{display:flex;flex-wrap:wrap;gap:.5rem}} figure{{margin:0}} img{{max-width:256px;image-rendering:pixelated}}
figcaption{{font-size:.75rem;color:#aaa}} .meta{{color:#aaa;font-size:.85rem}} .answer{{font-size:1.2rem}}
.banner{{background:#5a3b00;padding:.5rem 1rem;border-radius:6px}} code{{color:#9cf}}
</style></head><body><h1>medlens demo</h1>
<p class="banner">Answers by {html.escape(label)}. Studies are synthetic, generated by medlens.</p>
{"".join(cards)}<p class="meta">Pipeline time {elapsed:.1f} s.</p></body></html>"""
