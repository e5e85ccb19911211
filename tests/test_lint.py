"""The house rule on style, checked on every test run: ``ruff check src tests benchmarks`` is
clean under the configuration in ``pyproject.toml`` (``[tool.ruff]``).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean():
    if importlib.util.find_spec("ruff") is None:
        pytest.fail("ruff is missing: install the test extra (pip install -e .[test])")
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "src", "tests", "benchmarks"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (
        f"ruff check src tests benchmarks failed (exit {proc.returncode}):\n"
        f"{proc.stdout}{proc.stderr}")
