"""The benchmark contract: a ``Sample`` per question and a ``Benchmark`` spec per dataset.

A benchmark is declared in one file of ``medlens.bench.benchmarks``: where it comes from (a
Hugging Face dataset id pinned to a revision, and the layout of its original release for
``--data-dir``), its splits, licence and citation, and the scoring rule its paper uses. Loaders
return plain ``Sample`` objects; images stay as paths (or bytes) until the pipeline loads them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from medlens import config
from medlens.bench.samples import LoadedSplit, QualityIssue, Sample
from medlens.errors import ConfigError, DataError, require
from medlens.registry import Registry


class Benchmark:
    """Base of every benchmark spec. Subclasses set the class attributes and implement
    ``load_local`` (original release layout) and ``load_hub`` (Hugging Face dataset id)."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    hf_id: ClassVar[str | None] = None
    hf_revision: ClassVar[str | None] = None
    """Pinned dataset revision (commit sha) so numbers are reproducible."""
    splits: ClassVar[Sequence[str]] = ("test",)
    default_split: ClassVar[str] = "test"
    license: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    homepage: ClassVar[str] = ""
    scoring_rule: ClassVar[str] = ""
    """The rule the dataset's paper (or the reference harness) scores with, and its source."""
    local_dirname: ClassVar[str] = ""
    """Folder name under ``MEDLENS_DATA`` / ``--data-dir`` holding the original release."""

    hf_config: ClassVar[str | None] = None
    """Configuration (subset) passed to ``datasets.load_dataset`` when the dataset has them."""
    hf_splits: ClassVar[Mapping[str, str]] = {}
    """medlens split name → Hub split name where they differ (e.g. "val" → "validation")."""
    local_marker: ClassVar[str] = ""
    """A path, relative to the release folder, whose presence identifies the release."""
    deidentified_release: ClassVar[bool] = False
    """True when the publisher de-identified the release before publishing it (each spec says
    how). The runner then leaves its pixels exactly as published (``DeidPolicy(ocr="never")``):
    OCR redaction would black out laterality markers and annotations that questions are about,
    change the benchmark and make scores incomparable with the literature. DICOM headers and
    question text are still de-identified; ``medlens eval --deid-ocr`` overrides."""

    def load(
        self,
        split: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        revision: str | None = None,
    ) -> LoadedSplit:
        """Samples of ``split``, and where they came from: from ``data_dir`` (or
        ``$MEDLENS_DATA/<local_dirname>``) when it holds the release, else from the Hugging
        Face Hub at the pinned revision (``revision`` overrides the pin)."""
        split = split or self.default_split
        if split not in self.splits:
            raise ConfigError(
                f"{self.name} has no split '{split}'. Available: {', '.join(self.splits)}."
            )
        root = self.local_root(data_dir)
        if root is not None:
            return LoadedSplit(self.load_local(root, split), split, "local", None)
        if data_dir is not None:
            raise DataError(
                f"{Path(data_dir)} does not hold the {self.name} release (looked for "
                f"'{self.local_marker}' there and under '{self.local_dirname}/'). Point "
                f"--data-dir at the folder of the original release, or leave it out to load "
                f"{self.hf_id or 'the dataset'} from the Hugging Face Hub."
            )
        pinned = self.pin(revision)
        return LoadedSplit(self.load_hub(split, revision=pinned), split, "hub", pinned)

    def local_root(self, data_dir: str | os.PathLike[str] | None = None) -> Path | None:
        """The release folder under ``data_dir``/``$MEDLENS_DATA`` (that folder itself or its
        ``local_dirname`` child), or None."""
        base = data_root(data_dir)
        if base is None or not self.local_marker:
            return None
        for candidate in (base, base / self.local_dirname):
            if (candidate / self.local_marker).exists():
                return candidate
        return None

    def load_local(self, root: Path, split: str) -> list[Sample]:
        """Samples of ``split`` from the original release layout under ``root``."""
        raise DataError(f"{self.name} cannot be loaded from a local folder.")

    def load_hub(self, split: str, *, revision: str | None = None) -> list[Sample]:
        """Samples of ``split`` from ``hf_id`` at ``revision`` (default: the pinned
        ``hf_revision``) through ``datasets.load_dataset``. Rows are mapped by
        ``from_hub_row``, which tests exercise on rows built like the Hub's."""
        if not self.hf_id:
            raise DataError(
                f"{self.name} has no Hugging Face dataset; pass --data-dir with the release."
            )
        datasets = require("datasets", "bench", f"Loading {self.name} from the Hugging Face Hub")
        pinned = self.hub_revision(revision)
        try:
            rows = datasets.load_dataset(
                self.hf_id, self.hf_config, split=self.hf_splits.get(split, split), revision=pinned
            )
        except ConnectionError as exc:  # offline mode and not in the datasets cache
            raise DataError(f"{self.name}: {exc}. {self.local_hint()}") from exc
        samples: list[Sample] = []
        for index, row in enumerate(rows):
            samples.extend(self.from_hub_row(row, split, index))
        return samples

    def hub_revision(self, revision: str | None = None) -> str:
        """``pin(revision)`` for a download that is about to start: every Hub load asks here
        first, so an unreachable Hub is reported in seconds (``medlens.hub``) with what to pass
        instead, not after minutes of retries. In offline mode (``HF_HUB_OFFLINE=1``) the
        Hugging Face cache is used and nothing is checked."""
        from medlens.hub import offline_mode, unreachable_reason

        reason = None if offline_mode() else unreachable_reason()
        if reason is not None:
            raise DataError(
                f"{self.name}: the Hugging Face Hub is not reachable ({reason}), so "
                f"{self.hf_id} cannot be downloaded. {self.local_hint()} If the dataset is in "
                "your Hugging Face cache, set HF_HUB_OFFLINE=1 to use it."
            )
        return self.pin(revision)

    def pin(self, revision: str | None = None) -> str:
        """The exact Hub commit to load: ``revision``, else the spec's ``hf_revision``, else
        the dataset's newest commit resolved now (with a warning), so that every run records
        the commit its numbers come from (``LoadedSplit.revision``)."""
        pinned = revision or self.hf_revision
        if pinned is None:
            hub = require("huggingface_hub", "bench", f"Resolving the revision of {self.hf_id}")
            try:
                pinned = str(hub.HfApi().dataset_info(self.hf_id).sha)
            except Exception as exc:  # offline mode, network, auth: all mean "cannot resolve"
                raise DataError(
                    f"{self.name}: medlens has no pinned revision of {self.hf_id} and could not "
                    f"look up its newest commit ({type(exc).__name__}). Pass a revision (a "
                    "commit sha from the dataset page) or use --data-dir with a local release."
                ) from exc
            logger.warning(
                "%s: no pinned revision of %s in medlens; this run uses its newest commit %s",
                self.name,
                self.hf_id,
                pinned,
            )
        return pinned

    def local_hint(self) -> str:
        """What to pass to read the benchmark from a local copy instead of the Hub."""
        holds = f" (the folder holding '{self.local_marker}')" if self.local_marker else ""
        below = f" as '{self.local_dirname}/'" if self.local_dirname else ""
        return (
            f"Pass --data-dir DIR with a local copy of the original release{holds}, or set "
            f"MEDLENS_DATA to a folder that holds it{below}."
        )

    def from_hub_row(self, row: Mapping[str, Any], split: str, index: int) -> list[Sample]:
        """Samples made from one Hub row (usually one; none for rows the benchmark skips)."""
        raise NotImplementedError

    leaks_into_test: ClassVar[bool] = False
    """True when the train split holds copies of test questions or images, which
    ``exclude_leakage`` removes before anything is fitted on train (VQA-RAD)."""

    def exclude_leakage(
        self,
        train: Iterable[Sample],
        test: Iterable[Sample],
        *,
        mode: Literal["images", "questions"] = "images",
    ) -> list[Sample]:
        """``train`` without the rows that leak ``test``: with ``mode="images"`` the rows on
        a test image, with ``"questions"`` only copies of test questions. Benchmarks whose
        splits do not leak (``leaks_into_test`` False) return ``train`` as it is."""
        return list(train)

    def scorable(self, samples: Sequence[Sample]) -> bool:
        """Whether ``samples`` have reference answers to score against; runs of samples that
        have none are stored without scores (a list of the user's studies without gold)."""
        return True

    def corpus_metrics(
        self, samples: Sequence[Sample], extracted: Sequence[str | None], correct: Sequence[bool]
    ) -> dict[str, float]:
        """Benchmark-level values over a run's scored ``samples`` that no per-question score
        holds (MediConfusion's pair scores): ``extracted`` is what the protocol read from each
        answer, ``correct`` whether it was right. Every protocol adds them to its corpus."""
        return {}

    def quality(
        self, samples: Sequence[Sample], *, train: Sequence[Sample] = ()
    ) -> list[QualityIssue]:
        """Data-quality findings for ``samples`` (and leakage against ``train``): missing
        images, duplicated questions, conflicting answers, empty answers, image leakage."""
        from medlens.bench.quality import check_samples

        return check_samples(samples, train=train)


logger = logging.getLogger(__name__)

BENCHMARKS: Registry[type[Benchmark]] = Registry("benchmark")


def data_root(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """``--data-dir`` if given, else ``$MEDLENS_DATA``, else None."""
    return config.data_dir(data_dir)
