"""Exceptions and the problem records that validation collects.

Every exception qicstats raises on purpose derives from :class:`QicstatsError`, so analysts can
catch the package's errors in one ``except`` clause.  Validation never stops at the first broken
rule: it collects :class:`Problem` records and raises one :class:`DataValidationError` (or
:class:`ConfigError`) listing all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]


def visible(text: str) -> str:
    r"""``text`` with every invisible or control character shown as an escape.

    Zero-width spaces, byte-order marks, bidirectional overrides, NUL and other control
    characters make two names that look the same differ; in a message they are shown as
    ``\u200b``, ``\x00`` and so on (what :func:`repr` writes), so the reader can see them.
    Newlines are kept. Printable text (including accented letters) is unchanged.
    """
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch == "\n" or ch.isprintable():
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1])
    return "".join(out)


@dataclass(frozen=True)
class Problem:
    """One broken rule (``severity='error'``) or a legal but risky pattern (``'warning'``).

    Attributes
    ----------
    rule : str
        Short machine-readable rule id, e.g. ``"numerator_gt_denominator"``.
    message : str
        What is wrong, in words an analyst understands.
    file : str or None
        The file (or table name) the problem was found in.
    column : str or None
        The column concerned.
    count : int
        How many rows / units / items break the rule.
    examples : tuple
        Up to five example rows (1-based file line numbers or unit names) or values.
    hint : str
        How to fix it.
    severity : {"error", "warning"}
    """

    rule: str
    message: str
    file: str | None = None
    column: str | None = None
    count: int = 0
    examples: tuple[Any, ...] = ()
    hint: str = ""
    severity: Severity = "error"

    def format(self) -> str:
        """Return a human-readable, multi-line description."""
        where = []
        if self.file:
            where.append(f"file {self.file}")
        if self.column:
            where.append(f"column '{self.column}'")
        head = f"[{self.rule}] {self.message}"
        if where:
            head += f" ({', '.join(where)})"
        lines = [head]
        if self.count:
            ex = ", ".join(str(e) for e in self.examples[:5])
            lines.append(f"    {self.count} affected" + (f"; e.g. {ex}" if ex else ""))
        if self.hint:
            lines.append(f"    fix: {self.hint}")
        return visible("\n".join(lines))

    def to_dict(self) -> dict[str, Any]:
        """Return the problem as a plain dict (for JSON output)."""
        return {
            "rule": self.rule,
            "message": self.message,
            "file": self.file,
            "column": self.column,
            "count": self.count,
            "examples": [str(e) for e in self.examples[:5]],
            "hint": self.hint,
            "severity": self.severity,
        }


class QicstatsError(Exception):
    """Base class of every error qicstats raises on purpose."""


class ProblemsError(QicstatsError):
    """An error carrying a list of :class:`Problem` records (all found in one pass)."""

    kind = "problems"

    def __init__(self, problems: Sequence[Problem], warnings: Sequence[Problem] = ()):
        self.problems: list[Problem] = [p for p in problems if p.severity == "error"]
        self.warnings: list[Problem] = list(warnings) + [
            p for p in problems if p.severity == "warning"
        ]
        super().__init__(self._text())

    def _text(self) -> str:
        n = len(self.problems)
        head = f"{n} {self.kind} problem{'s' if n != 1 else ''} found:"
        body = "\n".join("- " + p.format().replace("\n", "\n  ") for p in self.problems)
        return f"{head}\n{body}"


class DataValidationError(ProblemsError):
    """The input data break one or more rules of the data contract."""

    kind = "data"


class ConfigError(ProblemsError):
    """The analysis config is invalid (unknown keys, wrong types, bad values)."""

    kind = "config"


class ModelSpecError(QicstatsError):
    """The requested model cannot be built from these data (e.g. a term with no data)."""


class ConvergenceError(QicstatsError):
    """Raised in strict mode when a fit fails its diagnostics gate."""

    def __init__(self, message: str, diagnostics: Any = None):
        self.diagnostics = diagnostics
        super().__init__(message)


class RunExistsError(QicstatsError):
    """An output folder already exists and ``overwrite`` was not requested."""


class OutputError(QicstatsError):
    """An output cannot be written where asked (not writable, a file, an input, not a run
    folder that ``--overwrite`` may replace); raised before any sampling.
    """


class RunFolderError(QicstatsError):
    """A folder given as a run folder is missing, is not one, or is incomplete or damaged."""


class RunInterrupted(QicstatsError):
    """The run was stopped (Ctrl-C, SIGTERM, or a sampler that returned fewer draws than
    asked); nothing was written as complete. The command line exits with code 130.
    """


class IdentityError(QicstatsError):
    """A saved result does not match the config or data it is loaded against."""


class MissingDependencyError(QicstatsError):
    """An optional dependency (e.g. numpyro for the JAX backend) is not installed."""


@dataclass
class ProblemCollector:
    """Accumulates problems during a validation pass and raises them all at once."""

    problems: list[Problem] = field(default_factory=list)

    def add(self, rule: str, message: str, *, file: str | None = None, column: str | None = None,
            count: int = 0, examples: Sequence[Any] = (), hint: str = "",
            severity: Severity = "error") -> None:
        """Record one problem (examples are truncated to five)."""
        self.problems.append(Problem(rule, message, file, column, int(count),
                                     tuple(list(examples)[:5]), hint, severity))

    def warn(self, rule: str, message: str, **kw: Any) -> None:
        """Record a warning (legal but risky data)."""
        self.add(rule, message, severity="warning", **kw)

    @property
    def errors(self) -> list[Problem]:
        """The problems of severity ``error``."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """The problems of severity ``warning``."""
        return [p for p in self.problems if p.severity == "warning"]

    def raise_if_errors(self, cls: type[ProblemsError] = DataValidationError) -> None:
        """Raise ``cls`` with every collected problem if any is an error."""
        if self.errors:
            raise cls(self.errors, self.warnings)
