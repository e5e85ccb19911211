"""Codebooks: what each coded qualitative indicator means and how its codes are spelled.

A codebook is a YAML file (or the equivalent dict)::

    indicators:
      management_support:
        label: Management support
        type: ordinal                      # binary | ordinal | continuous
        levels: [weak, moderate, strong]   # ordered, lowest (reference) first
        aliases: {weak: [low, "1"], moderate: [medium, "2"], strong: [high, "3"]}
        role: moderator                    # main | moderator | both   (default moderator)
        describes: unit                    # unit | site               (default unit)
        carry_back: true                   # first wave also holds before it (default true)
        source: long                       # code / column name in coding exports (optional)
        threshold: 1                       # coding matrices: count >= threshold -> present
        description: How much management backed the work.   # descriptive keys (optional):
        definition: ...                    #   description, definition, notes, examples,
        examples: [manager attends huddles]  #   kept as text for the report

Levels may also be written with their descriptions, as a qualitative codebook describes its
codes: ``levels: [{weak: "no visible backing"}, {moderate: ...}, {strong: ...}]`` or
``levels: [{name: weak, description: ...}, ...]``.

Level matching ignores case and runs of whitespace. Binary indicators also accept the built-in
spellings ``yes/no``, ``true/false``, ``1/0`` and ``ja/nej`` (second level / first level).

The YAML is read with YAML 1.2 booleans (only ``true``/``false``), so ``levels: [no, yes]``
stays two strings instead of becoming ``[False, True]`` as YAML 1.1 would have it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qicstats.errors import ConfigError, Problem, ProblemCollector

INDICATOR_TYPES: tuple[str, ...] = ("binary", "ordinal", "continuous")
ROLES: tuple[str, ...] = ("main", "moderator", "both")
DESCRIBES: tuple[str, ...] = ("unit", "site")

#: keys an indicator entry may have
INDICATOR_KEYS: tuple[str, ...] = (
    "label", "type", "levels", "aliases", "role", "describes", "carry_back", "source",
    "threshold", "description", "definition", "notes", "examples",
)
#: keys that describe an indicator in words (kept as text; they change nothing numeric)
DESCRIPTIVE_KEYS: tuple[str, ...] = ("description", "definition", "notes", "examples")
#: keys the codebook itself may have
CODEBOOK_KEYS: tuple[str, ...] = ("indicators", "description")

#: built-in binary spellings (normalised) -> 0 (first level) / 1 (second level)
BINARY_ALIASES: dict[str, int] = {
    "no": 0, "false": 0, "0": 0, "nej": 0,
    "yes": 1, "true": 1, "1": 1, "ja": 1,
}

#: cell contents that mean "not coded" (NVivo writes "Unassigned" / "Not Applicable")
EMPTY_SPELLINGS: frozenset[str] = frozenset(
    {"", "na", "n/a", "nan", "none", "unassigned", "not applicable", "<na>"}
)

RULE = "malformed_codebook"


def norm_text(raw: Any) -> str:
    """Normalise a spelling for matching: text, lower case, single inner spaces, stripped.

    Integer-valued floats (``1.0`` from a spreadsheet cell) become ``"1"`` and booleans
    ``"true"``/``"false"``.
    """
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        raw = int(raw)
    return re.sub(r"\s+", " ", str(raw)).strip().casefold()


def _last_component(name: str) -> str:
    return str(name).replace("/", "\\").rsplit("\\", 1)[-1]


def column_key(name: Any) -> str:
    """Normalise a column or code name for matching: like :func:`norm_text`, ``_`` as space."""
    return re.sub(r"\s+", " ", norm_text(name).replace("_", " ")).strip()


def is_empty(raw: Any) -> bool:
    """True for a missing cell (``None``, ``NaN``, ``<NA>``, blank, ``Unassigned``...)."""
    if raw is None:
        return True
    try:
        if raw != raw:  # NaN / NA  # noqa: PLR0124
            return True
    except TypeError:  # pd.NA comparisons raise in boolean context
        return True
    return norm_text(raw) in EMPTY_SPELLINGS


def parse_number(raw: Any) -> float | None:
    """Parse a continuous value; accepts a decimal comma (``"0,42"``). ``None`` if not a number."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        x = float(raw)
        return x if math.isfinite(x) else None
    text = str(raw).strip().replace("\u2212", "-")
    if text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    try:
        x = float(text)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class IndicatorSpec:
    """One indicator of the codebook.

    Attributes
    ----------
    name : str
    type : {"binary", "ordinal", "continuous"}
    levels : tuple of str
        Ordered levels, lowest (reference) first; empty for continuous indicators.
    label : str
        Human-readable name (defaults to ``name``).
    aliases : dict
        ``{level: (spelling, ...)}``: extra spellings of each level.
    role : {"main", "moderator", "both"}
    describes : {"unit", "site"}
        ``"site"``: a code given for a site applies to all units of that site.
    carry_back : bool
        Whether the first wave's value also holds before that wave (else: missing).
    source : str or None
        The code (coding matrix) or column (classification sheet) holding this indicator;
        ``None`` means the indicator's name.
    threshold : float
        Coding matrices: a count of coded references ``>= threshold`` means present.
    """

    name: str
    type: str
    levels: tuple[str, ...] = ()
    label: str = ""
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    role: str = "moderator"
    describes: str = "unit"
    carry_back: bool = True
    source: str | None = None
    threshold: float = 1.0
    notes: dict[str, str] = field(default_factory=dict, compare=False)
    level_notes: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def column(self) -> str:
        """The name of this indicator in coding exports (``source`` or ``name``)."""
        return self.source or self.name

    @property
    def measurement(self) -> str:
        """Krippendorff's level of measurement: nominal, ordinal or interval."""
        return {"binary": "nominal", "ordinal": "ordinal"}.get(self.type, "interval")

    def spellings(self) -> dict[str, str]:
        """Every accepted spelling (normalised) -> its level."""
        out: dict[str, str] = {}
        if self.type == "binary" and len(self.levels) == 2:
            for spelling, k in BINARY_ALIASES.items():
                out[spelling] = self.levels[k]
        for level, extra in self.aliases.items():
            for s in extra:
                out[norm_text(s)] = level
        for level in self.levels:
            out[norm_text(level)] = level
        return out

    def normalize(self, raw: Any) -> str | float | None:
        """Map a raw code to its level (or number, for continuous indicators).

        Parameters
        ----------
        raw : object
            A cell as read from a coding export.

        Returns
        -------
        str, float or None
            The canonical level (binary/ordinal), the number (continuous), or ``None`` when
            the cell is empty or not a recognised spelling.
        """
        if is_empty(raw):
            return None
        if self.type == "continuous":
            return parse_number(raw)
        return self.spellings().get(norm_text(raw))

    def level_index(self, level: str) -> int:
        """0-based index of a canonical level."""
        return self.levels.index(level)

    def allowed_text(self) -> str:
        """The accepted spellings, for error messages."""
        if self.type == "continuous":
            return "a number"
        parts = []
        for level in self.levels:
            extra = list(self.aliases.get(level, ()))
            if self.type == "binary":
                k = self.levels.index(level)
                extra += [s for s, i in BINARY_ALIASES.items() if i == k]
            parts.append(f"{level}" + (f" (also {', '.join(map(str, extra))})" if extra else ""))
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The entry as it would appear in the codebook YAML (``name`` is the key)."""
        out: dict[str, Any] = {"label": self.label, "type": self.type}
        if self.levels:
            out["levels"] = list(self.levels)
        if self.aliases:
            out["aliases"] = {k: list(v) for k, v in self.aliases.items()}
        out.update(role=self.role, describes=self.describes, carry_back=self.carry_back)
        if self.source is not None:
            out["source"] = self.source
        out["threshold"] = self.threshold
        out.update(self.notes)
        if self.level_notes:
            out["levels"] = [{lv: self.level_notes[lv]} if lv in self.level_notes else lv
                             for lv in self.levels]
        return out


@dataclass(frozen=True)
class Codebook:
    """The indicators an analysis codes, by name, in declaration order.

    Attributes
    ----------
    indicators : dict of str to IndicatorSpec
    description : str
    path : str or None
        Where the codebook was read from (not part of equality).
    """

    indicators: dict[str, IndicatorSpec]
    description: str = ""
    path: str | None = field(default=None, compare=False)

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is the name of one of the codebook's indicators."""
        return name in self.indicators

    def __getitem__(self, name: str) -> IndicatorSpec:
        """The indicator named ``name`` (``KeyError`` if the codebook has none)."""
        return self.indicators[name]

    @property
    def names(self) -> list[str]:
        """Indicator names in declaration order."""
        return list(self.indicators)

    def by_column(self) -> dict[str, str]:
        r"""Export column/code name (see :func:`column_key`) -> indicator name.

        Each indicator is found under its ``source`` (or name), its name, and the last
        component of a hierarchical source (``Parent\Child`` -> ``Child``).
        """
        out: dict[str, str] = {}
        for spec in self.indicators.values():
            for key in (spec.column, spec.name):
                out.setdefault(column_key(key), spec.name)
        for spec in self.indicators.values():
            out.setdefault(column_key(_last_component(spec.column)), spec.name)
        return out

    def to_dict(self) -> dict[str, Any]:
        """A plain dict that :func:`load_codebook` turns back into an equal codebook."""
        out: dict[str, Any] = {"indicators": {n: s.to_dict() for n, s in self.indicators.items()}}
        if self.description:
            out["description"] = self.description
        return out

    def to_yaml(self) -> str:
        """The codebook as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


# ---- reading ---------------------------------------------------------------------------


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false (so ``no``/``yes`` stay strings)."""


