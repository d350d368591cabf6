"""Report generation: a radiology report with Findings and Impression sections, the two
sections report-generation benchmarks (MIMIC-CXR, IU X-ray) score separately."""

from __future__ import annotations

from medlens.tasks.base import TASKS, Task
from medlens.tasks.parse import report_sections
from medlens.types import Answer, Request


class ReportTask(Task):
    kind = "report"
    name = "report"
    version = "2"
    default_question = "Describe the findings of this study."
    max_new_tokens = 512

    def parse_text(self, text: str, request: Request) -> Answer:
        sections = report_sections(text)
        if not sections:
            return Answer(
                self.kind, text, parsed=False, parse_error="no Findings: or Impression: section"
            )
        summary = sections.get("impression") or sections["findings"]
        return Answer(self.kind, text, parsed=True, text=summary, sections=sections)


TASKS.register("report", ReportTask())
