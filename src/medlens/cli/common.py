"""Options shared by several commands (model selection, de-identification, decoding)."""

from __future__ import annotations

import argparse
import re
from typing import Any


def probability(text: str) -> float:
    """An argparse type for thresholds on a confidence: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(
            f"{text} is not a confidence: give a value between 0 and 1 (e.g. 0.7)"
        )
    return value


def plain_help(text: str | None) -> str | None:
    """Docstrings double as ``--help`` text: drop reStructuredText's double backticks."""
    return None if text is None else re.sub(r"``([^`]+)``", r"\1", text)


def clean_help(parser: argparse.ArgumentParser) -> None:
    """``plain_help`` on a parser's description, epilog and every option's help."""
    parser.description = plain_help(parser.description)
    parser.epilog = plain_help(parser.epilog)
    for action in parser._actions:
        action.help = plain_help(action.help)


def add_model_options(
    parser: argparse.ArgumentParser, *, required: bool = True, scores_by_default: bool = False
) -> None:
    """The model and decoding flags. ``scores_by_default`` (ask, calibrate, serve, demo):
    closed and multiple-choice questions score their candidates unless ``--generate``;
    elsewhere (eval: benchmarks generate, as their published protocols do) only with
    ``--score-candidates``."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        required=required,
        help="a Hugging Face id or local path (in-process), an http(s):// URL of an "
        "OpenAI-compatible server (several, comma-separated: least-loaded with health "
        "checks), or a baseline: prior, no-image, random",
    )
    group.add_argument(
        "--backend",
        help="force a backend: transformers, openai, openai-pool, prior, no-image, random, "
        "scripted",
    )
    group.add_argument("--device", default="auto", help="transformers: cpu, cuda, cuda:1, auto")
    group.add_argument("--dtype", default="auto", help="transformers: float32, bfloat16, auto")
    group.add_argument("--served-model", help="openai: the model name the server expects")
    group.add_argument(
        "--max-new-tokens", type=int, help="generation budget (default: the task's own)"
    )
    group.add_argument("--temperature", type=float, help="0 = greedy (the default)")
    group.add_argument("--seed", type=int)
    if not scores_by_default:
        group.add_argument(
            "--score-candidates",
            action="store_true",
            help="closed/multiple-choice: score each candidate's likelihood instead of "
            "generating (gives every answer a confidence)",
        )
        return
    mode = group.add_mutually_exclusive_group()
    mode.add_argument(
        "--generate",
        action="store_true",
        help="closed/multiple-choice: generate the answer as text instead of scoring each "
        "candidate's likelihood (the default where the model can score: it gives the answer "
        "a confidence)",
    )
    mode.add_argument(
        "--score-candidates", action="store_true", help="the default; kept for scripts"
    )


HARNESSES: dict[str, tuple[str, str]] = {
    "medlens": ("medlens", "medlens"),
    "lmms-eval": ("lmms-eval", "lmms-eval"),
    "medevalkit": ("medevalkit", "medevalkit"),
    "llava-med": ("llava-med", "llava-med"),
    "medgemma": ("medgemma", "medgemma-card"),
}
"""Harness → (prompt preset, scoring protocol): one flag reproduces a harness end to end.
Spelled out here so that ``--help`` imports neither medlens.tasks nor medlens.bench; a test
holds both names to their registries."""


def add_prompt_options(parser: argparse.ArgumentParser, *, scoring: bool = True) -> None:
    group = parser.add_argument_group("harness")
    group.add_argument(
        "--harness",
        choices=sorted(HARNESSES),
        help="reproduce a harness: its prompt preset"
        + (" and its scoring protocol" if scoring else "")
        + " ("
        + ", ".join(f"{h}: {p}+{s}" if scoring else f"{h}: {p}" for h, (p, s) in HARNESSES.items())
        + ")",
    )
    group.add_argument(
        "--prompt",
        metavar="PRESET",
        help="prompt preset alone: medlens (default), lmms-eval, medevalkit, llava-med, "
        "medgemma (see medlens.tasks.presets)",
    )


def prompt_from_args(args: argparse.Namespace) -> str | None:
    """The prompt preset the flags choose: ``--prompt``, else the harness's, else None.
    An unknown name fails here, before any model loads."""
    from medlens.tasks.presets import get_preset

    harness = getattr(args, "harness", None)
    name = getattr(args, "prompt", None) or (HARNESSES[harness][0] if harness else None)
    return None if name is None else get_preset(str(name)).name


def protocols_from_args(args: argparse.Namespace, given: tuple[str, ...]) -> tuple[str, ...]:
    """``--protocol`` when given, else the harness's protocol, else () (every protocol)."""
    harness = getattr(args, "harness", None)
    return given or ((HARNESSES[harness][1],) if harness else ())


def add_judge_options(parser: argparse._ActionsContainer, *, also: str) -> None:
    """``--judge`` / ``--judge-backend``: the LLM judge of ``medevalkit-judge`` (``also``:
    what else the command does with it)."""
    parser.add_argument(
        "--judge",
        metavar="URL_OR_ID",
        help="an LLM judge: an OpenAI-compatible server URL or a model id. medevalkit-judge "
        f"grades open answers with it (MedEvalKit's prompt, verdicts cached in the run store); {also}",
    )
    parser.add_argument("--judge-backend", help="backend for the judge model (default: inferred)")


def add_privacy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-deid",
        action="store_true",
        help="do NOT de-identify studies and questions (only for data you may share as is)",
    )


def backend_options(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The backend the flags name and the options it takes (each flag goes to the backends
    that take it): what ``load_backend`` gets here, and each replica of ``eval --engine ray``."""
    from medlens.backends.base import infer_backend_name, options_for

    name = args.backend or infer_backend_name(args.model)
    flags = {
        "device": args.device,
        "dtype": args.dtype,
        "served_model": args.served_model or None,
        "allow_identified": bool(getattr(args, "no_deid", False)),
    }
    return name, options_for(name, flags)


def backend_from_args(args: argparse.Namespace) -> Any:
    """Load the backend the flags name, in this process."""
    from medlens.backends.base import load_backend

    name, options = backend_options(args)
    return load_backend(args.model, backend=name, **options)


def generation_options(args: argparse.Namespace) -> Any:
    """Decoding settings from the flags, or None for each task's own defaults. ``ask``,
    ``eval``, ``calibrate`` and ``demo`` all decode through this, so that a calibration
    profile fitted by one fits the others (its fingerprint includes these settings)."""
    from medlens.types import GenerationOptions

    flags = (args.max_new_tokens, args.temperature, args.seed)
    scores_by_default = hasattr(args, "generate")  # then pipeline.ask's candidate_scoring
    if all(v is None for v in flags) and (not args.score_candidates or scores_by_default):
        return None
    return GenerationOptions(
        max_new_tokens=args.max_new_tokens or GenerationOptions.max_new_tokens,
        temperature=args.temperature or 0.0,
        seed=args.seed,
        score_candidates=args.score_candidates,
    )


def candidate_scoring(args: argparse.Namespace) -> bool:
    """Whether closed/choice questions score their candidates (``pipeline.ask``'s
    ``candidate_scoring``): the default of the commands with ``--generate``, which opts out."""
    return bool(args.score_candidates) or not getattr(args, "generate", True)
