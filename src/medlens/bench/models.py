"""The model zoo: medical VLMs of the literature, how to run them, and what they published.

Each entry says where the weights are (the Hugging Face id, and whether that id was confirmed
against a public page of the Hub when the entry was written), which backend path runs them in
medlens, the recipe and prompt format they were trained with, their licence, and the figures
their authors published per benchmark, with the source, split and the medlens protocol that
reproduces the published rule. ``medlens eval --model ID`` and the report print a published
figure beside the run's figure under the same protocol, so a reproduction is judged on equal
terms ("published 72.3 (card, medgemma-card) · this run 70.1 (same protocol)").

Figures are recorded only where a source was read for them; ``seen_in`` says where. A model
without figures is listed so that it can be run, not compared.

>>> from medlens.bench.models import get_model, published
>>> get_model("google/medgemma-4b-it").backend
'transformers'
>>> [f.protocol for f in published("google/medgemma-4b-it", "slake")]
['medgemma-card']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from medlens.registry import Registry

if TYPE_CHECKING:
    from medlens.bench.metrics.bootstrap import Estimate

BackendPath = Literal["transformers", "trust_remote_code", "vllm-openai", "convert"]
BACKEND_PATHS: dict[str, str] = {
    "transformers": "plain transformers (medlens --model ID)",
    "trust_remote_code": "transformers with trust_remote_code (the repository ships its code)",
    "vllm-openai": "serve it with vLLM and use the openai backend (--model http://HOST/v1)",
    "convert": "no transformers class for its config: convert the weights to transformers' "
    "LlavaForConditionalGeneration first, or serve it with its own repository",
}


@dataclass(frozen=True)
class PublishedFigure:
    """One number an author published for a model on a benchmark."""

    benchmark: str
    """medlens benchmark name (``vqa-rad``, ``slake``, ...)."""
    split: str
    metric: str
    """What the number is, in the source's words ("tokenized F1", "accuracy")."""
    value: float
    """In [0, 1]."""
    protocol: str | None
    """The medlens protocol whose headline ``overall`` reproduces the published rule; None
    when none does (the authors' own evaluation set or harness), so that no run is set beside
    the figure as if it were comparable."""
    source: str
    """Paper table or model card the figure comes from."""
    seen_in: str = ""
    """Where the figure was read when it was recorded here (empty: not confirmed)."""
    rule: str = ""
    """How the source scored it, where that decides what the number means."""


@dataclass(frozen=True)
class ZooModel:
    """One runnable model of the literature."""

    hub_id: str
    name: str
    family: str
    """The architecture family (what the transformers backend loads)."""
    backend: BackendPath
    base: str
    """The model it was trained from."""
    recipe: str
    """How it was trained, briefly."""
    prompt_format: str
    """The prompt it was trained and evaluated with; ``prompt_preset`` reproduces it."""
    prompt_preset: str
    license: str
    hub_verified: str
    """Where the Hub id was seen on a public Hub page (empty: not confirmed)."""
    paper: str = ""
    figures: tuple[PublishedFigure, ...] = field(default_factory=tuple)


MEDGEMMA_CARD = "google/medgemma-4b-it model card, 'Multimodal performance' table"
HULU_MED_README = "ZJUI-AI4H/Hulu-Med README @03276e5, 'Medical Multimodal Benchmarks' table"
HULU_MED_RULE = (
    "the authors' own harness (MedUniEval, built on MedEvalKit); the README does not say "
    "whether open questions went to the rule path or an LLM judge"
)
LINGSHU_TABLE = (
    "arXiv 2506.07044 (Lingshu), multimodal VQA table, as quoted in the Hulu-Med README's "
    "comparison row"
)
LINGSHU_SEEN = "ZJUI-AI4H/Hulu-Med README @03276e5 (Lingshu's own card was not readable here)"
"""Lingshu-32B's row in that README differs from other copies of Lingshu's card (VQA-RAD 76.7
against 76.5, SLAKE 86.7 against 89.2), so no 32B figure is recorded until the card is read."""
HUATUO_README = (
    "FreedomIntelligence/HuatuoGPT-Vision README @a6476ac, 'Performance of Medical "
    "Multimodal' table (for FreedomIntelligence/HuatuoGPT-Vision-7B, of which -7B-hf is the "
    "transformers conversion)"
)
HUATUO_RULE = (
    "the authors' own evaluation (arXiv 2406.19280); the README does not name the rule, and "
    "no medlens protocol is known to reproduce it"
)


