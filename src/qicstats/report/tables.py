"""Formatted tables for reports and papers: HTML (via the templates), Markdown and LaTeX.

Numbers are formatted once, here, so that every output shows the same thing: differences on
a probability scale in percentage points, levels on a probability scale in percent, ratios to
two decimals, events to whole numbers, and posterior probabilities in percent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qicstats.errors import ProblemCollector
from qicstats.results.fitresult import per_label

if TYPE_CHECKING:  # pragma: no cover
    from qicstats.results.fitresult import FitResult

#: plain-language names of the estimands (horizons are added on the fly)
ESTIMAND_LABELS: dict[str, str] = {
    "att": "Improvement beyond the secular trend",
    "att_ratio": "Relative improvement (ratio observed / counterfactual)",
    "trend_change": "Secular trend alone over the same periods",
    "fitted_mean": "Fitted mean after joining",
    "counterfactual_mean": "Counterfactual mean (no collaborative)",
    "events_gained": "Events gained (additional successes / events)",
    "indicator_contrast": "Difference in improvement between indicator levels",
    "att_at_level": "Improvement at an indicator level",
    "indicator_main_contrast": "Difference in outcome between indicator levels (main effect)",
    "deviance": "Improvement beyond the collaborative's expectation",
    "att_exposure": "Improvement by time since joining",
    "att_phase": "Improvement by phase",
}

#: estimands that are *differences* on the response scale (shown with a sign)
DIFFERENCE_ESTIMANDS = ("att", "trend_change", "indicator_contrast", "att_at_level",
                        "indicator_main_contrast", "deviance", "att_exposure", "att_phase")

#: display columns of a formatted estimands table
DISPLAY_COLUMNS: tuple[str, ...] = ("Estimand", "Scope", "Group", "Estimate", "Interval",
                                    "P(>0)", "P(improved)", "P(>MID)", "MCSE", "ESS",
                                    "Rows", "Unit")

_REQUIRED = ("estimand", "scope", "group", "mean", "lower", "upper", "scale")


def estimand_label(name: str) -> str:
    """Plain-language label of an estimand name (``att_horizon_12`` included)."""
    if name.startswith("att_horizon_"):
        return f"Improvement {name.rsplit('_', 1)[-1]} periods after joining"
    return ESTIMAND_LABELS.get(name, name.replace("_", " "))


def _finite(v: Any) -> bool:
    try:
        return v is not None and v is not pd.NA and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def is_difference(estimand: str) -> bool:
    """Whether an estimand is a difference (signed, percentage points on probabilities)."""
    return estimand in DIFFERENCE_ESTIMANDS or estimand.startswith("att_horizon_")


def rate_per(est: pd.DataFrame | None) -> int:
    """The multiplier that states rates per a readable exposure ("per 100,000") for this
    estimands table (1: no scaling); see :func:`qicstats.results.fitresult.rate_multiplier`.
    """
    from qicstats.results.fitresult import rate_multiplier

    return rate_multiplier(est) if isinstance(est, pd.DataFrame) else 1


def value_formatter(estimand: str, scale: str, per: int = 1
                    ) -> tuple[Callable[[Any], str], str]:
    """Return ``(format(v) -> str, unit label)`` for one estimand on one scale.

    ``per`` (a power of ten, see :func:`rate_per`) states rates per that much exposure: the
    value is multiplied by it and the unit is ``"per 100,000"``.
    """
    diff = is_difference(estimand)
    if scale == "rate" and per and int(per) > 1:
        sign = "+" if diff else ""
        k = int(per)
        return (lambda v: f"{k * float(v):{sign}.3g}" if _finite(v) else "–"), per_label(k)
    if scale == "probability":
        if diff:
            return (lambda v: f"{100 * float(v):+.1f}" if _finite(v) else "–"), "pp"
        return (lambda v: f"{100 * float(v):.1f}" if _finite(v) else "–"), "%"
    if scale == "ratio":
        return (lambda v: f"{float(v):.2f}" if _finite(v) else "–"), "ratio"
    if scale == "events":
        return (lambda v: f"{float(v):+,.0f}" if _finite(v) else "–"), "events"
    sign = "+" if diff else ""
    return (lambda v: f"{float(v):{sign}.3g}" if _finite(v) else "–"), scale


def mcse_formatter(scale: str, per: int = 1) -> Callable[[Any], str]:
    """Format a Monte Carlo standard error on ``scale`` (finer than the estimate)."""
    if scale == "rate" and per and int(per) > 1:
        k = int(per)
        return lambda v: f"{k * float(v):.2g}" if _finite(v) else "–"
    if scale == "probability":
        return lambda v: f"{100 * float(v):.2f}" if _finite(v) else "–"
    if scale == "ratio":
        return lambda v: f"{float(v):.3f}" if _finite(v) else "–"
    if scale == "events":
        return lambda v: f"{float(v):.1f}" if _finite(v) else "–"
    return lambda v: f"{float(v):.2g}" if _finite(v) else "–"


def fmt_prob(v: Any) -> str:
    """A posterior probability in percent (``"97%"``, ``"<1%"``, ``">99%"``)."""
    if not _finite(v):
        return "–"
    p = float(v)
    if p < 0.005:
        return "<1%"   # finitely many draws never make a probability exactly 0
    if p > 0.995:
        return ">99%"  # ... or exactly 1
    return f"{100 * p:.0f}%"


def fmt_num(v: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, or an en dash when missing."""
    if not _finite(v):
        return "–"
    return f"{float(v):.{digits}g}"


