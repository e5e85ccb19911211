"""Codebooks: loading, level normalisation, round trip, malformed-codebook problems."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from qicstats.errors import ConfigError
from qicstats.indicators import Codebook, IndicatorSpec, load_codebook, parse_codebook

DATA = Path(__file__).parent / "data" / "indicators"


def test_load_fixture_codebook() -> None:
    cb = load_codebook(DATA / "codebook.yaml")
    assert cb.names == ["management_support", "coordinator_active", "leadership_talk",
                        "data_feedback"]
    ms = cb["management_support"]
    assert ms == IndicatorSpec(
        name="management_support", type="ordinal", levels=("weak", "moderate", "strong"),
        label="Management support",
        aliases={"weak": ("low", "1"), "moderate": ("medium", "2"), "strong": ("high", "3")},
        role="moderator", describes="unit", carry_back=True, source="Management support",
        threshold=1.0)
    # YAML 1.1 would read the unquoted [no, yes] as booleans; the loader keeps the strings
    assert cb["coordinator_active"].levels == ("no", "yes")
    assert cb["coordinator_active"].threshold == 2.0
    assert cb["leadership_talk"].levels == ()
    assert cb["leadership_talk"].measurement == "interval"
    assert cb["data_feedback"].describes == "site"
    assert cb["data_feedback"].carry_back is False
    assert cb.description.startswith("Codebook of the fixture")


def test_defaults_and_binary_default_levels() -> None:
    cb = load_codebook({"indicators": {"x": {"type": "binary"}}})
    x = cb["x"]
    assert (x.levels, x.role, x.describes, x.carry_back, x.label, x.source, x.threshold) == (
        ("no", "yes"), "moderator", "unit", True, "x", None, 1.0)
    assert x.column == "x"


def test_round_trip_dict_and_yaml() -> None:
    cb = load_codebook(DATA / "codebook.yaml")
    again = load_codebook(cb.to_dict())
    assert again == cb
    assert load_codebook(yaml.safe_load(cb.to_yaml())) == cb


def test_normalize_levels_aliases_and_builtins() -> None:
    cb = load_codebook(DATA / "codebook.yaml")
    ms = cb["management_support"]
    assert ms.normalize("Strong") == "strong"
    assert ms.normalize("  MODERATE ") == "moderate"
    assert ms.normalize("low") == "weak"
    assert ms.normalize("3") == "strong"
    assert ms.normalize(2.0) == "moderate"          # a spreadsheet number
    assert ms.normalize("very strong") is None
    assert ms.normalize("") is None
    assert ms.normalize(float("nan")) is None
    assert ms.normalize("Unassigned") is None       # NVivo's empty attribute
    ca = cb["coordinator_active"]
    for raw, want in [("Yes", "yes"), ("ja", "yes"), ("TRUE", "yes"), (1, "yes"), (True, "yes"),
                      ("nej", "no"), ("0", "no"), ("False", "no"), ("No", "no")]:
        assert ca.normalize(raw) == want, raw
    lt = cb["leadership_talk"]
    assert lt.normalize("0,25") == 0.25
    assert lt.normalize(" 1.5 ") == 1.5
    assert lt.normalize("much") is None


def test_whitespace_inside_levels_is_collapsed() -> None:
    spec = load_codebook({"indicators": {"s": {"type": "ordinal",
                                               "levels": ["not at all", "fully  done"]}}})["s"]
    assert spec.normalize("Not   At all") == "not at all"
    assert spec.normalize("FULLY DONE") == "fully  done"


def test_malformed_codebook_collects_every_problem() -> None:
    bad = {
        "indicators": {
            "a": {"type": "ordinal", "levels": ["low", "high"], "colour": "red"},   # unknown key
            "b": {"levels": ["x", "y"]},                                            # no type
            "c": {"type": "ordinal"},                                               # no levels
            "d": {"type": "ordinal", "levels": ["Low", "low ", "high"]},            # duplicate
            "e": {"type": "binary", "role": "mediator"},                            # bad role
            "ok": {"type": "binary"},
        },
        "colour": "blue",                                                           # top level
    }
    with pytest.raises(ConfigError) as info:
        load_codebook(bad)
    problems = info.value.problems
    assert {p.rule for p in problems} == {"malformed_codebook"}
    where = {(p.examples[0]) for p in problems}
    assert where == {"a.colour", "b.type", "c.levels", "d.levels", "e.role", "colour"}
    # the well-formed indicator survives parse_codebook, the malformed ones are named
    cb, probs, malformed = parse_codebook(bad)
    assert cb is not None and cb.names == ["ok"]
    assert malformed == {"a", "b", "c", "d", "e"}
    assert len(probs) == 6
    assert "indicator 'e'" in next(p.message for p in probs if p.column == "role")


def test_malformed_aliases_and_values() -> None:
    bad = {"indicators": {
        "a": {"type": "ordinal", "levels": ["low", "high"],
              "aliases": {"medium": ["m"], "low": ["x"], "high": ["x"]}},
        "b": {"type": "continuous", "levels": ["a", "b"]},
        "c": {"type": "binary", "levels": ["no", "maybe", "yes"]},
        "d": {"type": "binary", "threshold": 0, "carry_back": "sometimes",
              "describes": "ward"},
        "e": {"type": "count"},
    }}
    _, probs, malformed = parse_codebook(bad)
    cols = sorted((p.examples[0]) for p in probs)
    assert cols == ["a.aliases", "a.aliases", "b.levels", "c.levels", "d.carry_back",
                    "d.describes", "d.threshold", "e.type"]
    assert malformed == {"a", "b", "c", "d", "e"}


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "cb.yaml"
    f.write_text("indicators:\n  a: {type: binary\n  b: 1\n", encoding="utf-8")
    cb, probs, _ = parse_codebook(f)
    assert cb is None and probs[0].rule == "malformed_codebook"
    assert "not valid YAML" in probs[0].message
    cb, probs, _ = parse_codebook(tmp_path / "absent.yaml")
    assert cb is None and "cannot read" in probs[0].message
    cb, probs, _ = parse_codebook({"levels": []})
    assert cb is None and "indicators" in probs[0].message


def test_codebook_equality_ignores_path() -> None:
    a = load_codebook(DATA / "codebook.yaml")
    b = Codebook(dict(a.indicators), a.description)
    assert a == b and a.path is not None and b.path is None


def test_descriptive_keys_round_trip(tmp_path: Path) -> None:
    """description, definition, notes and examples (and level descriptions) are kept as text,
    survive to_dict / to_yaml and change nothing numeric."""
    raw = {
        "description": "Interview codes.",
        "indicators": {
            "support": {
                "type": "ordinal", "role": "moderator",
                "levels": [{"weak": "no visible backing"},
                           {"name": "moderate", "description": "backing in words"},
                           "strong"],
                "description": "How much management backed the work.",
                "definition": "Coded from interviews.",
                "notes": ["second coder for a third", "adjudicated"],
                "examples": ["manager attends huddles"],
            },
            "coord": {"type": "binary", "role": "both"},
        },
    }
    cb = load_codebook(raw)
    s = cb["support"]
    assert s.levels == ("weak", "moderate", "strong")
    assert s.notes == {"description": "How much management backed the work.",
                       "definition": "Coded from interviews.",
                       "notes": "second coder for a third; adjudicated",
                       "examples": "manager attends huddles"}
    assert s.level_notes.get("weak") == "no visible backing"
    assert s.level_notes.get("moderate") == "backing in words"
    assert cb["coord"].notes == {}
    # round trips: dict, YAML text, a file
    assert load_codebook(cb.to_dict()) == cb
    assert load_codebook(yaml.safe_load(cb.to_yaml())) == cb
    path = tmp_path / "codebook.yaml"
    path.write_text(cb.to_yaml(), encoding="utf-8")
    back = load_codebook(path)
    assert back == cb and back["support"].notes == s.notes
    assert back["support"].level_notes == s.level_notes
    # numerically the same indicator as without the descriptive keys
    bare = load_codebook({"indicators": {"support": {"type": "ordinal", "role": "moderator",
                                                     "levels": ["weak", "moderate",
                                                                "strong"]}}})
    b = bare["support"]
    assert (b.levels, b.role, b.type, b.aliases) == (s.levels, s.role, s.type, s.aliases)
    assert s.normalize("Moderate") == b.normalize("Moderate") == "moderate"
