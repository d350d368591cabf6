"""Planning an evaluation: which runs each benchmark gets, which stored group they continue,
what each run records, and the backends of the baselines.

- **Baselines beside the model.** ``prior`` (most frequent answer per question type and
  category, fitted on the benchmark's *train* split), ``no-image`` and ``random`` run in the
  same evaluation as sibling runs sharing a group id, so every report shows them next to the
  model (the "blind" and "prior" baselines of Goyal et al., 2017, VQA v2, and of MedVQA audits).
- **Sanity and shift runs** are siblings too (``medlens.bench.treatments``), scored like the
  model run.
- **``limit``** keeps the first N samples in the release's own order (the loader's order), the
  same subset as lmms-eval's ``--limit``; it is deterministic and part of the run's identity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from medlens.bench.samples import CATEGORY_KEY, LoadedSplit, QualityIssue, Sample
from medlens.bench.spec import EvalSpec, pixel_policy
from medlens.bench.store import RunInfo, RunStore
from medlens.bench.treatments import Treatment, make_treatment
from medlens.errors import ConfigError

if TYPE_CHECKING:
    from medlens.backends.base import Backend
    from medlens.backends.baseline import PriorTable
    from medlens.bench.benchmark import Benchmark
    from medlens.bench.protocols import ScoringProtocol
    from medlens.privacy import DeidPolicy
    from medlens.trust.calibration import CalibrationProfile

RunRole = Literal["model", "baseline", "sanity", "shift"]


@dataclass(frozen=True)
class PlannedRun:
    """One run of a benchmark: the model column it is stored under, the backend that answers,
    its role, and the treatment (sanity check or shift) it applies, if any."""

    model: str
    backend: str
    role: RunRole
    probe: str | None = None

    @property
    def model_backed(self) -> bool:
        """Whether the model under test answers (calibration and abstention apply)."""
        return self.role != "baseline"

    def treatment(self, samples: Sequence[Sample], seed: int) -> Treatment | None:
        if self.probe is None or self.role not in ("sanity", "shift"):
            return None
        return make_treatment(self.role, self.probe, samples, seed)


def planned_runs(spec: EvalSpec) -> list[PlannedRun]:
    """The runs of one benchmark: the model, the baselines, the sanity checks and the shifts.
    ``no-image`` is the baseline of that name (the model without images), run once whether
    asked as a baseline or a sanity check; the other checks and shifts run the model's backend
    on changed inputs."""
    from medlens.backends.base import BASELINES

    runs = [PlannedRun(spec.model, spec.backend_name, "model")]
    blind = [b for b in BASELINES if spec.baselines or (b == "no-image" and b in spec.sanity)]
    runs += [PlannedRun(b, b, "baseline") for b in blind if b != spec.backend_name]
    for role, probes in (("sanity", spec.sanity), ("shift", spec.shifts)):
        runs += [
            PlannedRun(f"{role}:{p}", spec.backend_name, role, p)  # type: ignore[arg-type]
            for p in probes
            if p != "no-image"
        ]
    return runs


@dataclass(frozen=True)
class BenchmarkPlan:
    """Everything the runs of one benchmark share: its samples (the first ``limit`` of the
    split), the train rows baselines learn from, the quality findings, the de-identification
    and the configuration every run records."""

    bench: Benchmark
    split_samples: LoadedSplit
    samples: list[Sample]
    train: Sequence[Sample]
    quality: list[QualityIssue]
    deidentify: bool | DeidPolicy
    config: dict[str, Any]
    runs: list[PlannedRun]

    def open_run(
        self,
        store: RunStore,
        group_id: str | None,
        spec: EvalSpec,
        planned: PlannedRun,
        protocols: Mapping[str, ScoringProtocol],
    ) -> RunInfo:
        """The stored run of ``group_id`` that ``planned`` continues, or a new one."""
        if group_id is not None:
            found = store.runs(
                group_id=group_id,
                benchmark=self.bench.name,
                model=planned.model,
                backend=planned.backend,
            )
            if found:
                return found[0]
        config = self.config
        if planned.probe is not None:
            config = {**config, "treatment": {"role": planned.role, "spec": planned.probe}}
        return store.create_run(
            benchmark=self.bench.name,
            split=spec.split,
            model=planned.model,
            backend=planned.backend,
            protocols=list(protocols),
            config=config,
            role=planned.role,
            group_id=group_id,
            n_planned=len(self.samples),
            quality=self.quality,
        )


def plan_benchmark(
    spec: EvalSpec,
    bench: Benchmark,
    protocols: Mapping[str, ScoringProtocol],
    profile: CalibrationProfile | None,
) -> BenchmarkPlan:
    """Load ``bench`` and plan its runs; a calibration profile that fits none of its samples
    fails here, before any run."""
    # --limit: the first N in release order (deterministic; part of the run identity).
    split_samples = bench.load(spec.split, spec.data_dir)
    samples = split_samples[: spec.limit]
    if not samples:
        raise ConfigError(f"{bench.name} has no samples in split '{spec.split}'.")
    runs = planned_runs(spec)
    train: Sequence[Sample] = bench.load("train", spec.data_dir) if "train" in bench.splits else []
    unfitted = [] if train else [r for r in runs if fitted_on_train(spec, r)]
    runs = [r for r in runs if r not in unfitted]  # nothing to fit them on: left out
    quality = bench.quality(samples, train=train if spec.split != "train" else ())
    deidentify, pixels = pixel_policy(spec, bench)
    if profile is not None:
        calibrated_samples(profile, samples, bench.name)
    config = run_config(spec, bench, split_samples, protocols, pixels, profile)
    if unfitted:
        config["baselines_left_out"] = {
            r.model: f"{bench.name} has no train split to fit its answer prior on" for r in unfitted
        }
    return BenchmarkPlan(bench, split_samples, samples, train, quality, deidentify, config, runs)


def fitted_on_train(spec: EvalSpec, planned: PlannedRun) -> bool:
    """Whether a baseline answers from the train split's answer prior: ``prior`` always, and
    ``no-image`` when no model is under test to answer without the image (``Backends``)."""
    from medlens.backends.base import BASELINES

    if planned.role != "baseline":
        return False
    return planned.model == "prior" or (
        planned.model == "no-image" and spec.backend_name in BASELINES
    )


def run_config(
    spec: EvalSpec,
    bench: Benchmark,
    loaded: LoadedSplit,
    protocols: Mapping[str, ScoringProtocol],
    pixels: Mapping[str, Any],
    profile: CalibrationProfile | None,
) -> dict[str, Any]:
    """What every run of ``bench`` records about how it was made (its reproducibility key)."""
    import platform

    import medlens

    return {
        "medlens_version": medlens.__version__,
        "python": platform.python_version(),
        "limit": spec.limit,
        "batch_size": spec.batch_size,
        "deidentify": spec.deidentify,
        "pixel_policy": dict(pixels),
        "options": None if spec.options is None else vars(spec.options),
        "benchmark_version": bench.version,
        "benchmark_revision": loaded.revision,
        "benchmark_source": loaded.source,
        "scoring_rule": bench.scoring_rule,
        "protocol_versions": {n: p.version for n, p in protocols.items()},
        "prompt": prompt_record(spec.prompt),
        "seed": spec.seed,
        "calibration": None if profile is None else profile.name,
        "abstain_below": spec.abstain_below,
    }


def resume_group(store: RunStore, spec: EvalSpec, resume: str | bool) -> str | None:
    """The group whose runs this evaluation continues, or None for a fresh evaluation."""
    if resume is False:
        return None
    if isinstance(resume, str):
        run = store.get_run(resume)
        if run.split != spec.split or run.config.get("limit") != spec.limit:
            raise ConfigError(
                f"Run {run.id} was made on split '{run.split}' with --limit "
                f"{run.config.get('limit')}; resume it with the same --split and --limit, "
                "or start a new run without --resume."
            )
        return run.group_id
    for run in store.runs(
        benchmark=spec.benchmarks[0], split=spec.split, model=spec.model, backend=spec.backend_name
    ):
        if run.role == "model" and run.config.get("limit") == spec.limit:
            return run.group_id
    raise ConfigError(
        f"No run of {spec.model} on {spec.benchmarks[0]} ({spec.split}, limit {spec.limit}) "
        f"in {store.path} to resume. Start one without --resume, or name a run: "
        "--resume RUN_ID."
    )


# --------------------------------------------------------------------------------------------
# Calibration profiles
# --------------------------------------------------------------------------------------------


def load_profile(name: str | None) -> CalibrationProfile | None:
    if name is None:
        return None
    from medlens.trust.calibration import CalibrationProfile

    return CalibrationProfile.load(name)


def prompt_record(prompt: str | None) -> dict[str, str]:
    """The prompt preset a run was made with, as its config records it."""
    from medlens.tasks.presets import get_preset

    preset = get_preset(prompt)
    return {"preset": preset.name, "version": preset.version, "source": preset.source}


def task_of(sample: Sample, prompt: str | None = None) -> str:
    """The prompt (``"closed@3"``, ``"lmms-eval@2/closed"``) a sample is asked with under the
    preset ``prompt``, as calibration fingerprints name it."""
    from medlens.tasks import get_task

    return get_task(sample.kind).prompt_id_for(prompt)


def calibrated_samples(
    profile: CalibrationProfile,
    samples: Sequence[Sample],
    benchmark: str,
    prompt: str | None = None,
) -> list[Sample]:
    """The samples of the profile's task; a profile that fits none of them is an error."""
    fits = [s for s in samples if task_of(s, prompt) == profile.fingerprint.task]
    if not fits:
        tasks = ", ".join(sorted({task_of(s, prompt) for s in samples}))
        raise ConfigError(
            f"Calibration profile '{profile.name}' was fitted on '{profile.fingerprint.task}' "
            f"questions, and none of the {len(samples)} {benchmark} samples is one ({tasks}). "
            "Fit a profile for these questions (medlens calibrate --kind ...) or leave out "
            "--calibration."
        )
    return fits


