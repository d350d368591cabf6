"""The backend protocol and registry.

A backend turns ``Request`` objects into ``Generation`` objects and nothing else: it does not
parse answers (medlens.tasks does) nor load studies (medlens.study does). Implementations:

- ``transformers``: an in-process Hugging Face model (``AutoModelForImageTextToText``);
- ``openai``: any OpenAI-compatible HTTP server (vLLM, SGLang, Ollama, ``transformers serve``);
- ``openai-pool``: several such servers of one model, least-loaded with health checks;
- ``prior`` / ``no-image`` / ``random``: weightless baselines every honest evaluation reports;
- ``scripted``: answers fixed in advance, shipped for users' own tests (as httpx ships a mock
  transport).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from medlens.registry import Registry
from medlens.types import Generation, Request


@runtime_checkable
class Backend(Protocol):
    """What every backend provides.

    ``remote`` backends send data off this process: the pipeline refuses to give them a
    request that is not de-identified unless they were built to ``allow_identified`` (what
    ``--no-deid`` does; local backends set it False). ``supports_scoring`` backends fill
    ``Generation.candidate_logprobs`` when ``options.score_candidates`` is set.
    ``view_size`` is the longest image side, in pixels, the model takes (its processor's
    resize), or None where it is not known: grounding views are rendered no larger, so that
    the coordinate frame the template states is the image the model sees.
    """

    name: ClassVar[str]
    remote: ClassVar[bool]
    allow_identified: bool
    supports_scoring: ClassVar[bool]
    model_id: str
    view_size: int | None

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        """One generation per request, in order. A request that fails alone yields a
        ``Generation`` with ``finish_reason="error"`` and ``error`` set, so a batch is never
        lost for one bad item; failures of the whole backend raise ``BackendError``."""
        ...

    def close(self) -> None:
        """Release weights, connections and threads."""
        ...


BackendFactory = Callable[..., Backend]

BACKENDS: Registry[BackendFactory] = Registry("backend")
BACKENDS.register("transformers", "medlens.backends.transformers:TransformersBackend")
BACKENDS.register("openai", "medlens.backends.openai:OpenAIBackend")
BACKENDS.register("openai-pool", "medlens.backends.pool:UpstreamPool")
BACKENDS.register("prior", "medlens.backends.baseline:PriorBackend")
BACKENDS.register("no-image", "medlens.backends.baseline:NoImageBackend")
BACKENDS.register("random", "medlens.backends.baseline:RandomBackend")
BACKENDS.register("scripted", "medlens.backends.scripted:ScriptedBackend")

BASELINES = ("prior", "no-image", "random")
SHIPPED_PRIOR = Path(__file__).resolve().parent / "priors" / "vqa-rad-train.json"
"""The prior baseline's answer counts, fitted on VQA-RAD train (CC0) without the rows that
leak test questions; shipped so that ``--model prior`` needs no data."""


def infer_backend_name(model: str) -> str:
    """``prior``/``no-image``/``random`` are baselines, ``http(s)://`` URLs are OpenAI-compatible
    servers (several, comma-separated: a pool of them), anything else (a Hub id or a local
    path) is loaded in-process by transformers."""
    if model.lower() in BASELINES:
        return model.lower()
    if model.startswith(("http://", "https://")):
        return "openai-pool" if "," in model else "openai"
    return "transformers"


def load_backend(model: str, backend: str | None = None, **options: Any) -> Backend:
    """Build the backend that serves ``model``; ``backend`` overrides the inferred kind. The
    ``prior`` baseline gets the answer counts shipped with medlens (VQA-RAD train,
    ``SHIPPED_PRIOR``) unless ``prior=`` says otherwise, so that ``medlens ask
    --model prior`` answers as the fitted baseline that evaluations and profiles use."""
    name = backend or infer_backend_name(model)
    factory = BACKENDS.get(name)
    if name == "prior" and "prior" not in options:
        options["prior"] = SHIPPED_PRIOR
    return factory(model, **options)


def options_for(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``options`` backend ``name`` takes (its constructor's keywords), without the unset
    (None) ones: options shared by several commands (``device`` for transformers,
    ``served_model`` for openai) go where they apply, without a branch per backend name."""
    import inspect

    accepted = inspect.signature(BACKENDS.get(name)).parameters
    return {k: v for k, v in options.items() if k in accepted and v is not None}


BASELINE_LABEL = "baseline"
DEMONSTRATION_LABEL = "demonstration model"
USER_LABEL = "user model"
DEMONSTRATION_MODELS = ("medlens-tiny*", "*/medlens-tiny*")
"""Model ids (``fnmatch``) of the demonstration models medlens ships: small, trained here on
public data to show the workflow, never for clinical use."""


def model_label(model_id: str, backend_name: str) -> str:
    """What kind of model answered, as every answer is labelled: ``baseline`` (answers
    without a model: prior, no-image, random), ``demonstration model`` (shipped by medlens)
    or ``user model`` (anything the user brought)."""
    import fnmatch

    if backend_name in BASELINES or model_id.startswith("baseline:"):
        return BASELINE_LABEL
    name = model_id.lower().rstrip("/")
    if any(fnmatch.fnmatch(name, pattern) for pattern in DEMONSTRATION_MODELS):
        return DEMONSTRATION_LABEL
    return USER_LABEL


def model_note(model_id: str) -> str:
    """The sentence that says what a shipped model is (empty for any other model), shown
    beside its label wherever it answers."""
    from medlens.hub import shipped_model

    shipped = shipped_model(model_id)
    return "" if shipped is None else shipped.description
