"""Self-contained HTML reports of fits and comparisons, and tables for papers.

The report layer imports ``results``, ``data``, ``compare`` and ``spc``; nothing below it
imports ``report``.

- :func:`render_run_report`: one run, diagnostics banner first, then the headline answer
  ("did it beat the secular trend, where, and with what") and the evidence.
- :func:`render_comparison_report` with :class:`RunView`: several runs side by side (config
  differences, PSIS-LOO, ``arviz.compare``, estimands, the headline across runs).
- :func:`estimands_markdown`, :func:`estimands_latex`, :func:`write_tables`: the estimands
  table for papers.
"""

from qicstats.report.comparison import (
    RunView,
    config_differences,
    estimands_side_by_side,
    render_comparison_report,
)
from qicstats.report.run import SECTIONS, render_run_report
from qicstats.report.tables import (
    estimands_latex,
    estimands_markdown,
    format_estimands,
    markdown_table,
    write_tables,
)

__all__ = [
    "SECTIONS",
    "RunView",
    "config_differences",
    "estimands_latex",
    "estimands_markdown",
    "estimands_side_by_side",
    "format_estimands",
    "markdown_table",
    "render_comparison_report",
    "render_run_report",
    "write_tables",
]
