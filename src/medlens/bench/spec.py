"""What an evaluation was asked to do (``EvalSpec``), checked when it is made, and how its
benchmarks' studies are de-identified (``pixel_policy``).

**Pixels as published.** A benchmark its publisher de-identified
(``Benchmark.deidentified_release``) is de-identified with ``DeidPolicy(ocr="never")``: headers
and question text are still scrubbed, but no OCR redaction changes the images the literature
scored (``deid_ocr`` overrides; ``deidentify=False`` turns everything off).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from medlens.bench.treatments import canonical_probes
from medlens.errors import ConfigError
from medlens.types import GenerationOptions

if TYPE_CHECKING:
    from medlens.bench.benchmark import Benchmark
    from medlens.privacy import DeidPolicy
    from medlens.privacy.policy import OcrMode

OCR_MODES = ("auto", "always", "never")


@dataclass(frozen=True)
class EvalSpec:
    """What ``medlens eval`` was asked to do."""

    benchmarks: tuple[str, ...]
    model: str
    backend: str | None = None
    """None: inferred from ``model`` (``backends.base.infer_backend_name``)."""
    split: str = "test"
    limit: int | None = None
    batch_size: int = 8
    data_dir: str | None = None
    protocols: tuple[str, ...] = ()
    """Empty: every protocol registered."""
    baselines: bool = True
    deidentify: bool = True
    deid_ocr: str | None = None
    """OCR redaction of pixels ("auto", "always", "never"); None: "never" for a
    publisher-de-identified release, else "auto" (``pixel_policy``)."""
    options: GenerationOptions | None = None
    """Decoding options; None lets each task choose its defaults."""
    prompt: str | None = None
    """Prompt preset (``medlens.tasks.presets``: lmms-eval, medevalkit, llava-med, medgemma);
    None: medlens's own templates."""
    seed: int = 0
    """Seed of the random baseline."""
    calibration: str | None = None
    """Calibration profile (name or path) applied to the model's answers of its task."""
    abstain_below: float | None = None
    """Abstain below this confidence (default: the calibration profile's threshold)."""
    sanity: tuple[str, ...] = ()
    """Sanity checks run beside the model (``treatments.SANITY_CHECKS``), stored canonical."""
    shifts: tuple[str, ...] = ()
    """Robustness shifts (image probes and question shifts of ``medlens.trust.probes``, as
    ``"jpeg:quality=10"``), stored canonical."""
    judge: str | None = None
    """An LLM judge (OpenAI-compatible server URL or model id) for the protocols that grade
    open answers with one (``medevalkit-judge``); with it, that protocol is scored too."""
    judge_backend: str | None = None
    """Backend of the judge (None: inferred from ``judge``)."""
    engine: str = "local"
    """Where generation runs (``medlens.bench.engines``); not part of any run's identity,
    since every engine stores the same results."""
    studies: str | None = None
    """A list of the user's studies with questions (``benchmarks.studies``), evaluated in
    place of ``benchmarks``, which then holds the list's stored name."""

    def __post_init__(self) -> None:
        if self.studies is not None:
            from medlens.bench.benchmarks.studies import list_name

            if self.benchmarks:
                raise ConfigError(
                    "--studies evaluates a list of studies in place of benchmarks: give "
                    "benchmark names or --studies FILE, not both."
                )
            object.__setattr__(self, "benchmarks", (list_name(self.studies),))
        if not self.benchmarks:
            raise ConfigError(
                "Name at least one benchmark, e.g. 'medlens eval vqa-rad ...', or a list of "
                "studies: 'medlens eval --studies FILE ...'."
            )
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be 1 or more, not {self.batch_size}.")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be 1 or more, not {self.limit}.")
        if self.prompt is not None:  # an unknown preset fails before any model loads
            from medlens.tasks.presets import get_preset

            object.__setattr__(self, "prompt", get_preset(self.prompt).name)
        object.__setattr__(self, "sanity", canonical_probes(self.sanity, "sanity"))
        object.__setattr__(self, "shifts", canonical_probes(self.shifts, "shift"))
        if self.deid_ocr is not None and self.deid_ocr not in OCR_MODES:
            raise ConfigError(
                f"--deid-ocr must be one of {', '.join(OCR_MODES)}, not '{self.deid_ocr}'."
            )
        if self.abstain_below is not None and not 0.0 <= self.abstain_below <= 1.0:
            raise ConfigError(
                f"--abstain-below is a confidence between 0 and 1, not {self.abstain_below}."
            )
        from medlens.bench.engines import ENGINES

        ENGINES.get(self.engine)  # unknown names fail here, before any benchmark loads
        if self.deid_ocr is not None and not self.deidentify:
            raise ConfigError(
                "--deid-ocr chooses how studies are de-identified, and --no-deid turns "
                "de-identification off; give one of them."
            )

    @property
    def backend_name(self) -> str:
        from medlens.backends.base import infer_backend_name

        return self.backend or infer_backend_name(self.model)


def pixel_policy(
    spec: EvalSpec, bench: Benchmark | None
) -> tuple[bool | DeidPolicy, dict[str, Any]]:
    """What ``pipeline.prepare`` gets as ``deidentify`` for ``bench`` (None: the user's own
    files, never a publisher-de-identified release), and the record of it that goes into the
    run config and the report."""
    if not spec.deidentify:
        return False, {"deidentify": False, "pixels": "unchanged: de-identification off"}
    from medlens.privacy import DeidPolicy

    released = bench is not None and bench.deidentified_release
    published = released and spec.deid_ocr is None
    ocr = spec.deid_ocr or ("never" if released else "auto")
    if ocr == "never":
        pixels = (
            "unchanged: publisher-de-identified release"
            if published
            else "unchanged: --deid-ocr never"
        )
    else:
        pixels = f"redacted where OCR finds burned-in text (--deid-ocr {ocr})"
    record = {
        "deidentify": True,
        "ocr": ocr,
        "ocr_source": "benchmark" if spec.deid_ocr is None else "--deid-ocr",
        "pixels": pixels,
    }
    return DeidPolicy(ocr=cast("OcrMode", ocr)), record
