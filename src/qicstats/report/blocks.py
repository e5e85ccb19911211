"""Content blocks of report sections (rendered by ``templates/macros.html.j2``).

A block is a dict with a ``kind``: ``p``, ``h3``, ``note`` (with a ``level``: missing, info,
warn, error), ``table`` (a :class:`~qicstats.report.tables.Table`), ``figure`` (inline HTML
and a caption), ``kv`` (key/value rows), ``list``, ``pre``, ``equation`` or ``html``. Text is
escaped by the templates; only figure and equation HTML is passed as ``Markup``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from qicstats.report import figures as figs
from qicstats.report.tables import Table

Block = dict[str, Any]


def para(text: str) -> Block:
    """A paragraph."""
    return {"kind": "p", "text": text}


def note(text: str, level: str = "missing") -> Block:
    """A boxed note (``level``: missing, info, warn or error)."""
    return {"kind": "note", "text": text, "level": level}


def h3(text: str) -> Block:
    """A sub-heading."""
    return {"kind": "h3", "text": text}


def table_block(t: Table) -> Block:
    """A table."""
    return {"kind": "table", "table": t}


def figure_block(make: Callable[[], Any], *, key: str, alt: str, caption: str) -> Block:
    """A figure from ``make()``, or an error note if it cannot be drawn."""
    html, why = figs.figure_or_note(make, key=key, alt=alt)
    if html is None:
        return note(f"The figure '{alt}' could not be drawn ({why}).", "error")
    return {"kind": "figure", "html": html, "caption": caption}


def name_list(items: Sequence[str], k: int = 20) -> str:
    """Names joined by commas, the first ``k`` and a count of the rest."""
    items = [str(i) for i in items]
    if len(items) <= k:
        return ", ".join(items)
    return ", ".join(items[:k]) + f" and {len(items) - k} more"
