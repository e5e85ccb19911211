"""The packaging files agree with each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: PyPI name -> conda-forge name where they differ
PIP_TO_CONDA = {"matplotlib": "matplotlib-base"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0].strip().lower()


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_lists_the_same_dependencies():
    proj = _pyproject()["project"]
    pip_names = {_name(r) for r in proj["dependencies"]}
    pip_names |= {_name(r) for r in proj["optional-dependencies"]["test"]}
    pip_names = {PIP_TO_CONDA.get(n, n) for n in pip_names}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)}
    conda -= {"python", "pip"}
    assert pip_names == conda, (
        f"only in pyproject: {sorted(pip_names - conda)}; only in environment.yml: "
        f"{sorted(conda - pip_names)}")


def test_environment_yml_versions_match_pyproject():
    proj = _pyproject()["project"]
    spec = {PIP_TO_CONDA.get(_name(r), _name(r)): r[len(_name(r)):].strip()
            for r in proj["dependencies"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    for d in env["dependencies"]:
        if isinstance(d, str) and _name(d) in spec:
            assert d[len(_name(d)):].strip() == spec[_name(d)], d


def test_python_requirement_and_license():
    proj = _pyproject()["project"]
    assert proj["requires-python"] == ">=3.12"
    assert "BSD 3-Clause" in (ROOT / "LICENSE").read_text()
    assert (ROOT / ".python-version").read_text().strip() == "3.12"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    cmd = '-m venv .venv && .venv/bin/pip install -q -e ".[test]" && .venv/bin/pytest -n 2'
    assert cmd in ci
    assert "python3.12 " + cmd in readme