# --------------------------------------------------------------------------------------------
# Baseline backends
# --------------------------------------------------------------------------------------------


def prior_training_rows(
    bench: Benchmark, train: Sequence[Sample], test: Sequence[Sample]
) -> list[Sample]:
    """Train samples the ``prior`` baseline may learn from.

    ``Benchmark.exclude_leakage`` is applied with ``mode="questions"``: the prior never sees an
    image, so shared images do not leak into it, but verbatim and templated copies of test
    questions would (VQA-RAD).
    """
    if not train:
        raise ConfigError(
            f"{bench.name} has no train split, so the 'prior' baseline cannot be fitted. "
            "Run with --no-baselines, or evaluate a benchmark with a train split."
        )
    return bench.exclude_leakage(train, test, mode="questions")


def fit_prior(train: Sequence[Sample]) -> PriorTable:
    """The prior baseline's table: most frequent answer per (kind, category), and the median
    box per label of the grounding samples."""
    from medlens.backends.baseline import PriorTable

    return PriorTable.fit(
        ((s.kind, s.metadata.get(CATEGORY_KEY), s.answer) for s in train),
        boxes=_training_boxes(train),
    )


def _training_boxes(
    train: Sequence[Sample],
) -> Iterator[tuple[str, Sequence[float], tuple[int, int]]]:
    """(label, pixel box, image size) of each grounding sample's gold boxes. The size is read
    from the image file's header (no decoding); a sample whose image is not a local picture
    file (a DICOM, a remote source) gives no box, so the prior has none for it."""
    from PIL import Image

    for sample in train:
        if sample.kind != "grounding" or not sample.images:
            continue
        try:
            with Image.open(sample.images[0]) as image:
                size = image.size
        except (OSError, ValueError):
            continue
        for box in sample.metadata.get("boxes") or ():
            yield str(box["label"]), box["box"], size