def fmt_int(v: Any) -> str:
    """A whole number with thousands separators, or an en dash when missing."""
    if not _finite(v):
        return "–"
    return f"{float(v):,.0f}"


def _check_estimands(df: Any, what: str) -> None:
    pc = ProblemCollector()
    if not isinstance(df, pd.DataFrame):
        pc.add("not_a_table", f"{what} must be a pandas DataFrame, not {type(df).__name__}",
               hint="pass FitResult.estimands() (or a filtered copy of it)")
    else:
        missing = [c for c in _REQUIRED if c not in df.columns]
        if missing:
            pc.add("missing_column", f"{what} lacks the column(s) {missing}",
                   column=missing[0], count=len(missing),
                   hint="pass FitResult.estimands() (or a filtered copy of it)")
    pc.raise_if_errors()


def format_estimands(df: pd.DataFrame, *, with_estimand: bool = True,
                     per: int | None = None) -> pd.DataFrame:
    """The tidy estimands table as strings, ready to show.

    Parameters
    ----------
    df : DataFrame
        Rows of :meth:`FitResult.estimands` (not modified).
    with_estimand : bool
        Include the ``Estimand`` column (plain-language label).
    per : int, optional
        State rates per this much exposure (a power of ten; ``Unit`` says e.g. "per
        100,000"). Default: chosen from ``df`` itself (:func:`rate_per`); pass the value of
        the whole table when formatting parts of it, so that every part agrees.

    Returns
    -------
    DataFrame
        Columns :data:`DISPLAY_COLUMNS` (minus ``Estimand`` when asked), all strings.

    Raises
    ------
    DataValidationError
        If ``df`` is not an estimands table.
    """
    _check_estimands(df, "the estimands table")
    per = rate_per(df) if per is None else int(per)
    recs = []
    for r in df.to_dict("records"):
        f, unit = value_formatter(str(r["estimand"]), str(r["scale"]), per)
        rec = {
            "Estimand": estimand_label(str(r["estimand"])),
            "Scope": str(r["scope"]),
            "Group": str(r["group"]),
            "Estimate": f(r["mean"]),
            "Interval": f"{f(r['lower'])} to {f(r['upper'])}",
            "P(>0)": fmt_prob(r.get("prob_positive")),
            "P(improved)": fmt_prob(r.get("prob_improved")),
            "P(>MID)": fmt_prob(r.get("prob_above_mid")),
            "MCSE": mcse_formatter(str(r["scale"]), per)(r.get("mcse")),
            "ESS": fmt_int(r.get("ess_bulk")),
            "Rows": fmt_int(r.get("n_rows")),
            "Unit": unit,
        }
        recs.append(rec)
    out = pd.DataFrame(recs, columns=list(DISPLAY_COLUMNS), dtype=object)
    if not with_estimand:
        out = out.drop(columns=["Estimand"])
    if out["P(>MID)"].eq("–").all():
        out = out.drop(columns=["P(>MID)"])
    return out