_Yaml12Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_BOOL_RX = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
for _first in "tTfF":
    _Yaml12Loader.yaml_implicit_resolvers.setdefault(_first, []).insert(
        0, ("tag:yaml.org,2002:bool", _BOOL_RX))


def _label(x: Any) -> str:
    """A level or alias spelling as text (numbers from YAML become their text)."""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float) and x.is_integer():
        x = int(x)
    return str(x).strip()


def _level_entry(x: Any) -> tuple[str | None, str]:
    """A level of ``levels``: a name, ``{name: description}`` or ``{name: .., description:
    ..}`` (also ``label``/``level`` for the name and ``definition`` for the text).
    """
    if isinstance(x, Mapping):
        keys = {str(k).lower(): v for k, v in x.items()}
        for nk in ("name", "level", "label", "code"):
            if nk in keys:
                text = next((keys[k] for k in ("description", "definition", "notes")
                             if k in keys), "")
                return _label(keys[nk]), _note_text(text)
        if len(x) == 1:
            (k, v), = x.items()
            return _label(k), _note_text(v)
        return None, ""
    return _label(x), ""


def _note_text(v: Any) -> str:
    """Free text of a descriptive key (lists are joined with '; ')."""
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return "; ".join(str(x).strip() for x in v)
    if isinstance(v, Mapping):
        return "; ".join(f"{k}: {x}" for k, x in v.items())
    return str(v).strip()