class Backends:
    """The backends of one evaluation, built when first needed. The model's backend is
    loaded once and shared by the ``no-image`` baseline (the model with its images removed:
    the ablation that shows how much of its score needs the image); without a model (the
    model under test is itself a baseline) ``no-image`` answers from the train prior."""

    def __init__(self, spec: EvalSpec, factory: Callable[[], Backend] | None) -> None:
        self.spec = spec
        self.factory = factory
        self.model: Backend | None = None
        self.wrapping_model: list[Backend] = []
        """Baselines built around the model's backend (``no-image``), closed with it."""
        self.judge: Backend | None = None

    def judge_backend(self) -> Backend:
        """The LLM judge of ``spec.judge``, built once when the first run is judged."""
        from medlens.backends.base import load_backend

        if self.judge is None:
            if self.spec.judge is None:
                raise ConfigError("No --judge was given for the protocols that need one.")
            self.judge = load_backend(self.spec.judge, self.spec.judge_backend)
        return self.judge

    def model_backend(self) -> Backend:
        from medlens.backends.base import load_backend

        if self.model is None:
            spec = self.spec
            self.model = (
                self.factory()
                if self.factory is not None
                else load_backend(spec.model, backend=spec.backend)
            )
        return self.model

    def for_run(self, plan: BenchmarkPlan, name: str) -> tuple[Backend, bool]:
        """The backend for a run and whether its generations go to the cache: yes when
        they come from the model's weights; baselines are cheaper to recompute than to
        look up, and their answers depend on a fitted table the request key does not see."""
        from medlens.backends.base import BACKENDS, BASELINES

        has_model = self.spec.backend_name not in BASELINES
        if name not in BASELINES:
            return self.model_backend(), True
        factory = BACKENDS.get(name)
        if name == "random":
            return factory(name, seed=self.spec.seed), False
        if name == "no-image" and has_model:
            self.wrapping_model.append(factory(name, backend=self.model_backend()))
            return self.wrapping_model[-1], True
        rows = prior_training_rows(plan.bench, plan.train, plan.split_samples)
        return factory(name, prior=fit_prior(rows)), False

    def release(self, backend: Backend) -> None:
        """Close a baseline's backend; the model's (and no-image's, which wraps it) stay
        open for the next benchmark."""
        if backend is not self.model and all(backend is not b for b in self.wrapping_model):
            backend.close()

    def close(self) -> None:
        for backend in (self.model, self.judge):
            if backend is not None:
                backend.close()
