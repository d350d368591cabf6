"""``medlens doctor``: what works on this machine, and the exact install line for what does not."""

from __future__ import annotations

import argparse
import importlib.util
import shutil

COMMAND = "doctor"
ORDER = 90

# extra -> (python modules it brings, what it enables)
EXTRAS = {
    "dicom": (("pydicom", "pylibjpeg", "openjpeg"), "DICOM files and series, compressed syntaxes"),
    "nifti": (("nibabel",), "NIfTI volumes"),
    "hf": (("torch", "transformers", "torchvision"), "in-process Hugging Face VLMs"),
    "openai": (("httpx",), "OpenAI-compatible servers (vLLM, SGLang, Ollama)"),
    "ocr": (("rapidocr", "onnxruntime", "tesserocr"), "burned-in text redaction (PP-OCR)"),
    "bench": (
        ("sklearn", "matplotlib", "rouge_score", "nltk"),
        "calibration, report metrics, plots",
    ),
    "serve": (("fastapi", "uvicorn", "multipart"), "the HTTP API and web page"),
    "speech": (("pocketsphinx",), "spoken questions"),
    "ray": (("ray",), "evaluation across model replicas on a Ray cluster"),
    "pacs": (
        ("dicomweb_client", "highdicom", "fhir"),
        "PACS over DICOMweb; answers as DICOM SR/SEG and FHIR",
    ),
}
PROGRAMS = {
    "tesseract": (
        "de-identification benchmark attacker",
        "apt-get install tesseract-ocr tesseract-ocr-eng",
    ),
    "chromium": ("web page test", "apt-get install chromium"),
    "espeak-ng": ("speech test", "apt-get install espeak-ng"),
    "Orthanc": ("PACS of the interop tests", "apt-get install orthanc orthanc-dicomweb"),
    "dciodvfy": ("SR/SEG conformance check", "apt-get install dicom3tools"),
}


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        COMMAND,
        help="list what works here and how to install the rest",
        description="Check this machine: which optional extras of medlens are installed "
        "(DICOM, NIfTI, Hugging Face models, OpenAI-compatible servers, OCR, benchmarks, the "
        "server, speech), which programs are on the PATH (tesseract, chromium, espeak-ng), "
        "whether the Hugging Face Hub is reachable, and the exact pip or apt-get line for "
        "each missing piece. Takes no options.",
    )


def run(args: argparse.Namespace) -> int:
    print("Python extras:")
    for extra, (modules, purpose) in EXTRAS.items():
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        status = (
            "ok" if not missing else f"missing {', '.join(missing)}: pip install 'medlens[{extra}]'"
        )
        print(f"  {extra:<7} {purpose:<52} {status}")
    print("Programs:")
    for program, (purpose, install) in PROGRAMS.items():
        status = "ok" if shutil.which(program) else f"missing: {install}"
        print(f"  {program:<10} {purpose:<49} {status}")
    from medlens.backends.base import BACKENDS
    from medlens.hub import unreachable_reason

    print(f"Backends: {', '.join(BACKENDS.names())}")
    reason = unreachable_reason()
    print(
        "Hugging Face Hub: reachable"
        if reason is None
        else f"Hugging Face Hub: not reachable ({reason}); use local model folders and "
        "--data-dir / MEDLENS_DATA for benchmarks"
    )
    return 0