def _as_bool(x: Any) -> bool | None:
    if isinstance(x, bool):
        return x
    t = norm_text(x)
    if t in ("true", "yes", "1", "on"):
        return True
    if t in ("false", "no", "0", "off"):
        return False
    return None


#: a codebook is a few kilobytes of YAML
CODEBOOK_MAX_BYTES = 1 << 20


def _read_source(source: str | os.PathLike[str] | Mapping[str, Any], col: ProblemCollector
                 ) -> tuple[Any, str | None]:
    if isinstance(source, Mapping):
        return source, None
    from qicstats.data.io import read_text_file
    from qicstats.errors import DataValidationError

    path = Path(source)
    fname = str(path)
    try:
        # UTF-8, else cp1252/Latin-1 (a codebook saved by Excel or an older editor); only
        # regular files of a sane size (a FIFO would block, /dev/zero never ends)
        text, _enc = read_text_file(path, max_bytes=CODEBOOK_MAX_BYTES)
    except DataValidationError as err:
        p = err.problems[0]
        col.add(RULE, f"cannot read the codebook: {p.message}", file=fname,
                hint=p.hint or "check the path to the codebook YAML")
        return None, fname
    from qicstats.safeyaml import yaml_limit_problem

    limit = yaml_limit_problem(text, fname, prefix="codebook")
    if limit is not None:
        col.add(RULE, f"cannot read the codebook: {limit.message}", file=fname,
                hint=limit.hint)
        return None, fname
    try:
        return yaml.load(text, Loader=_Yaml12Loader), fname
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        col.add(RULE, f"the codebook is not valid YAML{where}: "
                f"{getattr(err, 'problem', None) or err}", file=fname,
                examples=[f"line {mark.line + 1}"] if mark is not None else (),
                hint="fix the YAML syntax (indentation, quotes, colons)")
        return None, fname


