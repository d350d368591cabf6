"""``medlens demo``: the whole pipeline, offline, on studies medlens generates itself.

It writes a synthetic chest CT series (DICOM, with geometry, rescale and window settings, a
known nodule and obviously fake identifying data) and the same phantom as a NIfTI volume,
then loads, de-identifies, turns them into model images with their recipes (a montage of the
series; MedGemma's three-window CT recipe for the volume), asks questions and writes
``report.html``. It then asks the same model about a few real images of the VQA-RAD (CC0 1.0)
and SLAKE (CC BY 4.0) *test* splits, shipped in the package, and shows the gold answer beside
the model's.

Without ``--model`` the model is medlens-tiny, the ~5M-parameter demonstration model medlens
trained on SLAKE and VQA-RAD train splits (``medlens train``; weights ship in the package;
not a clinical model); ``--model prior`` runs the weightless baseline, ``--model ID_OR_PATH``
a real VLM. Every answer is labelled with who gave it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medlens.backends.base import Backend
    from medlens.pipeline import Result
    from medlens.types import GenerationOptions

    Example = tuple[dict[str, str], Result, bool]

from medlens.cli.common import (
    add_model_options,
    backend_from_args,
    candidate_scoring,
    generation_options,
)

DEFAULT_MODEL = "medlens-tiny"
EXAMPLES = Path(__file__).resolve().parent / "demo_examples"
"""Real test images with their questions and gold answers (``examples.json``), written by
``scripts/make_demo_examples.py``: the first SLAKE test image of each modality and the first
VQA-RAD test image, shrunk to 256 px."""

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
    parser.set_defaults(model=DEFAULT_MODEL)
    return parser


def load_examples() -> list[dict[str, str]]:
    """The shipped real test examples (image file, source and licence, question, gold)."""
    import json

    examples: list[dict[str, str]] = json.loads((EXAMPLES / "examples.json").read_text())
    return examples


def ask_examples(backend: Backend, options: GenerationOptions | None) -> list[Example]:
    """Each real example asked of ``backend``: (example, result, correct under the medlens
    protocol, the strict rules ``medlens eval`` leads with)."""
    from medlens import pipeline
    from medlens.bench.protocols import get_protocol
    from medlens.bench.samples import Sample

    protocol = get_protocol("medlens")
    answered: list[Example] = []
    for example in load_examples():
        result = pipeline.ask(
            str(EXAMPLES / example["image"]),
            example["question"],
            backend=backend,
            kind=example["kind"],
            options=options,
        )
        answer = result.answer
        sample = Sample(
            id=example["image"],
            benchmark="demo",
            split="test",
            question=example["question"],
            answers=(example["answer"],),
            kind=example["kind"],  # type: ignore[arg-type]
            images=(),
        )
        score = protocol.score(sample, answer.raw, parsed=answer.text, parsed_ok=answer.parsed)
        answered.append((example, result, score.outcome == "correct"))
    return answered


def run(args: argparse.Namespace) -> int:
    import time

    from medlens import pipeline
    from medlens.backends.base import BASELINES, model_note
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
        real = ask_examples(backend, generation_options(args))
    finally:
        backend.close()
    elapsed = time.perf_counter() - started

    label = (
        f"BASELINE '{args.model}' (answers without looking at the image; not a VLM)"
        if is_baseline
        else model_note(args.model) or f"model {args.model} (user model)"
    )
    page = out / "report.html"
    page.write_text(render_page(results, label, elapsed, real), encoding="utf-8")
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
    print(
        "\nReal test images (VQA-RAD test, CC0 1.0; SLAKE test, CC BY 4.0, Liu et al. 2021) — "
        "gold answer beside the model's:"
    )
    for example, result, correct in real:
        answer = result.answer
        shown = answer.text if answer.parsed else f"(unparsed) {answer.raw.strip()[:60]}"
        print(
            f"  [{example['image']}] {example['question']}\n"
            f"    gold: {example['answer']}   model: {shown}   "
            f"{'correct' if correct else 'wrong'} (medlens protocol)"
        )
    print(f"\nWrote {page} ({elapsed:.1f} s)")
    return 0


def _real_section(real: list[Example]) -> str:
    """The real test images with question, gold answer, model answer and verdict."""
    import base64
    import html

    if not real:
        return ""
    rows = []
    for example, result, correct in real:
        answer = result.answer
        shown = answer.text if answer.parsed else f"(unparsed) {answer.raw.strip()[:60]}"
        data = base64.b64encode((EXAMPLES / example["image"]).read_bytes()).decode()
        rows.append(
            f'<tr><td><img src="data:image/jpeg;base64,{data}" alt="{html.escape(example["image"])}">'
            f"</td><td>{html.escape(example['question'])}</td>"
            f"<td>{html.escape(example['answer'])}</td><td>{html.escape(shown or '')}</td>"
            f"<td>{'correct' if correct else 'wrong'}</td>"
            f'<td class="meta">{html.escape(example["source"])}</td></tr>'
        )
    return (
        '<section class="card"><h2>Real test images</h2><p class="meta">From the VQA-RAD '
        "(CC0 1.0) and SLAKE (CC BY 4.0, Liu et al., ISBI 2021) test splits, shrunk to 256 px; "
        "chosen by rule (first image per modality), not by how the model answers. Verdicts "
        "use the medlens scoring protocol.</p><table><tr><th>image</th><th>question</th>"
        "<th>gold</th><th>model</th><th>verdict</th><th>source</th></tr>"
        + "".join(rows)
        + "</table></section>"
    )


def render_page(
    results: list,  # type: ignore[type-arg]
    label: str,
    elapsed: float,
    real: list[Example] | None = None,
) -> str:
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
<p class="banner">Answers by {html.escape(label)}. The CT studies are synthetic, generated by medlens.</p>
{"".join(cards)}{_real_section(real or [])}<p class="meta">Pipeline time {elapsed:.1f} s.</p></body></html>"""
