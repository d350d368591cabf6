"""Where medlens reads its environment: one module, one rule — an empty variable means unset.

The library reads these variables and never writes any (``os.environ`` is the user's). Every
one is listed in ``ENVIRONMENT`` and in the README's table, which a test keeps equal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Variable:
    """One environment variable medlens reads."""

    name: str
    meaning: str
    default: str
    also: tuple[str, ...] = ()
    """Other spellings read when ``name`` is unset (``https_proxy``, as curl and requests)."""


ENVIRONMENT = (
    Variable(
        "MEDLENS_HOME",
        "where run stores, calibration profiles, the project key, API keys, caches and "
        "downloaded datasets live",
        "`~/.medlens`",
    ),
    Variable(
        "MEDLENS_DATA", "folder holding original benchmark releases (`--data-dir`)", "the Hub"
    ),
    Variable(
        "MEDLENS_PROJECT_KEY",
        "the key behind every de-identification pseudonym (keep it secret, keep it stable)",
        "random, in `$MEDLENS_HOME/project.key`",
    ),
    Variable("MEDLENS_MAX_PIXELS", "cap on the pixels of one study", "about 3×10⁸"),
    Variable(
        "MEDLENS_OPENAI_BASE_URL",
        "OpenAI-compatible server for `--backend openai` (then `OPENAI_BASE_URL`)",
        "none",
    ),
    Variable("OPENAI_BASE_URL", "as `MEDLENS_OPENAI_BASE_URL`, the OpenAI clients' name", "none"),
    Variable(
        "MEDLENS_OPENAI_API_KEY", "API key sent to that server (then `OPENAI_API_KEY`)", "none"
    ),
    Variable("OPENAI_API_KEY", "as `MEDLENS_OPENAI_API_KEY`, the OpenAI clients' name", "none"),
    Variable(
        "MEDLENS_PACS_AUTH_FILE", "credentials file for DICOMweb PACS (`--auth-file`)", "none"
    ),
    Variable("MEDLENS_PACS_TOKEN", "bearer token for the PACS", "none"),
    Variable("MEDLENS_PACS_USER", "basic-auth user for the PACS", "none"),
    Variable("MEDLENS_PACS_PASSWORD", "basic-auth password for the PACS", "none"),
    Variable("MEDLENS_PACS_TIMEOUT", "PACS request time-out, seconds", "the reader's own"),
    Variable("MEDLENS_PACS_RETRIES", "PACS request retries", "the reader's own"),
    Variable(
        "TESSDATA_PREFIX", "folder of Tesseract's language data (OCR redaction)", "Tesseract's own"
    ),
    Variable(
        "HF_HUB_OFFLINE",
        "`1`: use the Hugging Face cache only, never wait for the Hub (huggingface_hub's own)",
        "online",
    ),
    Variable("TRANSFORMERS_OFFLINE", "as `HF_HUB_OFFLINE`, transformers' older name", "online"),
    Variable("HF_DATASETS_OFFLINE", "as `HF_HUB_OFFLINE`, for datasets", "online"),
    Variable(
        "HF_ENDPOINT",
        "the Hugging Face Hub medlens checks is reachable",
        "`https://huggingface.co`",
    ),
    Variable(
        "HTTPS_PROXY",
        "proxy through which the Hub is reached (also `https_proxy`)",
        "none",
        also=("https_proxy",),
    ),
)
"""Every variable medlens reads, in the README's order."""

_VARIABLES = {v.name: v for v in ENVIRONMENT}


def env(name: str) -> str | None:
    """The value of ``name`` (else of its other spellings), stripped, or None when it is unset
    or empty."""
    variable = _VARIABLES.get(name)
    if variable is None:
        raise KeyError(f"{name} is not a medlens environment variable (config.ENVIRONMENT)")
    for spelling in (name, *variable.also):
        value = os.environ.get(spelling, "").strip()
        if value:
            return value
    return None


def home_dir() -> Path:
    """``$MEDLENS_HOME``, else ``~/.medlens``: run stores, profiles, keys, caches."""
    value = env("MEDLENS_HOME")
    return Path(value) if value else Path.home() / ".medlens"


def data_dir(given: str | os.PathLike[str] | None = None) -> Path | None:
    """``given`` (``--data-dir``), else ``$MEDLENS_DATA``, else None (load from the Hub)."""
    value = given or env("MEDLENS_DATA")
    return Path(value) if value else None
