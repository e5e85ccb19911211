"""The house rule on types, checked on every test run: ``mypy src/qicstats`` is clean under the
configuration in ``pyproject.toml`` (``[tool.mypy]``: every package with fully annotated
definitions; untyped third-party libraries are ``Any``).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_is_clean():
    if importlib.util.find_spec("mypy") is None:
        pytest.fail("mypy is missing: install the test extra (pip install -e .[test])")
    proc = subprocess.run([sys.executable, "-m", "mypy", "src/qicstats"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (
        f"mypy src/qicstats failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
