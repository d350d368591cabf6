"""Real components and generators for users' tests, examples and benchmarks, shipped in the
library as httpx ships its ``MockTransport``: tiny random-weight models of real VLM
architectures built offline (``medlens.testing.tiny``), synthetic DICOM/NIfTI studies with known
content (``medlens.testing.studies``), synthetic studies with known PHI
(``medlens.testing.phi``) and a throw-away Orthanc PACS (``medlens.testing.orthanc``). Nothing in
the pipeline imports them."""
