"""The house rules on imports, checked on every test run (ARCHITECTURE.md, "Module map").

- import-linter's contracts in ``pyproject.toml``: the layers (a lower layer never imports a
  higher one), private modules (``_name``) imported only inside their own package, and no
  import cycles between the modules of one package;
- what import-linter cannot see: a private *name* (``from qicstats.models.priors import _X``)
  imported from another package.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "qicstats"


def _lint_imports() -> list[str]:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.fail("lint-imports is missing: install the test extra (pip install -e .[test])")
    return [exe]


def test_import_linter_contracts_are_kept():
    proc = subprocess.run([*_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # the three contracts of pyproject.toml ran (a renamed table would silently check nothing)
    assert out.count(" KEPT") == 3, out


def _package_of(module: str) -> str:
    """``qicstats.models.priors`` -> ``qicstats.models``; top-level modules are their own."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _private_name_imports() -> list[str]:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        here = ".".join(parts)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            if node.level or not node.module.startswith("qicstats"):
                continue
            if _package_of(node.module) == _package_of(here):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: "
                               f"from {node.module} import {alias.name}")
    return bad


def test_no_private_names_imported_across_packages():
    bad = _private_name_imports()
    assert not bad, "private names imported from another package:\n" + "\n".join(bad)


def test_private_name_scan_sees_a_violation(tmp_path, monkeypatch):
    """The scan itself works: a planted cross-package private import is found."""
    pkg = tmp_path / "qicstats"
    (pkg / "a").mkdir(parents=True)
    (pkg / "a" / "m.py").write_text("from qicstats.b.n import _hidden\n"
                                    "from qicstats.a.k import _fine\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "SRC", pkg)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = _private_name_imports()
    assert len(found) == 1 and "import _hidden" in found[0]