# --------------------------------------------------------------------------------------
# HTML tables (rendered by the templates, which escape every cell)
# --------------------------------------------------------------------------------------
@dataclass
class Table:
    """A table for the templates: header, rows of cell strings, optional per-row classes."""

    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    row_classes: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    collapsed: bool = False

    @property
    def numeric(self) -> list[bool]:
        """Whether each column holds numbers (right-aligned)."""
        return [c == "num" for c in self.classes]

    def __len__(self) -> int:
        """Number of rows."""
        return len(self.rows)


def _cell(v: Any) -> str:
    if v is None or v is pd.NA:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(float(v)):
            return "–"
        return fmt_num(v, 4)
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}" if abs(int(v)) >= 10000 else str(int(v))
    return str(v)


def html_table(df: pd.DataFrame, *, caption: str = "", row_classes: Sequence[str] | None = None,
               collapse_over: int | None = None) -> Table:
    """Turn a DataFrame into a :class:`Table` of strings (numbers formatted, missing as –)."""
    rows = [[_cell(v) for v in rec] for rec in df.itertuples(index=False, name=None)]
    classes = []
    for j, c in enumerate(df.columns):
        s = df[c]
        num = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        if not num and len(s):
            txt = s.astype(str)
            txt = txt[txt != "–"]
            txt = txt.str.replace(r"^[+−\-–<>]?[\d.,]+\s*(%|pp)?$", "", regex=True)
            num = bool(len(txt) and (txt == "").mean() > 0.8)
        short = all(len(r[j]) <= 28 for r in rows)
        classes.append("num" if num else ("nw" if short else ""))
    return Table([str(c) for c in df.columns], rows, caption,
                 list(row_classes) if row_classes is not None else [], classes,
                 collapsed=collapse_over is not None and len(rows) > collapse_over)


