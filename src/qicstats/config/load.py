"""Loading, dumping and hashing analysis configs.

:func:`load_config` reads YAML with ``yaml.safe_load`` (never arbitrary Python objects),
validates it against :class:`~qicstats.config.schema.AnalysisConfig` and turns *every* problem
into one :class:`~qicstats.errors.ConfigError`: one :class:`~qicstats.errors.Problem` per broken
rule, its message starting with the key path (``model.trend``) and the config line, naming the
value given, the allowed values and, for unknown keys, the closest allowed key.

Hashing
-------
:func:`config_hash` hashes the *config only*: the SHA-256 of its canonical JSON (sorted keys, no
whitespace, paths as written, i.e. relative to the config file, so moving the analysis folder
keeps the hash; ``sampler.progress`` left out as it changes no result). Data identity is kept
separately, because the same config is rerun on updated data and because a file's bytes are a
poor identity for a table (re-saving a CSV in Excel changes the bytes, not the data):

- :func:`data_file_hashes` gives the SHA-256 of each data file's bytes (for the run manifest);
- :meth:`qicstats.data.PanelData.data_hash` hashes the validated modelling frame.

A run is identified by the pair (config hash, data hash).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from qicstats.config.schema import (
    INDICATOR_PRIORS,
    AnalysisConfig,
    ConfigIssues,
    Issue,
    _path_text,
    resolve_path,
    split_prior_name,
)
from qicstats.errors import ConfigError, Problem
from qicstats.safeyaml import MAX_YAML_BYTES, yaml_limit_problem

#: key paths left out of :func:`config_hash` (they change no result)
HASH_EXCLUDE: tuple[tuple[str, str], ...] = (("sampler", "progress"),)

_QUOTE_HINT = ("YAML reads yes/no/on/off as true/false, 2024-01-01 as a date and 007 as a "
               "number: put such values in quotes")


#: a config larger than this is refused before it is parsed
MAX_CONFIG_BYTES = MAX_YAML_BYTES


def _yaml_limits(text: str, fname: str | None) -> None:
    """Raise ConfigError when the YAML is too deep, has too many aliases or expands too far
    (:func:`qicstats.safeyaml.yaml_limit_problem`).
    """
    prob = yaml_limit_problem(text, fname, prefix="config")
    if prob is not None:
        raise ConfigError([prob])


def _parse_yaml(text: str, fname: str | None) -> tuple[Any, yaml.Node | None, list[Problem]]:
    """(data, node tree, duplicate-key problems); a syntax error raises ConfigError."""
    _yaml_limits(text, fname)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        ctx = getattr(err, "context", None)
        if isinstance(err, yaml.constructor.ConstructorError):
            raise ConfigError([Problem(
                "config_yaml_syntax", f"the config uses a YAML tag that qicstats does not read"
                f"{where}: {what}", file=fname, count=1 if mark else 0,
                examples=(f"line {mark.line + 1}",) if mark else (),
                hint="write plain values (text, numbers, true/false, lists, mappings); tags "
                "such as !!python/... are never executed")]) from None
        raise ConfigError([Problem(
            "config_yaml_syntax", f"the config is not valid YAML{where}: "
            f"{(ctx + ', ') if ctx else ''}{what}", file=fname,
            count=1 if mark else 0, examples=(f"line {mark.line + 1}",) if mark else (),
            hint="check the indentation (spaces, not tabs), colons after keys, and quotes "
            "around values containing ': ' or '#'")]) from None
    return data, root, _duplicate_keys(root, fname)


def _duplicate_keys(root: yaml.Node | None, fname: str | None) -> list[Problem]:
    out: list[Problem] = []
    seen_nodes: set[int] = set()  # an aliased node is checked once, not once per alias

    def visit(node: yaml.Node, path: tuple[str | int, ...]) -> None:
        if id(node) in seen_nodes:
            return
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for k, v in node.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else None
                if key is not None and key in seen:
                    full = _path_text(path + (key,))
                    out.append(Problem(
                        "config_duplicate_key",
                        f"{full} (line {k.start_mark.line + 1}): key '{key}' given twice "
                        f"(first at line {seen[key]})", file=fname,
                        hint="YAML keeps only the last one; remove one of them"))
                elif key is not None:
                    seen[key] = k.start_mark.line + 1
                visit(v, path + ((key,) if key is not None else ()))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                visit(v, path + (i,))

    if root is not None:
        visit(root, ())
    return out


def _node_line(root: yaml.Node | None, path: list[str | int]) -> int | None:
    """1-based line of the key (or item) at ``path`` in the YAML node tree, if found."""
    node, line = root, None
    for el in path:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(el):
                    node, line = v, k.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(el, int) \
                and 0 <= el < len(node.value):
            node = node.value[el]
            line = node.start_mark.line + 1
        else:
            return line
    return line


# ---- pydantic errors -> problems ---------------------------------------------------------
def _is_model(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


def _unwrap(ann: Any) -> Any:
    """Strip Annotated and Optional; prefer a model or container member of a union."""
    origin = get_origin(ann)
    if origin is typing.Annotated:
        return _unwrap(get_args(ann)[0])
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(ann) if a is not type(None)]
        for a in args:
            if _is_model(_unwrap(a)):
                return _unwrap(a)
        if len(args) == 1:
            return _unwrap(args[0])
        for a in args:
            if get_origin(_unwrap(a)) in (tuple, list, dict):
                return _unwrap(a)
    return ann


def _literals(ann: Any) -> list[Any]:
    """Every Literal value inside an annotation (through Annotated/Union/containers)."""
    origin = get_origin(ann)
    if origin is typing.Literal:
        return list(get_args(ann))
    out: list[Any] = []
    if origin in (typing.Annotated,):
        return _literals(get_args(ann)[0])
    if origin in (Union, types.UnionType):
        for a in get_args(ann):
            out += _literals(a)
    return out


class _Located:
    """Where a pydantic error points: the clean key path and what is expected there."""

    def __init__(self, loc: tuple[Any, ...]):
        self.path: list[str | int] = []
        self.model: type[BaseModel] | None = AnalysisConfig  # model the next key belongs to
        self.parent: type[BaseModel] | None = None          # model owning the last key
        self.ann: Any = None                                # annotation at the path
        self.key_ann: Any = None                            # dict key type at the path
        self.unknown_field = False
        for el in loc:
            if self.unknown_field:
                break
            if self.model is not None:
                self.parent = self.model
                self.path.append(el)
                if isinstance(el, str) and el in self.model.model_fields:
                    self.ann = _unwrap(self.model.model_fields[el].annotation)
                    self.model = self.ann if _is_model(self.ann) else None
                else:
                    self.unknown_field = True
                    self.model = None
                continue
            origin = get_origin(self.ann)
            if origin in (tuple, list) and isinstance(el, int):
                self.path.append(el)
                self.ann = _unwrap(get_args(self.ann)[0])
            elif origin is dict and el != "[key]":
                self.path.append(el)
                self.key_ann = get_args(self.ann)[0]
                self.ann = _unwrap(get_args(self.ann)[1])
            else:
                continue  # a union member tag or '[key]'
            self.model = self.ann if _is_model(self.ann) else None

    @property
    def text(self) -> str:
        return _path_text(tuple(self.path))


def _show(v: Any) -> str:
    s = repr(v) if isinstance(v, str) else json.dumps(v, default=str)
    return s if len(s) <= 80 else s[:77] + "..."


def _did_you_mean(given: Any, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(given), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


def _problems_from_validation(err: ValidationError, fname: str | None,
                              root: yaml.Node | None) -> list[Problem]:
    out: list[Problem] = []
    unions: dict[tuple[str | int, ...], list[Mapping[str, Any]]] = {}
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        ctx = e.get("ctx") or {}
        exc = ctx.get("error")
        where = _Located(loc)
        if isinstance(exc, ConfigIssues):
            base = tuple(where.path)
            for issue in exc.issues:
                out.append(_issue_problem(issue, base, fname, root))
            continue
        if len(loc) > len(where.path) and not where.unknown_field and get_args(
                _union_of(where)):
            # pydantic reports a value that fits no member of a union once per member
            # (``StrictBool | Literal["auto"]``: a bool error and a literal error); say it once
            key = tuple(where.path)
            if key in unions:
                unions[key].append(e)
                continue
            unions[key] = [e]
        out.append(_error_problem(e, where, fname, root))
    for key, errs in unions.items():
        if len(errs) < 2:
            continue
        where = _Located(tuple(errs[0]["loc"]))
        i = next(k for k, q in enumerate(out)
                 if q.message.startswith(_prefix(list(key), root) + ":"))
        allowed = ", ".join(_union_choices(_union_of(where)))
        out[i] = Problem("config_wrong_type",
                         f"{_prefix(list(key), root)}: {_show(errs[0].get('input'))} is not an "
                         "allowed value", file=fname, hint="allowed: " + allowed)
    return out


def _union_of(where: _Located) -> Any:
    """The union annotation at ``where`` (``None`` when it is not a union)."""
    if where.parent is None or not where.path or not isinstance(where.path[-1], str):
        return None
    f = where.parent.model_fields.get(where.path[-1])
    ann = f.annotation if f is not None else None
    return ann if get_origin(ann) in (Union, types.UnionType) else None


def _union_choices(ann: Any) -> list[str]:
    """The allowed values or kinds of each member of a union, for a hint."""
    out: list[str] = []
    for member in get_args(ann):
        base = _unwrap(member)
        if _literals(member):
            out += [str(v) for v in _literals(member)]
        elif base is bool:
            out += ["true", "false"]
        elif base is not type(None):
            out.append(getattr(base, "__name__", str(base)))
    return out


def _prefix(path: list[str | int], root: yaml.Node | None) -> str:
    text = _path_text(tuple(path)) or "(top level)"
    line = _node_line(root, path) if root is not None and path else None
    return f"{text} (line {line})" if line else text


def _issue_problem(issue: Issue, base: tuple[str | int, ...], fname: str | None,
                   root: yaml.Node | None) -> Problem:
    path = list(base + tuple(issue.path))
    msg = f"{_prefix(path, root)}: {issue.message}"
    return Problem(issue.rule, msg, file=fname, hint=issue.hint)


def _error_problem(e: Mapping[str, Any], where: _Located, fname: str | None,
                   root: yaml.Node | None) -> Problem:
    kind = e["type"]
    given = e.get("input")
    head = _prefix(where.path, root)
    if kind == "extra_forbidden":
        key = where.path[-1] if where.path else "?"
        allowed = list(where.parent.model_fields) if where.parent is not None else []
        parent = _path_text(tuple(where.path[:-1]))
        return Problem("config_unknown_key",
                       f"{head}: unknown key '{key}'" + (f" in '{parent}'" if parent else ""),
                       file=fname,
                       hint=_did_you_mean(key, allowed) + "allowed keys here: "
                       + ", ".join(allowed))
    if kind == "missing":
        desc = ""
        if where.parent is not None and isinstance(where.path[-1], str):
            f = where.parent.model_fields.get(where.path[-1])
            desc = (f.description or "") if f is not None else ""
        return Problem("config_missing_key", f"{head}: required key is missing", file=fname,
                       hint=desc)
    if kind == "literal_error":
        is_key = "[key]" in e["loc"]
        allowed = _literals(where.key_ann if is_key else where.ann)
        allowed_text = ", ".join(str(a) for a in allowed) or str(
            (e.get("ctx") or {}).get("expected", ""))
        if is_key:
            return Problem("config_unknown_key", f"{head}: unknown key {_show(given)}",
                           file=fname, hint=_did_you_mean(given, [str(a) for a in allowed])
                           + "allowed keys here: " + allowed_text)
        return Problem("config_bad_option", f"{head}: {_show(given)} is not an allowed value",
                       file=fname, hint=_did_you_mean(given, [str(a) for a in allowed])
                       + "allowed: " + allowed_text)
    msg = str(e.get("msg", "invalid value"))
    wrong_type = kind.endswith("_type") or kind.endswith("_parsing") or kind in (
        "int_from_float", "model_type", "dict_type", "list_type", "tuple_type")
    hint = ""
    if wrong_type and (isinstance(given, bool) or type(given).__name__ in ("date", "datetime")
                       or given is None):
        hint = _QUOTE_HINT if given is not None else "give a value (null is not allowed here)"
    if where.ann is not None and _is_model(where.ann) and kind in ("model_type", "dict_type"):
        hint = "this is a section: write its keys indented below it"
    return Problem("config_wrong_type" if wrong_type else "config_invalid_value",
                   f"{head}: {msg[0].lower() + msg[1:]}; given {_show(given)}",
                   file=fname, hint=hint)


# ---- files --------------------------------------------------------------------------------
def _raw_paths(raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key path, path string) of every data file named in a raw config mapping."""
    out: list[tuple[str, str]] = []
    data = raw.get("data")
    if isinstance(data, Mapping):
        for key in ("panel", "units"):
            if isinstance(data.get(key), str) and data[key]:
                out.append((f"data.{key}", data[key]))
    ind = raw.get("indicators")
    if isinstance(ind, Mapping):
        codes = ind.get("codes")
        if isinstance(codes, (str, Mapping)):
            codes = [codes]
        if isinstance(codes, (list, tuple)):
            for i, c in enumerate(codes):
                p = c if isinstance(c, str) else (c.get("path") if isinstance(c, Mapping)
                                                  else None)
                if isinstance(p, str) and p:
                    out.append((f"indicators.codes[{i}].path", p))
        for key in ("codebook", "mapping"):
            if isinstance(ind.get(key), str) and ind[key]:
                out.append((f"indicators.{key}", ind[key]))
    return out


