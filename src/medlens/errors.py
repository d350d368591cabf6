"""The one exception family of medlens.

Every error a user can cause is a ``MedlensError`` whose message says what failed, why, and
what to do. The CLI prints the message (``--debug`` adds the traceback); library users catch
the family or one branch of it::

    MedlensError
    ├── StudyError                 a study cannot be read or shown
    │   ├── UnsupportedFormatError     unknown extension / not an image, DICOM or NIfTI
    │   ├── CorruptFileError           truncated or malformed file
    │   ├── NoPixelDataError           DICOM without PixelData (SR, KO, ...)
    │   ├── ImageTooLargeError         pixel count above the cap (decompression bombs)
    │   └── PacsError                  a DICOMweb server unreachable, refusing us, lacking the
    │       │                          study, or not holding what was sent (STOW verified by QIDO)
    │       └── PacsUnavailableError   the server serves no study now (unreachable, time-out,
    │                                  TLS, credentials refused, server error)
    ├── ConfigError                a wrong flag, option or combination
    │   └── UnknownNameError           a registry name that does not exist ("did you mean")
    ├── MissingDependencyError     an optional extra is not installed (says the pip line)
    ├── BackendError               a model could not be loaded or did not answer
    ├── PrivacyError               PHI would leave the machine, or de-identification failed
    ├── DataError                  a benchmark or predictions file is missing or malformed
    └── CalibrationError           a calibration profile does not match the model/prompt/recipe
"""

from __future__ import annotations

from typing import Any


class MedlensError(Exception):
    """Base of every error medlens raises on purpose."""


class StudyError(MedlensError):
    """A study could not be read or turned into images."""


class UnsupportedFormatError(StudyError):
    """The input is not a format medlens reads."""


class CorruptFileError(StudyError):
    """The file has the right kind but is truncated or malformed."""


class NoPixelDataError(StudyError):
    """A DICOM object that carries no image (structured report, key object, ...)."""


class ImageTooLargeError(StudyError):
    """More pixels than the configured cap; protects against decompression bombs."""


class PacsError(StudyError):
    """A DICOMweb server (PACS) could not be reached, refused the credentials, lacked the
    study or series, or did not store what was sent to it."""


class PacsUnavailableError(PacsError):
    """The DICOMweb server cannot serve any study now (it is unreachable, timed out, failed
    TLS, refused the credentials or failed itself), as opposed to lacking one study: a batched
    run stops on it (resumable) instead of recording every study as failed."""


class ConfigError(MedlensError):
    """A wrong option, flag or combination of them."""


class UnknownNameError(ConfigError, KeyError):
    """A name that no registry entry carries."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(MedlensError, ImportError):
    """An optional dependency is absent; the message carries the install line."""


class BackendError(MedlensError):
    """A model backend failed to load or to answer."""


class PrivacyError(MedlensError):
    """Protected health information would leave, or could not be removed."""


class DataError(MedlensError):
    """A benchmark, dataset folder or predictions file is missing or malformed."""


class CalibrationError(MedlensError):
    """A calibration profile cannot be used here (fingerprint mismatch, too little data)."""


def require(module: str, extra: str, purpose: str) -> Any:
    """Import ``module`` or raise a ``MissingDependencyError`` naming the extra to install.

    >>> require("json", "core", "tests")  # doctest: +ELLIPSIS
    <module 'json' ...>
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the Python package '{module.split('.')[0]}', which is not "
            f"installed. Install it with: pip install 'medlens[{extra}]'"
        ) from exc
