"""Real components and generators for users' tests and benchmarks, shipped in the library as
httpx ships its ``MockTransport``: a throw-away Orthanc PACS (``medlens.testing.orthanc``) and
synthetic studies with known PHI (``medlens.testing.phi``). Nothing in the pipeline imports
them."""
