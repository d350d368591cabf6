"""Metrics behind the scoring protocols: answer normalisation and open-answer scores
(``text``), multiple-choice extraction (``choice``), report metrics (``report``),
grounding (``grounding``), bootstrap intervals (``bootstrap``), the LLM judge (``judge``)
and predictions files written by other tools (``predictions``)."""