def _file_problems(raw: Mapping[str, Any], base: Path, fname: str | None,
                   root: yaml.Node | None) -> list[Problem]:
    out: list[Problem] = []
    from qicstats.data.io import input_file_problem

    for key, p in _raw_paths(raw):
        full = resolve_path(p, base)
        path = [int(x) if x.isdigit() else x
                for x in key.replace("[", ".").replace("]", "").split(".")]
        bad = input_file_problem(full)
        if bad is None:
            continue
        rule, what, hint = bad
        if rule == "file_not_found":
            rule, hint = "config_file_missing", \
                f"paths are relative to the config file's folder ({base})"
        elif rule == "not_a_file" and full.is_dir():
            rule, hint = "config_file_missing", \
                f"give the file, not its folder; paths are relative to {base}"
        else:
            rule = "config_" + rule
        out.append(Problem(rule, f"{_prefix(path, root)}: {what}", file=fname,
                           count=1, examples=(p,), hint=hint))
    return out


def _codebook_problems(cfg: AnalysisConfig, fname: str | None,
                       root: yaml.Node | None) -> list[Problem]:
    """Indicator names in ``indicators.use`` and ``ind_*_<indicator>`` priors vs the codebook."""
    ind = cfg.indicators
    if ind is None:
        return []
    path = cfg.paths.codebook
    if path is None or not path.is_file():
        return []
    try:
        from qicstats.indicators.codebook import parse_codebook

        cb, _problems, _malformed = parse_codebook(path)
    except Exception:  # noqa: BLE001 - a broken codebook is reported when the data are checked
        return []
    if cb is None or not getattr(cb, "indicators", None):
        return []
    names = list(cb.indicators)
    out: list[Problem] = []
    for i, name in enumerate(ind.use or ()):
        if name not in names:
            out.append(Problem(
                "config_unknown_indicator",
                f"{_prefix(['indicators', 'use', i], root)}: indicator '{name}' is not in the "
                f"codebook", file=fname,
                hint=_did_you_mean(name, names) + "codebook indicators: " + ", ".join(names)))
    for pname in cfg.model.priors:
        gen, suffix = split_prior_name(pname)
        if gen in INDICATOR_PRIORS and suffix is not None and suffix not in names:
            out.append(Problem(
                "config_unknown_prior",
                f"{_prefix(['model', 'priors', pname], root)}: prior '{pname}' names indicator "
                f"'{suffix}', which is not in the codebook", file=fname,
                hint=_did_you_mean(suffix, names) + "codebook indicators: " + ", ".join(names)))
    return out


