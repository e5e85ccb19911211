"""Misuses of the command line (issue 17): honest exit codes, ``--overwrite`` that never
deletes what qicstats did not write, outputs checked before sampling, ``-o`` never over an
input file, broken run folders, leftovers of killed runs.

Each case asserts the exact exit code and message and that every input file is
byte-identical afterwards. Nothing here samples (checks happen before sampling; the sampler
is mocked where a run must exist).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from _hostile import Untouched, mock_sampler, project

import qicstats.cli.validate as cli_validate
from qicstats.cli import EXIT_INTERNAL, main
from qicstats.errors import ConvergenceError, OutputError, QicstatsError, RunExistsError
from qicstats.pipeline import leftovers, run

pytestmark = pytest.mark.filterwarnings("ignore:The effect of Potentials:UserWarning")


@pytest.fixture
def no_sampling(monkeypatch):
    """Fail the test if anything is sampled."""
    import pymc as pm

    def sample(**kw):
        raise AssertionError("sampled although the run should have stopped before")

    monkeypatch.setattr(pm, "sample", sample)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    o = capsys.readouterr()
    return code, o.out, o.err


# ---- exit codes ----------------------------------------------------------------------------
def test_internal_error_exits_3_with_location_and_no_traceback(monkeypatch, capsys):
    def bug(args):
        return {}["missing"]

    monkeypatch.setattr(cli_validate, "run", bug)
    monkeypatch.delenv("QICSTATS_DEBUG", raising=False)
    code, _out, err = cli(capsys, "validate", "--panel", "x.csv")
    assert code == EXIT_INTERNAL == 3
    assert "internal error: KeyError" in err and "report it" in err
    assert "at " in err and "test_hostile_cli.py" in err
    assert "Traceback" not in err


def test_internal_error_full_traceback_on_request(monkeypatch, capsys):
    monkeypatch.setattr(cli_validate, "run", lambda args: 1 / 0)
    monkeypatch.setenv("QICSTATS_DEBUG", "1")
    code, _out, err = cli(capsys, "validate", "--panel", "x.csv")
    assert code == 3 and "ZeroDivisionError" in err and "Traceback" in err


@pytest.mark.parametrize("exc, code", [
    (QicstatsError("bad input"), 2),
    (ConvergenceError("gate failed"), 1),
    (KeyboardInterrupt(), 130),
    (MemoryError(), 3),
    (RecursionError("deep"), 3),
])
def test_each_kind_of_failure_has_its_exit_code(monkeypatch, capsys, exc, code):
    def raise_(args):
        raise exc

    monkeypatch.setattr(cli_validate, "run", raise_)
    assert cli(capsys, "validate", "--panel", "x.csv")[0] == code


def test_validate_bad_data_exits_2(tmp_path, capsys):
    cfg = project(tmp_path)
    (tmp_path / "data" / "panel.csv").write_text("unit,period,numerator,denominator\n"
                                                 "U1,2023-01,5,3\n")
    guard = Untouched(tmp_path)
    code, out, _ = cli(capsys, "validate", "--panel", str(tmp_path / "data" / "panel.csv"))
    guard.check()
    assert code == 2 and "INVALID" in out
    assert cfg.exists()


def test_unknown_verb_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


# ---- run --out: checked before anything is read or sampled ---------------------------------
def test_out_is_a_file(tmp_path, capsys, no_sampling):
    cfg = project(tmp_path)
    target = tmp_path / "data" / "panel.csv"
    guard = Untouched(tmp_path)
    code, _o, err = cli(capsys, "run", str(cfg), "--out", str(target), "--overwrite",
                        "--quiet")
    guard.check()
    assert code == 2 and "is not a folder" in err


def test_out_is_dev_null(tmp_path, capsys, no_sampling):
    cfg = project(tmp_path)
    guard = Untouched(tmp_path)
    code, _o, err = cli(capsys, "run", str(cfg), "--out", "/dev/null", "--quiet")
    guard.check()
    assert code == 2 and "/dev/null" in err and "not a folder" in err


def test_out_below_a_file(tmp_path, capsys, no_sampling):
    cfg = project(tmp_path)
    guard = Untouched(tmp_path)
    code, _o, err = cli(capsys, "run", str(cfg), "--out",
                        str(tmp_path / "analysis.yaml" / "run"), "--quiet")
    guard.check()
    assert code == 2 and "cannot create the folder" in err


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_out_in_a_read_only_folder(tmp_path, capsys, no_sampling):
    cfg = project(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _o, err = cli(capsys, "run", str(cfg), "--out", str(ro / "x"), "--quiet")
    finally:
        ro.chmod(0o755)
    assert code == 2 and "cannot write the run folder" in err


def test_unwritable_out_fails_before_sampling(tmp_path, monkeypatch, no_sampling):
    """As root cannot be kept out of a read-only folder, make the mkdir itself fail."""
    cfg = project(tmp_path)
    real = Path.mkdir

    def mkdir(self, *a, **k):
        if ".partial-" in self.name:
            raise PermissionError(13, "Permission denied")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(OutputError, match="Permission denied"):
        run(cfg, out=tmp_path / "runs" / "x")
    assert not (tmp_path / "runs").exists()


def test_overwrite_never_deletes_the_config_folder(tmp_path, capsys, no_sampling):
    cfg = project(tmp_path)
    (tmp_path / "README.md").write_text("my notes\n")
    guard = Untouched(tmp_path)
    code, _o, err = cli(capsys, "run", str(cfg), "--out", str(tmp_path), "--overwrite",
                        "--quiet")
    guard.check()
    assert code == 2 and "contains the config file" in err


def test_overwrite_never_deletes_a_folder_with_inputs(tmp_path, capsys, no_sampling):
    cfg = project(tmp_path)
    guard = Untouched(tmp_path)
    code, _o, err = cli(capsys, "run", str(cfg), "--out", str(tmp_path / "data"),
                        "--overwrite", "--quiet")
    guard.check()
    assert code == 2 and "contains the input (data.panel) file" in err


def test_overwrite_never_deletes_a_users_folder(tmp_path, capsys, no_sampling):
    cfg = project(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.docx").write_bytes(b"years of work")
    guard = Untouched(tmp_path)
    code, _o, err = cli(capsys, "run", str(cfg), "--out", str(mine), "--overwrite",
                        "--quiet")
    guard.check()
    assert code == 2 and "only a qicstats run folder" in err and "nothing was deleted" in err


def test_overwrite_refuses_a_run_folder_holding_other_files(tmp_path, capsys, monkeypatch):
    cfg = project(tmp_path)
    mock_sampler(monkeypatch)
    out = tmp_path / "runs" / "x"
    run(cfg, out=out, report=False)
    (out / "my_analysis.R").write_text("# mine\n")
    guard = Untouched(tmp_path)
    code, _o, err = cli(capsys, "run", str(cfg), "--out", str(out), "--overwrite", "--quiet")
    guard.check()
    assert code == 2 and "my_analysis.R" in err
    # a fake manifest does not make a folder replaceable either
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "manifest.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(OutputError, match="not one"):
        run(cfg, out=fake, overwrite=True)


def test_overwrite_replaces_a_run_folder(tmp_path, monkeypatch):
    cfg = project(tmp_path)
    mock_sampler(monkeypatch)
    out = tmp_path / "runs" / "x"
    run(cfg, out=out, report=False)
    guard = Untouched(tmp_path, ignore=("runs",))
    with pytest.raises(RunExistsError, match="--overwrite"):
        run(cfg, out=out, report=False)
    res = run(cfg, out=out, overwrite=True, report=False)
    guard.check()
    assert res.folder == out and (out / "manifest.json").exists()


def test_leftovers_of_killed_runs_are_removed_or_reported(tmp_path, monkeypatch):
    cfg = project(tmp_path)
    mock_sampler(monkeypatch)
    runs = tmp_path / "runs"
    runs.mkdir()
    dead = runs / ".x.partial-999999-0123abcd"    # no such process
    dead.mkdir()
    (dead / "estimands.csv").write_text("half\n")
    alive = runs / f".x.partial-{os.getppid()}-0123abce"  # a live process (our parent)
    alive.mkdir()
    old = runs / ".x.partial-89abcdef"             # an older qicstats: no process id
    old.mkdir()
    found = {p.name: rm for p, rm in leftovers(runs / "x")}
    assert found == {dead.name: True, alive.name: False, old.name: False}
    lines: list[str] = []
    run(cfg, out=runs / "x", report=False, progress=lines.append)
    assert not dead.exists() and alive.exists() and old.exists()
    assert any("removed .x.partial-999999" in ln for ln in lines)
    assert any("leftover" in ln and old.name in ln for ln in lines)


# ---- report -o -------------------------------------------------------------------------------
@pytest.fixture
def one_run(tmp_path, monkeypatch) -> Path:
    cfg = project(tmp_path)
    mock_sampler(monkeypatch)
    out = tmp_path / "runs" / "x"
    run(cfg, out=out, report=False)
    return out


def test_report_never_writes_over_an_input(tmp_path, one_run, capsys):
    guard = Untouched(tmp_path)
    code, _o, err = cli(capsys, "report", str(one_run), "-o",
                        str(tmp_path / "data" / "panel.csv"), "--overwrite")
    guard.check()
    assert code == 2 and ".html" in err
    link = tmp_path / "panel.html"
    os.symlink(tmp_path / "data" / "panel.csv", link)
    code, _o, err = cli(capsys, "report", str(one_run), "-o", str(link), "--overwrite")
    guard.check()
    assert code == 2 and "is an input file" in err


def test_report_on_a_missing_folder(tmp_path, capsys):
    code, _o, err = cli(capsys, "report", str(tmp_path / "nope"), "-o", str(tmp_path / "r.html"))
    assert code == 2 and "run folder not found" in err


def test_report_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    project(tmp_path)
    code, _o, err = cli(capsys, "report", str(tmp_path / "data"), "-o", str(tmp_path / "r.html"))
    assert code == 2 and "not a qicstats run folder" in err


def test_report_on_a_file(tmp_path, capsys):
    project(tmp_path)
    code, _o, err = cli(capsys, "report", str(tmp_path / "analysis.yaml"), "-o",
                        str(tmp_path / "r.html"))
    assert code == 2 and "is a file, not a run folder" in err


def test_report_on_a_truncated_manifest(one_run, capsys, tmp_path):
    m = one_run / "manifest.json"
    m.write_bytes(m.read_bytes()[:40])
    code, _o, err = cli(capsys, "report", str(one_run), "-o", str(tmp_path / "r.html"))
    assert code == 2 and "damaged or was truncated" in err


def test_report_on_a_truncated_posterior(one_run, capsys, tmp_path):
    p = one_run / "posterior.nc"
    p.write_bytes(p.read_bytes()[:2000])
    code, _o, err = cli(capsys, "report", str(one_run), "-o", str(tmp_path / "r.html"))
    assert code == 2 and "posterior.nc" in err and "damaged or was truncated" in err
    assert "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


def test_report_on_a_run_missing_its_posterior(one_run, capsys, tmp_path):
    (one_run / "posterior.nc").unlink()
    code, _o, err = cli(capsys, "report", str(one_run), "-o", str(tmp_path / "r.html"))
    assert code == 2 and "incomplete run folder: posterior.nc is missing" in err


def test_report_leaves_no_partial_file(one_run, capsys, tmp_path, monkeypatch):
    from qicstats import pipeline

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "render_runs_report", lambda runs, title=None: "<html>")
    import qicstats.cli.report as rep

    real = rep.os.replace
    monkeypatch.setattr(rep.os, "replace", boom)
    try:
        code, _o, _e = cli(capsys, "report", str(one_run), "-o", str(tmp_path / "r.html"))
    finally:
        monkeypatch.setattr(rep.os, "replace", real)
    assert code == 130
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


# ---- init -o / spc -o ----------------------------------------------------------------------
def test_init_never_writes_over_its_panel(tmp_path, capsys):
    project(tmp_path)
    panel = tmp_path / "data" / "panel.csv"
    guard = Untouched(tmp_path)
    code, _o, err = cli(capsys, "init", "--panel", str(panel), "-o", str(panel), "--overwrite")
    guard.check()
    assert code == 2 and ".yaml" in err


def test_init_never_writes_over_a_yaml_input(tmp_path, capsys):
    project(tmp_path)
    cb = tmp_path / "codebook.yaml"
    cb.write_text("indicators: {}\n")
    guard = Untouched(tmp_path)
    code, _o, err = cli(capsys, "init", "--panel", str(tmp_path / "data" / "panel.csv"),
                        "--indicators", str(tmp_path / "data" / "units.csv"), "--codebook",
                        str(cb), "-o", str(cb), "--overwrite")
    guard.check()
    assert code == 2 and "is an input file" in err


def test_spc_output_is_not_the_input(tmp_path, capsys):
    project(tmp_path)
    data = tmp_path / "spc_summary.csv"
    shutil.copy(tmp_path / "data" / "panel.csv", data)
    guard = Untouched(tmp_path)
    code, _o, err = cli(capsys, "spc", str(data), "--x", "period", "--y", "numerator", "-o",
                        str(tmp_path), "--overwrite")
    guard.check()
    assert code == 2 and "is the input file" in err
