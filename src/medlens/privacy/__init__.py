"""De-identification: DICOM headers (PS3.15 Annex E), burned-in text (PP-OCR detection and
recognition, PHI told from clinical labels, redaction) and free text (patterns + name
gazetteer), with audit records that never hold the PHI itself.

Importing this package loads neither pydicom nor the OCR models; they load when a function
that needs them runs.
"""

from medlens.privacy.header import deidentify_dataset
from medlens.privacy.labels import Identifiers, LineDecision, classify_line
from medlens.privacy.pixels import TextRegion, detect_text, redact_burned_in_text
from medlens.privacy.policy import DEFAULT_OPTIONS, OPTION_CODES, DeidPolicy
from medlens.privacy.recipe import Recipe, load_recipe
from medlens.privacy.studies import deidentify, require_deidentified
from medlens.privacy.text import ScrubResult, Span, scrub_text

__all__ = [
    "DEFAULT_OPTIONS",
    "OPTION_CODES",
    "DeidPolicy",
    "Identifiers",
    "LineDecision",
    "Recipe",
    "ScrubResult",
    "Span",
    "TextRegion",
    "classify_line",
    "deidentify",
    "deidentify_dataset",
    "detect_text",
    "load_recipe",
    "redact_burned_in_text",
    "require_deidentified",
    "scrub_text",
]