# ---- public API ---------------------------------------------------------------------------
def load_config(source: str | os.PathLike[str] | Mapping[str, Any] | AnalysisConfig, *,
                base_dir: str | os.PathLike[str] | None = None,
                check_files: bool = True) -> AnalysisConfig:
    """Read and validate an analysis config.

    Parameters
    ----------
    source : path, dict or AnalysisConfig
        A YAML file (read with ``yaml.safe_load``), a mapping of the same structure, or a
        config (returned with ``base_dir`` applied when given).
    base_dir : path, optional
        The folder relative data paths are resolved against. Default: the config file's
        folder; for a mapping, the current working directory.
    check_files : bool
        Check that every data file named exists (``config_file_missing``).

    Returns
    -------
    AnalysisConfig
        Frozen; paths as written, resolved ones in :attr:`AnalysisConfig.paths`.

    Raises
    ------
    ConfigError
        With one problem per broken rule (rules ``config_yaml_syntax``,
        ``config_duplicate_key``, ``config_not_mapping``, ``config_unknown_key``,
        ``config_missing_key``, ``config_bad_option``, ``config_wrong_type``,
        ``config_invalid_value``, ``config_unknown_prior``, ``config_invalid_prior``,
        ``config_unknown_level``, ``config_unknown_indicator``, ``config_file_missing``,
        ``config_not_found``). Each message starts with the key path, e.g. ``model.trend``.
    """
    fname: str | None = None
    path: Path | None = None
    root: yaml.Node | None = None
    problems: list[Problem] = []
    raw: Any
    cfg: AnalysisConfig | None
    if isinstance(source, AnalysisConfig):
        cfg = source
        if base_dir is not None:
            cfg = cfg.with_base_dir(base_dir, cfg.source)
        if check_files:
            raw = cfg.model_dump(mode="json")
            problems = _file_problems(raw, cfg.base_dir, None, None)
            if problems:
                raise ConfigError(problems)
        return cfg
    if isinstance(source, Mapping):
        raw = source
        base = Path(os.path.abspath(base_dir if base_dir is not None else Path.cwd()))
    else:
        path = Path(source)
        fname = str(source)
        from qicstats.data.io import input_file_problem

        bad = input_file_problem(path, max_bytes=MAX_CONFIG_BYTES)
        if bad is not None:
            rule, what, hint = bad
            if rule == "file_not_found":
                raise ConfigError([Problem(
                    "config_not_found", f"config file not found: {os.path.abspath(path)}",
                    file=fname, hint="give the path of an analysis YAML; `qicstats init` "
                    "writes one")])
            raise ConfigError([Problem(
                "config_" + rule, f"the config {what}", file=fname,
                hint={"file_too_large": f"a config is a few kilobytes of YAML (the limit is "
                      f"{MAX_CONFIG_BYTES:,} bytes); is this the right file?",
                      "not_regular_file": "give the analysis YAML saved on disk (pipes and "
                      "devices are not read); `qicstats init` writes one"}.get(rule, hint))])
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError([Problem(
                "config_unreadable", f"the config file cannot be read as UTF-8 text: {err}",
                file=fname, hint="save the config as UTF-8 text")]) from None
        raw, root, problems = _parse_yaml(text, fname)
        base = Path(os.path.abspath(base_dir if base_dir is not None else path.parent))
        if raw is None:
            raise ConfigError([Problem("config_empty", "the config file is empty", file=fname,
                                       hint="`qicstats init --panel FILE` writes a complete "
                                       "config")])
    if not isinstance(raw, Mapping):
        raise ConfigError([Problem(
            "config_not_mapping", f"the config must be a mapping of sections (data:, model:, "
            f"...), got {type(raw).__name__}", file=fname,
            hint="start with `data:` and indent the section's keys below it")])

    cfg = None
    try:
        cfg = AnalysisConfig.model_validate(dict(raw))
    except ValidationError as err:
        problems += _problems_from_validation(err, fname, root)
    if check_files:
        problems += _file_problems(raw, base, fname, root)
    if cfg is not None and not problems:
        cfg = cfg.with_base_dir(base, path)
        problems += _codebook_problems(cfg, fname, root)
    if problems or cfg is None:
        raise ConfigError(problems)
    return cfg