def _parse_indicator(name: str, entry: Any, col: ProblemCollector, fname: str | None
                     ) -> IndicatorSpec | None:
    """Parse one entry; record every problem; return ``None`` when it is unusable."""
    n_before = len(col.problems)

    def bad(key: str, message: str, hint: str) -> None:
        col.add(RULE, f"indicator '{name}': {message}", file=fname, column=key, count=1,
                examples=[f"{name}.{key}"], hint=hint)

    if not isinstance(entry, Mapping):
        bad("type", "the entry must be a mapping of keys (type, levels, ...)",
            "write the indicator as `name:` followed by indented `type: ...` etc.")
        return None
    unknown = [str(k) for k in entry if k not in INDICATOR_KEYS]
    for k in unknown:
        bad(k, f"unknown key '{k}'", f"allowed keys: {', '.join(INDICATOR_KEYS)}")

    typ = entry.get("type")
    if typ is None:
        bad("type", "missing 'type'", f"add `type:` one of {', '.join(INDICATOR_TYPES)}")
    elif str(typ) not in INDICATOR_TYPES:
        bad("type", f"unknown type '{typ}'", f"use one of {', '.join(INDICATOR_TYPES)}")
    typ = str(typ) if typ is not None else None

    # levels
    raw_levels = entry.get("levels")
    level_notes: dict[str, str] = {}
    levels: tuple[str, ...] = ()
    if raw_levels is not None and not isinstance(raw_levels, (list, tuple)):
        bad("levels", "'levels' must be a list", "write e.g. `levels: [weak, moderate, strong]`")
    elif raw_levels is not None:
        parsed = [_level_entry(x) for x in raw_levels]
        for i, (lev, _) in enumerate(parsed):
            if lev is None:
                bad("levels", f"level {i + 1} is a mapping without a level name",
                    "write `{weak: description}` or `{name: weak, description: ...}`")
        levels = tuple(lev for lev, _ in parsed if lev is not None)
        level_notes = {lev: text for lev, text in parsed if lev is not None and text}
    if typ == "binary" and raw_levels is None:
        levels = ("no", "yes")
    if typ == "ordinal" and not levels:
        bad("levels", "an ordinal indicator needs 'levels'",
            "list its levels lowest first, e.g. `levels: [weak, moderate, strong]`")
    if typ == "ordinal" and len(levels) == 1:
        bad("levels", "an ordinal indicator needs at least two levels", "list all levels")
    if typ == "binary" and raw_levels is not None and len(levels) != 2:
        bad("levels", f"a binary indicator needs exactly two levels, got {len(levels)}",
            'write `levels: ["no", "yes"]` (absent first)')
    if typ == "continuous" and raw_levels is not None:
        bad("levels", "a continuous indicator has no levels",
            "remove 'levels' or change the type to ordinal")
    seen: dict[str, str] = {}
    dups = []
    for lev in levels:
        key = norm_text(lev)
        if key in seen:
            dups.append(lev)
        seen[key] = lev
        if key == "":
            bad("levels", "a level is empty", "give every level a name")
    if dups:
        bad("levels", f"duplicate level(s) {dups} (matching ignores case and spaces)",
            "give each level a distinct name")

    # aliases
    aliases: dict[str, tuple[str, ...]] = {}
    raw_aliases = entry.get("aliases")
    if raw_aliases is not None:
        if not isinstance(raw_aliases, Mapping):
            bad("aliases", "'aliases' must map levels to lists of spellings",
                "write e.g. `aliases: {weak: [low, \"1\"]}`")
        elif typ == "continuous":
            bad("aliases", "a continuous indicator has no aliases", "remove 'aliases'")
        else:
            level_of = {norm_text(lv): lv for lv in levels}
            taken = {norm_text(lv): lv for lv in levels}
            for k, v in raw_aliases.items():
                lev = level_of.get(norm_text(_label(k)))
                if lev is None:
                    bad("aliases", f"alias key '{_label(k)}' is not one of the levels "
                        f"{list(levels)}", "use the level names as alias keys")
                    continue
                spellings = v if isinstance(v, (list, tuple)) else [v]
                out = []
                for s in spellings:
                    s = _label(s)
                    other = taken.get(norm_text(s))
                    if other is not None and other != lev:
                        bad("aliases", f"spelling '{s}' is given for both '{other}' and '{lev}'",
                            "each spelling may stand for one level only")
                        continue
                    taken[norm_text(s)] = lev
                    out.append(s)
                aliases[lev] = aliases.get(lev, ()) + tuple(out)

    role = entry.get("role", "moderator")
    if str(role) not in ROLES:
        bad("role", f"unknown role '{role}'", f"use one of {', '.join(ROLES)}")
    describes = entry.get("describes", "unit")
    if str(describes) not in DESCRIBES:
        bad("describes", f"unknown 'describes' value '{describes}'",
            f"use one of {', '.join(DESCRIBES)}")
    carry_back = _as_bool(entry.get("carry_back", True))
    if carry_back is None:
        bad("carry_back", f"'carry_back' must be true or false, got {entry.get('carry_back')!r}",
            "write `carry_back: true` or `carry_back: false`")
    source = entry.get("source")
    if source is not None and (isinstance(source, (list, dict)) or _label(source) == ""):
        bad("source", "'source' must be one code or column name", "write `source: <name>`")
    threshold = entry.get("threshold", 1)
    thr = None if isinstance(threshold, bool) else parse_number(threshold)
    if thr is None or thr <= 0:
        bad("threshold", f"'threshold' must be a positive number, got {threshold!r}",
            "write e.g. `threshold: 1`")
    label = entry.get("label", name)
    notes = {k: _note_text(entry[k]) for k in DESCRIPTIVE_KEYS if entry.get(k) is not None}

    if len(col.problems) > n_before:
        return None
    assert thr is not None  # a missing or bad threshold was recorded as a problem above
    return IndicatorSpec(
        notes=notes, level_notes=level_notes if raw_levels is not None and isinstance(
            raw_levels, (list, tuple)) else {},
        name=name, type=str(typ), levels=levels if typ != "continuous" else (),
        label=str(label) if label is not None else name, aliases=aliases, role=str(role),
        describes=str(describes), carry_back=bool(carry_back),
        source=_label(source) if source is not None else None, threshold=float(thr),
    )


