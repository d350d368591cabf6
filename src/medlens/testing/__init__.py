"""Real components for users' tests and benchmarks, shipped in the library as httpx ships its
``MockTransport``: today a throw-away Orthanc PACS (``medlens.testing.orthanc``)."""