def config_dict(cfg: AnalysisConfig) -> dict[str, Any]:
    """The config as plain JSON-able data (every key, defaults filled, paths as written)."""
    return cfg.model_dump(mode="json")


def dump_config(cfg: AnalysisConfig) -> str:
    """The resolved config as YAML (every key, defaults filled, declaration order).

    Loading the text again (from the same folder) gives an equal config with the same
    :func:`config_hash`.
    """
    return yaml.dump(config_dict(cfg), Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=100)


class _Dumper(yaml.SafeDumper):
    """Block mappings, with lists of scalars in flow style (``levels: [collaborative, site]``)."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(x, (dict, list)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def canonical_json(cfg: AnalysisConfig) -> str:
    """The canonical JSON that :func:`config_hash` hashes (sorted keys, no whitespace)."""
    d = config_dict(cfg)
    for section, key in HASH_EXCLUDE:
        if isinstance(d.get(section), dict):
            d[section].pop(key, None)
    return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def config_hash(cfg: AnalysisConfig) -> str:
    """SHA-256 (hex) of the config's canonical JSON.

    The config alone: paths as written (moving the analysis folder keeps the hash) and no
    data content; see the module docstring and :func:`data_file_hashes`.
    """
    return hashlib.sha256(canonical_json(cfg).encode("utf-8")).hexdigest()


def data_file_hashes(cfg: AnalysisConfig) -> dict[str, str]:
    """SHA-256 (hex) of each data file's bytes, by key path (``data.panel``, ...).

    Raises
    ------
    ConfigError
        A data file is missing.
    """
    out: dict[str, str] = {}
    problems: list[Problem] = []
    for key, path in cfg.paths.items():
        if not path.is_file():
            problems.append(Problem("config_file_missing", f"{key}: file not found: {path}",
                                    file=str(cfg.source) if cfg.source else None))
            continue
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        out[key] = h.hexdigest()
    if problems:
        raise ConfigError(problems)
    return out


def model_spec(cfg: AnalysisConfig) -> Any:
    """The :class:`qicstats.models.ModelSpec` of a config.

    ``model:`` maps onto it 1:1; ``family`` and ``covariates`` come from ``data:``, the
    indicators from ``indicators.use`` (``None``: every indicator supplied).
    """
    from qicstats.models.spec import ModelSpec

    m = cfg.model
    return ModelSpec(
        family=cfg.data.family,
        trend=m.trend,
        effect=m.effect,
        spline_knots=m.spline_knots,
        seasonality=m.seasonality,
        phases=m.phases,
        random={k: (tuple(v) if v is not None else None) for k, v in m.random.items()},
        correlated=tuple(m.correlated),
        centered=dict(m.centered),
        ramp=m.ramp,
        ar1=m.ar1,
        covariates=tuple(cfg.data.covariates),
        indicators=(tuple(cfg.indicators.use) if cfg.indicators is not None
                    and cfg.indicators.use is not None else None),
        zero_sum=m.zero_sum,
        decorrelate=m.decorrelate,
        priors={k: dict(v) for k, v in m.priors.items()},
        spread_min_groups=m.spread_min_groups,
    )


__all__ = [
    "HASH_EXCLUDE",
    "canonical_json",
    "config_dict",
    "config_hash",
    "data_file_hashes",
    "dump_config",
    "load_config",
    "model_spec",
]
