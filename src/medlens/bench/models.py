"""The model zoo: medical VLMs of the literature, how to run them, and what they published.

Each entry says where the weights are (the Hugging Face id, and whether that id was confirmed
against a public page of the Hub when the entry was written), which backend path runs them in
medlens, the recipe and prompt format they were trained with, their licence, and the figures
their authors published per benchmark, with the source, split and the medlens protocol that
reproduces the published rule. ``medlens eval --model ID`` and the report print a published
figure beside the run's figure under the same protocol, so a reproduction is judged on equal
terms ("published 72.3 (card, medgemma-card) · this run 70.1 (same protocol)").

Figures are recorded only where a source was read for them; ``seen_in`` says where, and
``unverified`` says what was looked for and not recorded, and why. A model without figures is
listed so that it can be run, not compared. A figure on other rows than medlens scores (VQA-RAD's
"balanced split", an unstated MMMU split) or under a rule no protocol reproduces has no
protocol: it is shown, never set beside a run. Rows a paper publishes for other authors' models
(the Lingshu table's MedEvalKit runs of LLaVA-Med or MedVLM-R1) say so in ``source``.

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
    unverified: tuple[str, ...] = ()
    """Figures looked for and not recorded, each with why (no readable source, another set of
    rows, a checkpoint the source does not name)."""


MEDGEMMA_CARD = "google/medgemma-4b-it model card, 'Multimodal performance' table"
MEDGEMMA_15_CARD = (
    "google/medgemma-1.5-4b-it model card, 'Imaging evaluations' table, column 'MedGemma 1 "
    "27B' (its multimodal results)"
)
MEDGEMMA_15_SEEN = (
    "a verbatim copy of that card (README.md with its Hub front matter) in the public GitHub "
    "code index; its MedGemma 1 4B column repeats the 4B card's 72.3 and 49.9"
)
MEDGEMMA_VQA_RAD_RULE = (
    "the card's tokenized F1 (the medgemma-card rule) on VQA-RAD's 'balanced split' of Yang "
    "et al. 2024 (arXiv 2405.03162), as the card's footnote says: not the MEVF test split "
    "medlens scores"
)
HULU_MED_README = "ZJUI-AI4H/Hulu-Med README @03276e5, 'Medical Multimodal Benchmarks' table"
HULU_MED_RULE = (
    "the authors' own harness (MedUniEval, built on MedEvalKit); the README does not say "
    "whether open questions went to the rule path or an LLM judge"
)
LINGSHU_TABLE = (
    "arXiv 2506.07044 (Lingshu), medical multimodal VQA table: the Lingshu authors' MedEvalKit runs"
)
LINGSHU_SEEN = (
    "the table as its authors publish it: alibaba-damo-academy/lingshu@1ff31d8 table6.png (the "
    "project page) and alibaba-damo-academy/MedEvalKit@9b12e3b assets/mm_eval.png (its "
    "README), which agree"
)
"""Lingshu-32B's row: 76.5 VQA-RAD, 89.2 SLAKE, 65.9 PathVQA in both of its authors' copies
(and in Fleming-VL's table, which repeats it); the Hulu-Med README's comparison row says 76.7,
86.7 and 65.5. The authors' table is the one recorded: it is the model's authors' own, two of
their repositories carry it, and its Avg. (66.6) is the mean of its seven columns. The Hub
model cards carry the same table, but only its first rows could be read here (in a mirror of
the 7B card; they match)."""
MEDEVALKIT_TABLE = (
    "MedEvalKit README, 'MultiModal Eval Results' table: the Lingshu authors' MedEvalKit runs "
    "of other models"
)
MEDEVALKIT_SEEN = "alibaba-damo-academy/MedEvalKit@9b12e3b assets/mm_eval.png"
MEDEVALKIT_METRIC = "accuracy (MedEvalKit, GPT-4.1 judge on open questions)"
MMMU_RULE = (
    "MedEvalKit, as the other columns; the table does not say whether MMMU-Med is MMMU's "
    "validation or test split (MedEvalKit runs both), so no run is set beside it"
)
HUATUO_README = (
    "FreedomIntelligence/HuatuoGPT-Vision README @a6476ac, 'Performance of Medical "
    "Multimodal' table (for FreedomIntelligence/HuatuoGPT-Vision-7B, of which -7B-hf is the "
    "transformers conversion)"
)
HUATUO_RULE = (
    "the authors' own evaluation (arXiv 2406.19280); the README does not name the rule, and "
    "no medlens protocol is known to reproduce it"
)
FLEMING_README = "UbiquantAI/Fleming-VL README @e1f55b3, images/vqa.png ('General Medical VQA')"
FLEMING_RULE = (
    "the authors' own evaluation (arXiv 2511.00916); the README names neither the rule nor a "
    "judge, and its other rows repeat the Lingshu table's MedEvalKit figures"
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


def _medevalkit_row(
    values: Mapping[str, float], source: str, seen_in: str
) -> tuple[PublishedFigure, ...]:
    """A row of a MedEvalKit table (Lingshu's authors'): ``medevalkit-judge`` on the test
    splits, MMMU-Med (split unstated) kept apart as not comparable."""
    rest = {b: v for b, v in values.items() if b != "mmmu-med"}
    row = _figures(
        rest,
        metric=MEDEVALKIT_METRIC,
        protocol="medevalkit-judge",
        source=source,
        seen_in=seen_in,
    )
    if "mmmu-med" not in values:
        return row
    mmmu = PublishedFigure(
        "mmmu-med",
        "validation or test (not stated)",
        MEDEVALKIT_METRIC,
        values["mmmu-med"] / 100,
        None,
        source,
        seen_in,
        MMMU_RULE,
    )
    return (mmmu, *row)


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
                "balanced split (Yang et al. 2024)",
                "tokenized F1",
                0.499,
                None,
                MEDGEMMA_CARD,
                "llm-stats benchmark data citing the card (self-reported); the split is the "
                "card's footnote, read in a copy of its text",
                MEDGEMMA_VQA_RAD_RULE,
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
        (
            PublishedFigure(
                "slake",
                "test (English)",
                "tokenized F1",
                0.703,
                "medgemma-card",
                MEDGEMMA_15_CARD,
                MEDGEMMA_15_SEEN,
            ),
            PublishedFigure(
                "vqa-rad",
                "balanced split (Yang et al. 2024)",
                "tokenized F1",
                0.467,
                None,
                MEDGEMMA_15_CARD,
                MEDGEMMA_15_SEEN,
                MEDGEMMA_VQA_RAD_RULE,
            ),
            *_medevalkit_row(
                {
                    "mmmu-med": 56.2,
                    "vqa-rad": 62.3,
                    "slake": 74.9,
                    "pathvqa": 44.4,
                    "pmc-vqa": 49.5,
                    "omnimedvqa": 66.3,
                    "medxpertqa-mm": 33.9,
                },
                MEDEVALKIT_TABLE,
                MEDEVALKIT_SEEN,
            ),
        ),
        (
            (
                "medxpertqa-mm: the card's 26.8 is MedXpertQA's text and multimodal questions "
                "together, not the multimodal subset medlens scores"
            ),
        ),
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
        _medevalkit_row(
            {
                "mmmu-med": 54.0,
                "vqa-rad": 67.9,
                "slake": 83.1,
                "pathvqa": 61.9,
                "pmc-vqa": 56.3,
                "omnimedvqa": 82.9,
                "medxpertqa-mm": 26.7,
            },
            LINGSHU_TABLE,
            LINGSHU_SEEN,
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
        _medevalkit_row(
            {
                "mmmu-med": 62.3,
                "vqa-rad": 76.5,
                "slake": 89.2,
                "pathvqa": 65.9,
                "pmc-vqa": 57.9,
                "omnimedvqa": 83.4,
                "medxpertqa-mm": 30.9,
            },
            LINGSHU_TABLE,
            LINGSHU_SEEN,
        ),
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
        _medevalkit_row(
            {
                "mmmu-med": 29.3,
                "vqa-rad": 53.7,
                "slake": 48.0,
                "pathvqa": 38.8,
                "pmc-vqa": 30.5,
                "omnimedvqa": 44.3,
                "medxpertqa-mm": 20.3,
            },
            LINGSHU_TABLE + " (row 'LLaVA-Med-7B')",
            LINGSHU_SEEN + "; MedEvalKit@9b12e3b models/LLava_Med/LLava_Med_hf.py loads "
            "llava-med-v1.5-mistral-7b",
        ),
        (
            (
                "LLaVA-Med's own figures: its v1.5 table (docs/llava_med_performance.md @d406e3f) "
                "is an image of GPT-4-judged chat scores, no medlens benchmark; the paper's VQA-RAD, "
                "SLAKE and PathVQA tables are v1.0 models fine-tuned per dataset, not this "
                "checkpoint"
            ),
        ),
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
        unverified=(
            (
                "its own figures (README @88d76c7, Images/think_nothink.png; the paper) are "
                "accuracies of one checkpoint per modality or question type on the authors' own "
                "OmniMedVQA splits (Splits/), and the README shows them only as think-vs-no-think "
                "differences: no figure for a medlens benchmark's rows"
            ),
            (
                "the Lingshu and Fleming-VL tables' 'Med-R1-2B' row does not say which of the "
                "repository's checkpoints was run (its footnote mark is not explained in the table "
                "image)"
            ),
        ),
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
        _medevalkit_row(
            {
                "mmmu-med": 35.2,
                "vqa-rad": 48.6,
                "slake": 56.0,
                "pathvqa": 32.5,
                "pmc-vqa": 47.6,
                "omnimedvqa": 77.7,
                "medxpertqa-mm": 20.4,
            },
            LINGSHU_TABLE + " (row 'MedVLM-R1-2B')",
            LINGSHU_SEEN,
        ),
        (
            (
                "its authors' figures (arXiv 2502.19634: 78.22% over MRI, CT and X-ray) are on "
                "their own 300-per-modality set (JZPeterPan/MedVLM-R1@2eee421 "
                "MRI_CT_XRAY_300each_dataset.json), no medlens benchmark's rows"
            ),
        ),
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
        _figures(
            {"omnimedvqa": 89.1, "pmc-vqa": 64.3, "pathvqa": 62.9, "slake": 86.5, "vqa-rad": 66.1},
            metric="accuracy",
            protocol=None,
            source=FLEMING_README,
            seen_in="the image at that commit (github.com/UbiquantAI/Fleming-VL)",
            rule=FLEMING_RULE,
        ),
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
        unverified=(
            (
                "the README (xmed-lab/MedRegA@dfdb0db) has no results table and the project "
                "page (medrega/medrega.github.io@fefd475 static/images/radar.png) shows SLAKE "
                "only as a radar chart with no value; the paper's VQA tables (arXiv "
                "2410.18387) could not be read here, and no copy of them was found"
            ),
        ),
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
        _medevalkit_row(
            {
                "mmmu-med": 50.6,
                "vqa-rad": 64.5,
                "slake": 67.2,
                "pathvqa": 44.1,
                "pmc-vqa": 51.9,
                "omnimedvqa": 63.6,
                "medxpertqa-mm": 22.3,
            },
            LINGSHU_TABLE + " (row 'Qwen2.5VL-7B')",
            LINGSHU_SEEN,
        ),
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
        unverified=(
            (
                "no medical-benchmark figure was found for the 3B: the Lingshu, MedEvalKit and "
                "Fleming-VL tables read here list Qwen2.5-VL at 7B and 32B only"
            ),
        ),
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
            "reproduces that rule on those rows)"
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
    """The published figures of ``models``, one line each, then what could not be verified
    ("" when there is neither)."""
    lines = []
    for m in models:
        for f in m.figures:
            seen = f"seen in {f.seen_in}" if f.seen_in else "not confirmed here"
            rule = f.protocol or f"no medlens protocol: {f.rule}"
            lines.append(
                f"  {m.hub_id} {f.benchmark} {f.split}: {100 * f.value:.1f} {f.metric} "
                f"[{rule}] — {f.source} ({seen})"
            )
    missing = [f"  {m.hub_id}: {why}" for m in models for why in m.unverified]
    parts = [("published figures:", lines), ("not verified, so not recorded:", missing)]
    return "\n".join(title + "\n" + "\n".join(rows) for title, rows in parts if rows)


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
