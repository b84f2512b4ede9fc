"""The run report (`runner report`): its numbers, its HTML page, and what runners tell of use.

- `build_report(read_journal(folder), usage)` gives a `Report`; `Report.as_dict()` is
  what ``runner report --json`` prints; `render_html(report)` is the page.
- `Usage` and `UsageReport` are what `JobRunner.usage_recorded` returns: the memory and
  CPU each job used against its request, from the scheduler's accounting, or why there
  are no figures.
"""

from __future__ import annotations

from runner_core._report import DETAIL_LIMIT, Report, Try, build_report
from runner_core._report_html import render as render_html
from runner_core._usage import Usage, UsageReport

__all__ = ["DETAIL_LIMIT", "Report", "Try", "Usage", "UsageReport", "build_report", "render_html"]
