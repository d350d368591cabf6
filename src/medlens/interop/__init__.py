"""Answers out to the systems hospitals run: DICOM Comprehensive 3D SR (TID 1500) and SEG
through highdicom, FHIR DiagnosticReports through fhir.resources, and STOW-RS back to a PACS
verified by QIDO-RS.

It sits below ``serve`` and ``bench`` and above ``pipeline`` (the import-linter layers of
``pyproject.toml``): ``medlens ask --export`` and ``/v1/analyze`` (``export=sr,fhir``) both
build their outputs with ``interop.export``, from a pipeline ``Result``.

Importing this package loads neither highdicom nor fhir.resources; each module imports them
in the function that needs them (``pip install 'medlens[pacs]'``).
"""
