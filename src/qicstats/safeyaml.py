"""Resource limits for reading YAML written by users (configs, codebooks).

``yaml.safe_load`` never runs code, but it will happily recurse through a 10,000-deep list
(RecursionError) and build a 331-byte "billion laughs" alias bomb that expands to millions of
nodes. :func:`yaml_limit_problem` streams the parser's events first and stops at the first
limit, so neither recursion nor alias expansion is ever attempted.
"""

from __future__ import annotations

from typing import Any

import yaml

from qicstats.errors import Problem

#: a config or codebook is a few kilobytes of shallow YAML; beyond these it is a mistake (or
#: an attack)
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 64
MAX_YAML_ALIASES = 1000
MAX_YAML_NODES = 200_000


def yaml_limit_problem(text: str, fname: str | None = None, *, prefix: str = "yaml"
                       ) -> Problem | None:
    """The first resource limit ``text`` breaks, as a :class:`Problem`, or ``None``.

    Parameters
    ----------
    text : str
        The YAML.
    fname : str, optional
        The file, for the message.
    prefix : str
        Rule prefix: ``<prefix>_too_deep`` (nesting beyond :data:`MAX_YAML_DEPTH`),
        ``<prefix>_too_many_aliases`` (more than :data:`MAX_YAML_ALIASES` ``*alias`` uses),
        ``<prefix>_too_large`` (more than :data:`MAX_YAML_NODES` values once aliases are
        followed, or more than :data:`MAX_YAML_BYTES` bytes).

    Notes
    -----
    A syntax error is not reported here (``None``): the parse proper reports it with its
    line.
    """
    what = "the config" if prefix == "config" else "the file"
    if len(text) > MAX_YAML_BYTES:
        return Problem(f"{prefix}_too_large", f"{what} is {len(text):,} characters long, more "
                       f"than the {MAX_YAML_BYTES:,} qicstats reads", file=fname,
                       hint="a qicstats config or codebook is a few kilobytes; is this the "
                            "right file?")
    depth = aliases = 0
    stack: list[list[Any]] = []      # [anchor, expanded node count] of open collections
    sizes: dict[str, int] = {}       # expanded node count of each anchor
    total = 0

    def where(mark: Any) -> str:
        return f" (line {mark.line + 1})" if mark is not None else ""

    try:
        for ev in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    return Problem(f"{prefix}_too_deep", f"{what} nests more than "
                                   f"{MAX_YAML_DEPTH} levels deep{where(ev.start_mark)}",
                                   file=fname, hint="a qicstats config or codebook is a few "
                                   "levels deep; check for a runaway list or mapping")
                stack.append([ev.anchor, 1])
                continue
            if isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
                anchor, n = stack.pop() if stack else (None, 1)
                if anchor:
                    sizes[anchor] = n
            elif isinstance(ev, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_YAML_ALIASES:
                    return Problem(f"{prefix}_too_many_aliases", f"{what} uses more than "
                                   f"{MAX_YAML_ALIASES} YAML aliases (*name)"
                                   f"{where(ev.start_mark)}", file=fname,
                                   hint="write the values out; a config needs few or no "
                                        "anchors and aliases")
                n = sizes.get(ev.anchor, 1)
            elif isinstance(ev, yaml.ScalarEvent):
                n = 1
                if ev.anchor:
                    sizes[ev.anchor] = 1
            else:
                continue
            if stack:
                stack[-1][1] += n
            else:
                total += n
            if total + sum(c[1] for c in stack) > MAX_YAML_NODES:
                return Problem(f"{prefix}_too_large", f"{what} expands to more than "
                               f"{MAX_YAML_NODES:,} values once its aliases are followed (an "
                               f"alias bomb?){where(ev.start_mark)}", file=fname,
                               hint="write the values out without nested aliases")
    except yaml.YAMLError:
        return None
    return None


__all__ = [
    "MAX_YAML_ALIASES",
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "yaml_limit_problem",
]
