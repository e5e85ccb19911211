"""Interrupts and incomplete posteriors (issue 17): Ctrl-C and SIGTERM stop a run cleanly,
nothing is written as complete, the exit code is 130; the diagnostics gate fails a posterior
with missing draws, undefined diagnostics or fewer draws than asked.

The sampler is PyMC's mock sampler (prior draws) made to behave like nutpie on Ctrl-C: it
catches the KeyboardInterrupt and returns the draws made so far. One test sends a real
SIGINT to a ``qicstats run`` subprocess; a slow-marked one does it to real nutpie sampling.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from _hostile import BASE_CONFIG, Untouched, mock_sampler, project

from qicstats.cli import EXIT_INTERRUPTED, main
from qicstats.errors import RunInterrupted
from qicstats.pipeline import run
from qicstats.results.diagnostics import compute_diagnostics

pytestmark = pytest.mark.filterwarnings("ignore:The effect of Potentials:UserWarning")
TESTS = Path(__file__).parent


def _posterior(chains: int = 2, draws: int = 100, *, asked: int | None = None,
               seed: int = 0) -> xr.DataTree:
    rng = np.random.default_rng(seed)
    post = xr.Dataset({"a": (("chain", "draw"), rng.normal(size=(chains, draws))),
                       "b": (("chain", "draw", "k"), rng.normal(size=(chains, draws, 3)))})
    ss = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((chains, draws), bool)),
                     "energy": (("chain", "draw"), rng.normal(size=(chains, draws)))})
    tree = xr.DataTree.from_dict({"posterior": post, "sample_stats": ss})
    if asked is not None:
        tree.attrs["qicstats_sampler"] = json.dumps({"draws": asked, "chains": chains})
    return tree


def _no_leftovers(root: Path) -> None:
    hidden = [p for p in root.rglob(".*") if ".partial-" in p.name or ".old-" in p.name]
    assert not hidden, hidden


# ---- the gate ------------------------------------------------------------------------------
def test_gate_passes_a_whole_posterior():
    dg = compute_diagnostics(_posterior(4, 500, asked=500), ["a", "b"])
    assert dg.verdict in ("pass", "warn") and not dg.fail_reasons


def test_gate_fails_fewer_draws_than_recorded():
    dg = compute_diagnostics(_posterior(2, 100, asked=1000), ["a", "b"])
    assert dg.verdict == "fail"
    assert "only 100 of 1000 draws per chain" in dg.fail_reasons[0]


def test_gate_fails_fewer_draws_than_passed_in():
    dg = compute_diagnostics(_posterior(2, 100), ["a", "b"], expected_draws=400)
    assert dg.verdict == "fail" and "only 100 of 400" in dg.headline()


def test_gate_fails_fewer_chains():
    dg = compute_diagnostics(_posterior(2, 100), ["a"], expected_chains=4)
    assert dg.verdict == "fail" and "only 2 of 4 chains" in dg.fail_reasons[0]


def test_gate_fails_nan_padded_draws():
    tree = _posterior(2, 100, asked=100)
    post = tree.posterior.to_dataset()
    a = post["a"].values.copy()
    a[1, 60:] = np.nan  # nutpie pads a chain that stopped early with NaN
    post["a"] = (("chain", "draw"), a)
    tree["posterior"] = post
    dg = compute_diagnostics(tree, ["a", "b"])
    assert dg.verdict == "fail"
    assert any("missing (NaN or infinite) draws in a" in r for r in dg.fail_reasons)


def test_gate_fails_when_nothing_can_be_checked():
    tree = _posterior(2, 50)
    post = tree.posterior.to_dataset()
    post["a"] = (("chain", "draw"), np.zeros((2, 50)))  # constant: left out
    tree["posterior"] = post
    dg = compute_diagnostics(tree, ["a"])
    assert dg.verdict == "fail" and "no parameter could be checked" in dg.fail_reasons[0]
    assert not np.isfinite(dg.max_rhat)


# numpy warns about the means and variances of no draws: that is the point of the test
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_gate_fails_an_empty_posterior():
    dg = compute_diagnostics(_posterior(2, 0, asked=100), ["a", "b"])
    assert dg.verdict == "fail"


def test_gate_warns_about_the_fast_preset():
    tree = _posterior(4, 500, asked=500)
    tree.attrs["qicstats_preset"] = "fast"
    dg = compute_diagnostics(tree, ["a", "b"])
    assert dg.verdict in ("warn", "fail")
    assert any("fast preset" in r for r in dg.warn_reasons)


def test_gate_diagnostics_frame_has_the_draw_check():
    frame = compute_diagnostics(_posterior(2, 10, asked=20), ["a"]).to_frame()
    row = frame[frame["check"] == "draws per chain"].iloc[0]
    assert row["status"] == "fail" and row["value"] == 10


# ---- the pipeline on a partial trace -------------------------------------------------------
@pytest.mark.parametrize("kind", ["short", "nan-chain"])
def test_partial_trace_is_an_interrupted_run(tmp_path, monkeypatch, kind):
    cfg = project(tmp_path)
    mock_sampler(monkeypatch, cut_to=5 if kind == "short" else None,
                 nan_chain=kind == "nan-chain")
    guard = Untouched(tmp_path)
    with pytest.raises(RunInterrupted, match="nothing was written"):
        run(cfg, out=tmp_path / "runs" / "x")
    guard.check()
    assert not (tmp_path / "runs").exists()
    _no_leftovers(tmp_path)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_while_sampling_exits_130_and_writes_nothing(tmp_path, monkeypatch, capsys,
                                                            sig):
    cfg = project(tmp_path)
    handler_before = signal.getsignal(sig)

    def send() -> None:
        os.kill(os.getpid(), sig)
        time.sleep(10)  # the handler raises KeyboardInterrupt here

    mock_sampler(monkeypatch, before=send)
    guard = Untouched(tmp_path)
    code = main(["run", str(cfg), "--out", str(tmp_path / "runs" / "x"), "--quiet"])
    guard.check()
    assert code == EXIT_INTERRUPTED == 130
    err = capsys.readouterr().err
    assert f"stopped by {sig.name}" in err and "nothing was written" in err
    assert not (tmp_path / "runs").exists()
    _no_leftovers(tmp_path)
    # the run's handlers are gone again
    assert signal.getsignal(sig) == handler_before


def test_keyboard_interrupt_before_sampling_exits_130(tmp_path, monkeypatch, capsys):
    from qicstats import pipeline

    cfg = project(tmp_path)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "build", boom)
    assert main(["run", str(cfg), "--out", str(tmp_path / "runs" / "x"), "--quiet"]) == 130
    assert "nothing was written" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_interrupt_while_writing_keeps_the_old_run(tmp_path, monkeypatch):
    from qicstats import pipeline

    cfg = project(tmp_path)
    mock_sampler(monkeypatch)
    out = tmp_path / "runs" / "x"
    run(cfg, out=out, report=False)
    before = (out / "estimands.csv").read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_move_into_place", boom)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, out=out, overwrite=True, report=False)
    assert (out / "estimands.csv").read_bytes() == before
    _no_leftovers(tmp_path)


_CHILD = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import pytest
from _hostile import mock_sampler
def wait():
    print("SAMPLING", file=sys.stderr, flush=True)
    time.sleep(60)
mock_sampler(pytest.MonkeyPatch(), before=wait)
from qicstats.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("sig", [signal.SIGINT], ids=["SIGINT"])
def test_real_signal_to_a_run_subprocess(tmp_path, sig):
    cfg = project(tmp_path)
    guard = Untouched(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(TESTS), "run", str(cfg), "--out",
         str(tmp_path / "runs" / "x")], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        deadline = time.monotonic() + 120
        for line in proc.stderr:
            if "SAMPLING" in line or time.monotonic() > deadline:
                break
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    guard.check()
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_real_nutpie_sampling_is_interrupted_cleanly(tmp_path, sig):
    """Real nutpie: the partial trace it returns on an interrupt is never written."""
    import copy

    c = copy.deepcopy(BASE_CONFIG)
    c["sampler"].update(backend="nutpie", draws=100_000, tune=200)
    cfg = project(tmp_path, c)
    proc = subprocess.Popen([sys.executable, "-m", "qicstats", "run", str(cfg), "--out",
                             str(tmp_path / "runs" / "x")], stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "sampling:" in line:
                break
        time.sleep(20)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "nothing was written" in err
    assert not (tmp_path / "runs").exists()