def _figures(
    values: Mapping[str, float],
    *,
    metric: str,
    protocol: str | None,
    source: str,
    seen_in: str,
    rule: str = "",
) -> tuple[PublishedFigure, ...]:
    """One source's row of percentages (benchmark → value) as figures on the test splits."""
    return tuple(
        PublishedFigure(benchmark, "test", metric, value / 100, protocol, source, seen_in, rule)
        for benchmark, value in values.items()
    )


ZOO: tuple[ZooModel, ...] = (
    ZooModel(
        "google/medgemma-4b-it",
        "MedGemma 4B",
        "gemma3",
        "transformers",
        "Gemma 3 4B with a SigLIP encoder pre-trained on medical images",
        "medical continued pre-training and instruction tuning with RL (Google, 2025)",
        "Gemma 3 chat turns; image(s) then the question; CT as 3-window RGB slices, "
        "'SLICE n' after each (Google-Health/medgemma notebooks)",
        "medgemma",
        "Health AI Developer Foundations terms of use",
        "huggingface.co collections and activity pages list google/medgemma-4b-it",
        "arXiv 2507.05201 (MedGemma technical report)",
        (
            PublishedFigure(
                "slake",
                "test (English)",
                "tokenized F1",
                0.723,
                "medgemma-card",
                MEDGEMMA_CARD,
                "a copy of the card text (featherless.ai model page)",
            ),
            PublishedFigure(
                "vqa-rad",
                "test",
                "tokenized F1",
                0.499,
                "medgemma-card",
                MEDGEMMA_CARD,
                "llm-stats benchmark data citing the card (self-reported)",
            ),
        ),
    ),
    ZooModel(
        "google/medgemma-27b-it",
        "MedGemma 27B (multimodal)",
        "gemma3",
        "transformers",
        "Gemma 3 27B with MedGemma's SigLIP encoder",
        "as MedGemma 4B, at 27B (released July 2025; the earlier 27B is text-only: "
        "google/medgemma-27b-text-it)",
        "as MedGemma 4B",
        "medgemma",
        "Health AI Developer Foundations terms of use",
        "huggingface.co collections list google/medgemma-27b-it (Image-Text-to-Text, 29B)",
        "arXiv 2507.05201",
    ),
    ZooModel(
        "lingshu-medical-mllm/Lingshu-7B",
        "Lingshu 7B",
        "qwen2_5_vl",
        "transformers",
        "Qwen/Qwen2.5-VL-7B-Instruct",
        "multi-stage medical SFT on curated captions/VQA/reasoning data, then RLVR (Lingshu-RL)",
        "Qwen2.5-VL chat template; image then question with MedEvalKit's per-benchmark instruction",
        "medevalkit",
        "MIT",
        "huggingface.co/collections/Alibaba-DAMO-Academy/lingshu-med",
        "arXiv 2506.07044 (figures use MedEvalKit with its GPT-4.1 judge: medevalkit-judge)",
        _figures(
            {
                "vqa-rad": 67.9,
                "slake": 83.1,
                "pathvqa": 61.9,
                "pmc-vqa": 56.3,
                "omnimedvqa": 82.9,
                "medxpertqa-mm": 26.7,
            },
            metric="accuracy (MedEvalKit, GPT-4.1 judge on open questions)",
            protocol="medevalkit-judge",
            source=LINGSHU_TABLE,
            seen_in=LINGSHU_SEEN,
        ),
    ),
    ZooModel(
        "lingshu-medical-mllm/Lingshu-32B",
        "Lingshu 32B",
        "qwen2_5_vl",
        "transformers",
        "Qwen/Qwen2.5-VL-32B-Instruct",
        "as Lingshu 7B",
        "as Lingshu 7B",
        "medevalkit",
        "MIT",
        "huggingface.co/collections/Alibaba-DAMO-Academy/lingshu-med",
        "arXiv 2506.07044",
    ),
    ZooModel(
        "FreedomIntelligence/HuatuoGPT-Vision-7B-hf",
        "HuatuoGPT-Vision 7B",
        "llava",
        "transformers",
        "Qwen2-7B with a CLIP encoder; this is the transformers-LLaVA conversion of "
        "FreedomIntelligence/HuatuoGPT-Vision-7B (custom llava_qwen2 class)",
        "two-stage LLaVA training on PubMedVision (1.3M medical VQA built from PubMed figures)",
        "LLaVA conversation turns, <image> then the question",
        "medlens",
        "Apache-2.0",
        "huggingface.co/collections/FreedomIntelligence/huatuogpt-vision "
        "(also -7B-hf, -34B, -7B-Qwen2.5VL)",
        "arXiv 2406.19280",
        _figures(
            {"vqa-rad": 63.7, "slake": 76.2, "pathvqa": 57.9, "pmc-vqa": 54.3, "omnimedvqa": 74.0},
            metric="accuracy",
            protocol=None,
            source=HUATUO_README,
            seen_in="the README at that commit (github.com/FreedomIntelligence/HuatuoGPT-Vision)",
            rule=HUATUO_RULE,
        ),
    ),
    ZooModel(
        "microsoft/llava-med-v1.5-mistral-7b",
        "LLaVA-Med v1.5",
        "llava_mistral",
        "convert",
        "Mistral-7B-Instruct with CLIP ViT-L/14 (LLaVA 1.5); config type llava_mistral is not "
        "a transformers class",
        "biomedical concept alignment on PMC-15M captions, then GPT-4 generated instruction data",
        "mistral_instruct conversation; <image> newline question; closed questions end "
        "'Please choose from the following two options: [yes, no]'",
        "llava-med",
        "Apache-2.0 (research use; see the model card)",
        "huggingface.co/microsoft/llava-med-v1.5-mistral-7b (tree and discussions pages)",
        "arXiv 2306.00890",
    ),
    ZooModel(
        "ZJU-AI4H/Hulu-Med-7B",
        "Hulu-Med 7B",
        "hulumed",
        "trust_remote_code",
        "Qwen2.5-7B with a SigLIP NaViT encoder (ZJU-AI4H/SigLip-NaViT)",
        "training on 16.7M public samples (text, 2D, 3D, video); evaluated with MedUniEval "
        "(built on MedEvalKit)",
        "its own chat template (chat_template.json in the repository)",
        "medevalkit",
        "Apache-2.0",
        "huggingface.co/ZJU-AI4H (4B, 7B, 14B, 32B)",
        "arXiv 2510.08668",
        _figures(
            {
                "omnimedvqa": 84.2,
                "pmc-vqa": 66.8,
                "vqa-rad": 78.0,
                "slake": 86.8,
                "pathvqa": 65.6,
                "medxpertqa-mm": 29.0,
            },
            metric="accuracy",
            protocol=None,
            source=HULU_MED_README,
            seen_in="the README at that commit (github.com/ZJUI-AI4H/Hulu-Med)",
            rule=HULU_MED_RULE,
        ),
    ),
    ZooModel(
        "yuxianglai117/Med-R1",
        "Med-R1",
        "qwen2_vl",
        "transformers",
        "Qwen/Qwen2-VL-2B-Instruct",
        "GRPO on OmniMedVQA, one checkpoint per modality or task (subfolders of the repository)",
        "Qwen2-VL chat; <think>...</think><answer>...</answer> output",
        "medlens",
        "see the repository (not stated on the card excerpt read)",
        "huggingface.co/yuxianglai117/Med-R1 (linked from the GitHub README)",
        "arXiv 2503.13939",
    ),
    ZooModel(
        "JZPeterPan/MedVLM-R1",
        "MedVLM-R1",
        "qwen2_vl",
        "transformers",
        "Qwen/Qwen2-VL-2B-Instruct",
        "GRPO on 600 MRI VQA samples (HuatuoGPT-Vision evaluation data)",
        "Qwen2-VL chat; multiple-choice 'A) ...' options; <think>/<answer> output",
        "medlens",
        "Apache-2.0",
        "huggingface.co/JZPeterPan/MedVLM-R1 (tree page)",
        "arXiv 2502.19634",
    ),
    ZooModel(
        "UbiquantAI/Fleming-VL-8B",
        "Fleming-VL 8B",
        "internvl_chat",
        "trust_remote_code",
        "OpenGVLab InternVL3-8B",
        "medical SFT then GRPO over 2D images, 3D volumes and video",
        "InternVL chat template with <image> placeholders",
        "medlens",
        "Apache-2.0",
        "huggingface.co/UbiquantAI/Fleming-VL-8B README (also listed as IQuestLab/Fleming-VL-8B)",
        "arXiv 2511.00916",
    ),
    ZooModel(
        "Luxuriant16/medrega",
        "MedRegA",
        "internvl_chat",
        "trust_remote_code",
        "OpenGVLab/InternVL-Chat-V1-2 (40B)",
        "region-centric instruction tuning on MedRegInstruct, bilingual",
        "InternVL chat template; regions as <box> coordinates",
        "medlens",
        "not stated on the card read",
        "huggingface.co/Luxuriant16/medrega (README)",
        "arXiv 2410.18387",
    ),
    ZooModel(
        "Qwen/Qwen2.5-VL-7B-Instruct",
        "Qwen2.5-VL 7B",
        "qwen2_5_vl",
        "transformers",
        "(general-domain base of Lingshu and many medical fine-tunes)",
        "general-domain pre-training and instruction tuning (Qwen team)",
        "Qwen2.5-VL chat template; system 'You are a helpful assistant.'",
        "lmms-eval",
        "Apache-2.0",
        "huggingface.co collection pages list Qwen/Qwen2.5-VL-7B-Instruct",
        "arXiv 2502.13923",
    ),
    ZooModel(
        "Qwen/Qwen2.5-VL-3B-Instruct",
        "Qwen2.5-VL 3B",
        "qwen2_5_vl",
        "transformers",
        "(general-domain base)",
        "as Qwen2.5-VL 7B",
        "as Qwen2.5-VL 7B",
        "lmms-eval",
        "Qwen Research licence (see the card)",
        "",
        "arXiv 2502.13923",
    ),
)

