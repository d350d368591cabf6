"""What a de-identification run does: profile options, OCR mode and the project key.

The option names are those of DICOM PS3.15 Annex E, Table E.1-1 and section E.3, written in
lower-case with dashes ("Retain Device Identity Option" → ``"retain-device-identity"``). Each
maps to its code in CID 7050 (De-identification Method), which is what the output records in
DeidentificationMethodCodeSequence (PS3.15 E.1.1 step 7).

The project key makes pseudonyms reproducible: the same original UID, patient id or date
maps to the same replacement across files, studies and runs that share the key, so series
stay linked, while nobody without the key can recompute the mapping (a keyed hash, HMAC).
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from medlens import config
from medlens.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from medlens.privacy.recipe import Recipe

OcrMode = Literal["auto", "always", "never"]

OPTION_CODES: dict[str, str] = {
    "clean-pixel-data": "CleanPixelDataOption",
    "clean-graphics": "CleanGraphicsOption",
    "clean-structured-content": "CleanStructuredContentOption",
    "clean-descriptors": "CleanDescriptorsOption",
    "retain-longitudinal-full-dates": "RetainLongitudinalTemporalInformationFullDatesOption",
    "retain-longitudinal-modified-dates": (
        "RetainLongitudinalTemporalInformationModifiedDatesOption"
    ),
    "retain-patient-characteristics": "RetainPatientCharacteristicsOption",
    "retain-device-identity": "RetainDeviceIdentityOption",
    "retain-institution-identity": "RetainInstitutionIdentityOption",
    "retain-uids": "RetainUidsOption",
    "retain-safe-private": "RetainSafePrivateOption",
}
"""Profile options (PS3.15 Table E.1-1 columns and E.3) → keyword of their CID 7050 code in
``pydicom.sr.codedict.codes.DCM``. "Clean Recognizable Visual Features" (faces in volume
renderings) is not offered: medlens cannot do it, so it must not claim it."""

DEFAULT_OPTIONS: tuple[str, ...] = ("retain-longitudinal-modified-dates",)
"""The Basic Profile (PS3.15 Table E.1-1) with one option: dates are shifted per patient rather
than blanked, so intervals between a prior and a current study survive. Descriptors
(StudyDescription, SeriesDescription, ImageComments, ...) are removed as the Basic Profile
says: scrubbing free text cannot be proven complete (names in any language, unlabelled), and
the facts a model needs come from coded attributes (Modality, BodyPartExamined, ViewPosition,
ImageLaterality). ``"clean-descriptors"`` keeps them, scrubbed, for users who accept that."""


def check_option(name: str) -> str:
    """Return the canonical option name or raise ``UnknownNameError`` with a suggestion."""
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    key = key.removesuffix("-option")
    if key in OPTION_CODES:
        return key
    close = difflib.get_close_matches(key, list(OPTION_CODES), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownNameError(
        f"Unknown de-identification option '{name}'.{hint} "
        f"Available (DICOM PS3.15 Table E.1-1): {', '.join(sorted(OPTION_CODES))}."
    )


def medlens_home() -> Path:
    """``config.home_dir()``: where the project key and the text-region cache live."""
    return config.home_dir()


def load_project_key() -> bytes:
    """The key behind every pseudonym: ``$MEDLENS_PROJECT_KEY`` if set, else a random key
    created once in ``$MEDLENS_HOME/project.key`` with owner-only (0600) permissions."""
    given = config.env("MEDLENS_PROJECT_KEY")
    if given:
        return given.encode()
    path = medlens_home() / "project.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(
            f"The project key {path} is readable by other users (mode {mode:o}); anyone with "
            f"it can re-link pseudonyms. Run: chmod 600 {path}"
        )
    return path.read_text().strip().encode()


@dataclass(frozen=True)
class DeidPolicy:
    """How to de-identify. ``options`` are PS3.15 option names (see ``OPTION_CODES``);
    ``ocr`` decides when pixels are searched for burned-in text: ``"auto"`` when
    BurnedInAnnotation says YES, or it is absent and the source is a kind that usually
    carries text (US, secondary capture, screenshots, photos); ``"always"``; ``"never"``
    (pixels are then trusted as they are, and the audit says so)."""

    options: tuple[str, ...] = DEFAULT_OPTIONS
    ocr: OcrMode = "auto"
    project_key: bytes = field(default=b"", repr=False)
    """Empty means ``load_project_key()`` at construction."""
    max_date_shift_days: int = 3650
    recipe: Recipe | None = None
    """A user's recipe file (:mod:`medlens.privacy.recipe`): header actions that override
    the profile, fixed pixel regions per device."""
    redact_all_text: bool = False
    """Black out every text line found, clinical labels too (``--redact-all-text``), instead
    of only what identifies (:mod:`medlens.privacy.labels`)."""
    time_budget_s: float = 30.0
    """Seconds of text detection per image or frame stack; frames not reached by then get
    the boxes already found and the study is marked "needs review"."""
    cache_regions: bool = True
    """Keep the text regions found in an image (boxes only) under
    ``$MEDLENS_HOME/cache/text-regions``, keyed by a keyed hash of its pixels, so the same
    image is not read again."""

    def __post_init__(self) -> None:
        canonical = tuple(dict.fromkeys(check_option(o) for o in self.options))
        object.__setattr__(self, "options", canonical)
        if self.ocr not in ("auto", "always", "never"):
            raise ConfigError(f"ocr must be 'auto', 'always' or 'never', not {self.ocr!r}.")
        if "retain-longitudinal-full-dates" in canonical and (
            "retain-longitudinal-modified-dates" in canonical
        ):
            raise ConfigError(
                "Choose one of 'retain-longitudinal-full-dates' and "
                "'retain-longitudinal-modified-dates': dates are either kept or shifted."
            )
        if not self.project_key:
            object.__setattr__(self, "project_key", load_project_key())

    @classmethod
    def from_names(
        cls,
        options: Iterable[str] | None = None,
        ocr: OcrMode = "auto",
        *,
        redact_all_text: bool = False,
        recipe: str | Path | None = None,
    ) -> DeidPolicy:
        """Build from CLI-style names; ``None`` keeps the defaults; ``recipe`` is a recipe
        file's path."""
        from medlens.privacy.recipe import load_recipe

        return cls(
            options=DEFAULT_OPTIONS if options is None else tuple(options),
            ocr=ocr,
            redact_all_text=redact_all_text,
            recipe=load_recipe(recipe) if recipe else None,
        )

    def has(self, option: str) -> bool:
        return check_option(option) in self.options

    @property
    def ocr_pixels_always(self) -> bool:
        return self.ocr == "always" or (self.ocr == "auto" and self.has("clean-pixel-data"))

    def keyed_hash(self, *parts: str) -> str:
        """Hex HMAC-SHA256 of ``parts`` under the project key: stable and not reversible."""
        message = "\x1f".join(parts).encode()
        return hmac.new(self.project_key, message, hashlib.sha256).hexdigest()

    def date_shift_days(self, patient_id: str) -> int:
        """Per-patient offset in days, negative (dates move into the past), never zero, so
        that every date of one patient moves together and intervals are kept."""
        value = int(self.keyed_hash("date-shift", patient_id)[:12], 16)
        return -(1 + value % self.max_date_shift_days)