def parse_codebook(source: str | os.PathLike[str] | Mapping[str, Any] | Codebook
                   ) -> tuple[Codebook | None, list[Problem], set[str]]:
    """Parse a codebook without raising.

    Returns
    -------
    codebook : Codebook or None
        The well-formed indicators (``None`` when the file itself is unusable).
    problems : list of Problem
        Every ``malformed_codebook`` problem found.
    malformed : set of str
        Names of indicators that are declared but malformed (left out of ``codebook``).
    """
    if isinstance(source, Codebook):
        return source, [], set()
    col = ProblemCollector()
    data, fname = _read_source(source, col)
    if col.problems:
        return None, col.problems, set()
    if not isinstance(data, Mapping) or not isinstance(data.get("indicators"), Mapping):
        col.add(RULE, "the codebook needs a top-level 'indicators' mapping", file=fname,
                column="indicators",
                hint="start the file with `indicators:` and indent one entry per indicator")
        return None, col.problems, set()
    for k in data:
        if k not in CODEBOOK_KEYS:
            col.add(RULE, f"unknown top-level key '{k}'", file=fname, column=str(k), count=1,
                    examples=[str(k)], hint=f"allowed keys: {', '.join(CODEBOOK_KEYS)}")
    specs: dict[str, IndicatorSpec] = {}
    malformed: set[str] = set()
    for name, entry in data["indicators"].items():
        name = _label(name)
        spec = _parse_indicator(name, entry, col, fname)
        if spec is None:
            malformed.add(name)
        else:
            specs[name] = spec
    if not data["indicators"]:
        col.add(RULE, "the codebook declares no indicators", file=fname, column="indicators",
                hint="add at least one indicator under `indicators:`")
    desc = data.get("description") or ""
    return Codebook(specs, str(desc), fname), col.problems, malformed


def load_codebook(source: str | Path | Mapping[str, Any] | Codebook) -> Codebook:
    """Read and check a codebook.

    Parameters
    ----------
    source : str, Path, dict or Codebook
        Path to the YAML file, or its content as a dict.

    Returns
    -------
    Codebook

    Raises
    ------
    ConfigError
        With every ``malformed_codebook`` problem (unknown keys, missing type, ordinal without
        levels, duplicate levels, bad role, ...), all found in one pass.
    """
    codebook, problems, _ = parse_codebook(source)
    if problems or codebook is None:
        raise ConfigError(problems)
    return codebook


__all__ = [
    "BINARY_ALIASES",
    "DESCRIBES",
    "INDICATOR_TYPES",
    "ROLES",
    "Codebook",
    "IndicatorSpec",
    "column_key",
    "is_empty",
    "load_codebook",
    "norm_text",
    "parse_codebook",
    "parse_number",
]