MODELS: Registry[ZooModel] = Registry("zoo model")
for _model in ZOO:
    MODELS.register(_model.hub_id, _model)


def get_model(hub_id: str) -> ZooModel:
    """The zoo entry for ``hub_id`` ("did you mean" for near misses)."""
    return MODELS.get(hub_id)


def find_model(model: str | None) -> ZooModel | None:
    """The zoo entry a ``--model`` value names, or None (a local path or URL, a baseline)."""
    return MODELS.get(model) if model and model in MODELS else None


def published(
    model: str | None, benchmark: str, protocols: Sequence[str] = ()
) -> list[PublishedFigure]:
    """The figures published for ``model`` on ``benchmark`` (under ``protocols`` if given)."""
    entry = find_model(model)
    if entry is None:
        return []
    return [
        f
        for f in entry.figures
        if f.benchmark == benchmark and (not protocols or f.protocol in protocols)
    ]


def published_line(figure: PublishedFigure, run_value: float | None) -> str:
    """ "published 72.3 (source, protocol) · this run 70.1 (same protocol)"; a figure no
    protocol reproduces is printed with its rule and nothing beside it."""
    seen = "" if figure.seen_in else ", not confirmed here"
    head = f"published {100 * figure.value:.1f} {figure.metric} ({figure.source}; {figure.split}"
    if figure.protocol is None:
        return (
            f"{head}; {figure.rule}{seen}) · this run: not comparable (no medlens protocol "
            "reproduces that rule)"
        )
    ours = "–" if run_value is None else f"{100 * run_value:.1f}"
    return f"{head}; protocol {figure.protocol}{seen}) · this run {ours} (same protocol)"


