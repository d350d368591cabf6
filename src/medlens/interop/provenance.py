"""Who answered, how, and under which identifiers: what every SR, SEG and FHIR output says
about itself, taken from one pipeline ``Result``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import medlens
from medlens.errors import ConfigError

if TYPE_CHECKING:
    from pydicom import Dataset

    from medlens.pipeline import Result
    from medlens.types import Study

ROLES = ("baseline", "demonstration model", "user's model", "scripted answers")


@dataclass(frozen=True)
class Provenance:
    """The algorithm behind an answer (DICOM TID 4019 Algorithm Identification, the device
    observer of TID 1004, the FHIR Device) and the identifier choice of the outputs."""

    model: str
    backend: str
    role: str
    """"baseline", "demonstration model", "user's model" or "scripted answers": an answer
    always says what kind of thing produced it."""
    recipe: str
    task: str
    """The task and its prompt template version ("closed@3")."""
    revision: str | None = None
    deidentified: bool = True
    """True: the outputs carry the de-identified identifiers of the study the model saw;
    False (de-identification turned off): the source study's own identifiers."""

    @classmethod
    def of(
        cls, result: Result, *, revision: str | None = None, role: str | None = None
    ) -> Provenance:
        from medlens.backends.base import BASELINES, DEMONSTRATION_LABEL

        generation = result.generation
        if role is None:
            if generation.backend in BASELINES:
                role = "baseline"
            elif generation.backend == "scripted":
                role = "scripted answers"
            elif result.model_label == DEMONSTRATION_LABEL:
                role = "demonstration model"
            else:
                role = "user's model"
        elif role not in ROLES:
            raise ConfigError(f"Unknown model role {role!r}; one of: {', '.join(ROLES)}.")
        return cls(
            model=generation.model,
            backend=generation.backend,
            role=role,
            recipe=result.prepared.recipe,
            task=result.prepared.task_version,
            revision=revision,
            deidentified=all(s.deidentified for s in result.prepared.studies),
        )

    @property
    def software(self) -> str:
        return f"medlens {medlens.__version__}"

    @property
    def version(self) -> str:
        return self.revision or "unversioned"

    @property
    def parameters(self) -> list[str]:
        """Algorithm parameters (TID 4019 row 4): everything that changes the answer."""
        return [
            f"backend={self.backend}",
            f"role={self.role}",
            f"recipe={self.recipe}",
            f"prompt={self.task}",
            f"software={self.software}",
        ]

    @property
    def identifiers(self) -> str:
        """The identifier choice, in words (written into every output)."""
        if self.deidentified:
            return (
                "de-identified: patient, study and instance identifiers are those medlens "
                "assigned (DICOM PS3.15 Basic Profile), not the PACS originals"
            )
        return "source: de-identification was turned off; the source study's own identifiers"


def source_headers(study: Study, what: str) -> tuple[Dataset, ...]:
    """The DICOM headers an output references; a non-DICOM study has none to reference."""
    if not study.headers:
        raise ConfigError(
            f"{what} references the DICOM images the answer is about, but this study was "
            f"read from {study.source_format} (no DICOM headers). Ask about the DICOM study "
            "(a file, a series folder or a dicomweb:// address), or export FHIR only."
        )
    return tuple(study.headers)
