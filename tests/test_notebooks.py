"""The analyst notebooks in ``notebooks/`` run top to bottom (issue: notebooks executed in CI).

``test_notebook_executes`` (marker ``notebooks``) runs every notebook with nbclient in a
temporary working copy (the committed files, with their saved outputs, are never modified),
with ``QICSTATS_FAST=1`` in the kernel's environment (2 chains x (200 tune + 150 draws)) and a
per-cell timeout; any error in any cell fails the test. Deselect with ``-m 'not notebooks'``.

``test_committed_notebook`` checks the committed files without running them: executed in
order with saved outputs, no error outputs, the FAST switch in the first code cell, no
absolute paths of the machine that executed them, and a modest file size.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
#: seconds any one cell may take in FAST mode before the test fails
CELL_TIMEOUT = 900
#: the committed notebooks (figures as modest PNGs) stay below this
MAX_BYTES = 2_000_000

nbformat = pytest.importorskip("nbformat")


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_there_are_notebooks() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert {"01_quickstart.ipynb", "02_qualitative_indicators.ipynb",
            "03_comparing_models.ipynb", "04_reproducible_config.ipynb"} <= names
    assert (NOTEBOOK_DIR / "README.md").is_file()
    ignore = (NOTEBOOK_DIR / "_output" / ".gitignore").read_text()
    assert "*" in ignore.split()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_notebook(path: Path) -> None:
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is over {MAX_BYTES} bytes"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    assert cells, "no code cells"
    assert 'os.environ.get("QICSTATS_FAST") == "1"' in cells[0].source
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= len(cells) // 2, \
        "a notebook for analysts explains its steps"
    counts = [c.execution_count for c in cells]
    assert None not in counts, "committed without outputs: execute it before committing"
    assert counts == sorted(counts), "cells were executed out of order"
    machine_paths = re.compile(r"(/work/|/home/|/root/|/tmp/|/Users/|[A-Z]:\\\\Users)")
    for c in cells:
        for out in c.get("outputs", []):
            assert out.get("output_type") != "error", f"error output in: {c.source[:80]!r}"
            text = out.get("text", "") + "".join(
                v for k, v in out.get("data", {}).items() if k.startswith("text/")
                and isinstance(v, str))
            assert not machine_paths.search(text), \
                f"absolute path in the output of: {c.source[:80]!r}"


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_executes(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # a working copy laid out like the repository: notebooks/ next to data/
    work = tmp_path / "notebooks"
    work.mkdir()
    shutil.copy2(path, work / path.name)
    shutil.copytree(REPO / "data" / "synthetic", tmp_path / "data" / "synthetic")
    monkeypatch.setenv("QICSTATS_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # the kernel must be this interpreter (jupyter_client maps the "python" of the python3
    # kernelspec to sys.executable; make that explicit for environments on PATH)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep
                       + os.environ.get("PATH", ""))
    committed = path.read_bytes()
    nb = nbformat.read(work / path.name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(work)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [c.source[:80] for c in nb.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    first = next(c for c in nb.cells if c.cell_type == "code")
    printed = "".join(o.get("text", "") for o in first.outputs if o.get("output_type") == "stream")
    assert "FAST=True" in printed, "the kernel did not see QICSTATS_FAST=1"
    assert path.read_bytes() == committed, "the committed notebook was modified"