def beside_run(
    model: str, benchmark: str, headline: Mapping[str, Mapping[str, Estimate]]
) -> list[dict[str, Any]]:
    """The published figures for a run of ``model`` on ``benchmark``, each with the run's
    ``overall`` under the figure's protocol (``headline``: protocol → metric → estimate, as
    ``RunSummary.headline`` gives it) and the line ``published_line`` prints."""
    out = []
    for figure in published(model, benchmark):
        if figure.protocol is not None and figure.protocol not in headline:
            continue
        overall = headline[figure.protocol].get("overall") if figure.protocol else None
        value = overall.value if overall is not None and overall.n else None
        out.append(
            {
                **dataclasses.asdict(figure),
                "run_value": value,
                "line": published_line(figure, value),
            }
        )
    return out


def format_figures(models: Sequence[ZooModel]) -> str:
    """The published figures of ``models``, one line each ("" when there are none)."""
    lines = []
    for m in models:
        for f in m.figures:
            seen = f"seen in {f.seen_in}" if f.seen_in else "not confirmed here"
            rule = f.protocol or f"no medlens protocol: {f.rule}"
            lines.append(
                f"  {m.hub_id} {f.benchmark} {f.split}: {100 * f.value:.1f} {f.metric} "
                f"[{rule}] — {f.source} ({seen})"
            )
    return "published figures:\n" + "\n".join(lines) if lines else ""


def format_zoo(models: Sequence[ZooModel] = ZOO) -> str:
    """The zoo as a plain-text table, then each model's published figures."""
    lines = [f"{'model':<40} {'family':<14} {'backend':<17} {'prompt':<11} {'licence':<24} hub"]
    for m in models:
        hub = "seen" if m.hub_verified else "NOT CONFIRMED"
        lines.append(
            f"{m.hub_id:<40} {m.family:<14} {m.backend:<17} {m.prompt_preset:<11} "
            f"{m.license[:24]:<24} {hub}"
        )
    figures = format_figures(models)
    if figures:
        lines += ["", figures]
    lines.append("")
    lines.extend(f"backend {k}: {v}" for k, v in BACKEND_PATHS.items())
    return "\n".join(lines)


__all__ = [
    "MODELS",
    "ZOO",
    "PublishedFigure",
    "ZooModel",
    "beside_run",
    "find_model",
    "format_figures",
    "format_zoo",
    "get_model",
    "published",
    "published_line",
]