# --------------------------------------------------------------------------------------
# Markdown and LaTeX
# --------------------------------------------------------------------------------------
_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                  "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "\\": r"\textbackslash{}", "<": r"\textless{}", ">": r"\textgreater{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters in plain text (line breaks become spaces, control
    characters are dropped), so a cell can never end the table or run a command.
    """
    text = "".join(" " if ch in "\r\n\t" else ch for ch in text
                   if ch in "\r\n\t" or ch.isprintable())
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


#: Markdown characters that start markup or raw HTML in a cell
_MD_SPECIAL = {"\\": "\\\\", "|": "\\|", "`": "\\`", "*": "\\*", "_": "\\_",
               "[": "\\[", "]": "\\]", "<": "&lt;", ">": "&gt;", "&": "&amp;"}


def md_escape(s: str) -> str:
    """Escape a table cell for Markdown: pipes, backslashes, emphasis, links and code
    marks; ``<``, ``>`` and ``&`` as HTML entities (Markdown passes raw HTML such as
    ``<script>`` through); line breaks become spaces, control characters are dropped.
    """
    s = "".join(" " if ch in "\r\n\t" else ch for ch in s if ch in "\r\n\t" or ch.isprintable())
    return "".join(_MD_SPECIAL.get(ch, ch) for ch in s)


_md_escape = md_escape


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown pipe table of ``df`` (cells as strings, pipes escaped).

    Written here rather than with ``DataFrame.to_markdown`` (which needs ``tabulate``).
    """
    cols = [_md_escape(str(c)) for c in df.columns]
    rows = [[_md_escape(_cell(v)) for v in rec] for rec in df.itertuples(index=False, name=None)]
    width = [max([len(c)] + [len(r[j]) for r in rows] + [3]) for j, c in enumerate(cols)]
    numeric = html_table(df).numeric

    def line(cells: Iterable[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if n else c.ljust(w)
                                 for c, w, n in zip(cells, width, numeric)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if n else (":" + "-" * (w + 1))
                         for w, n in zip(width, numeric)) + "|"
    return "\n".join([line(cols), sep] + [line(r) for r in rows]) + "\n"


def latex_table(df: pd.DataFrame, *, caption: str | None = None, label: str | None = None) -> str:
    """A booktabs LaTeX tabular of ``df`` (pandas ``Styler.to_latex``; special characters
    escaped, numeric columns right-aligned).
    """
    shown = pd.DataFrame({latex_escape(str(c)): [latex_escape(_cell(v)) for v in df[c]]
                          for c in df.columns}, dtype=object)
    numeric = html_table(df).numeric
    fmt = "".join("r" if n else "l" for n in numeric)
    st = shown.style.hide(axis="index")
    kw: dict[str, Any] = {"hrules": True, "column_format": fmt}
    if caption:
        kw["caption"] = latex_escape(caption)
        kw["position_float"] = "centering"
    if label:
        kw["label"] = re.sub(r"[^A-Za-z0-9:._-]", "-", label)
    tex = st.to_latex(**kw)
    # typographic minus and en dash survive pdflatex only as commands
    return tex.replace("–", "--").replace("−", "-")


def estimands_markdown(df: pd.DataFrame) -> str:
    """The estimands table (rows of :meth:`FitResult.estimands`) as a Markdown table.

    Parameters
    ----------
    df : DataFrame
        The tidy estimands table or a filtered copy (not modified).

    Returns
    -------
    str
        A pipe table with formatted numbers (percentage points for differences on a
        probability scale) and a ``Unit`` column.

    Raises
    ------
    DataValidationError
        If ``df`` is not an estimands table.
    """
    return markdown_table(format_estimands(df))


def estimands_latex(df: pd.DataFrame, *, caption: str | None = None,
                    label: str | None = None) -> str:
    r"""The estimands table as a LaTeX ``tabular`` (booktabs rules: ``\usepackage{booktabs}``).

    Parameters
    ----------
    df : DataFrame
        The tidy estimands table or a filtered copy (not modified).
    caption, label : str, optional
        Wrap the tabular in a ``table`` float with this caption / label.

    Returns
    -------
    str

    Raises
    ------
    DataValidationError
        If ``df`` is not an estimands table.
    """
    return latex_table(format_estimands(df), caption=caption, label=label)


def write_tables(result: FitResult, folder: str | Path) -> dict[str, Path]:
    """Write ``estimands.md`` and ``estimands.tex`` for ``result`` into ``folder``.

    Parameters
    ----------
    result : FitResult
    folder : str or Path
        Created if missing; existing files of these names are replaced.

    Returns
    -------
    dict
        ``{"markdown": path, "latex": path}``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    df = result.estimands()
    paths = {"markdown": folder / "estimands.md", "latex": folder / "estimands.tex"}
    verdict = result.diagnostics().verdict
    note = "" if verdict == "pass" else (
        f"Diagnostics verdict: {verdict}. These estimates must not be trusted yet.\n\n")
    paths["markdown"].write_text(note + estimands_markdown(df), encoding="utf-8")
    tex_note = "" if verdict == "pass" else f"% Diagnostics verdict: {verdict}.\n"
    paths["latex"].write_text(tex_note + estimands_latex(
        df, caption=f"Estimands of {result.name}", label=f"tab:estimands-{result.name}"),
        encoding="utf-8")
    return paths
