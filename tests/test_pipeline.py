"""Config-driven runs end to end, with PyMC's mock sampler (prior draws, no MCMC)."""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pymc as pm
import pytensor
import pytest
import yaml
from pymc.testing import mock_sample

from qicstats.cli import main
from qicstats.errors import ConfigError, RunExistsError
from qicstats.pipeline import RUN_FILES, load_run, prepare, run
from qicstats.results import ESTIMAND_COLUMNS

# prior draws ignore the latent-code Potential: expected with the mock sampler only
pytestmark = pytest.mark.filterwarnings("ignore:The effect of Potentials:UserWarning")

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "data" / "synthetic" / "small"


def _stats(size):
    return np.zeros(size, dtype=bool)


def _energy(size):
    return np.random.default_rng(0).normal(size=size)


@pytest.fixture
def mock_pymc(monkeypatch):
    """Replace pm.sample by prior draws (seeded), with the sample stats the gate reads."""
    fake = partial(mock_sample, sample_stats={"diverging": _stats, "energy": _energy})
    calls = []

    def sample(**kw):
        calls.append(kw)
        # prior draws through PyTensor's Python linker: Numba would spend ~16 s compiling
        # the random-variable graph in every test, for 30 draws
        with pytensor.config.change_flags(mode="FAST_COMPILE"):
            return fake(**kw)

    monkeypatch.setattr(pm, "sample", sample)
    return calls


@pytest.fixture
def config(tmp_path) -> Path:
    """An analysis of the shipped small dataset, in a scratch folder (inputs copied)."""
    data = tmp_path / "data"
    shutil.copytree(SMALL, data)
    cfg = {
        "name": "small",
        "data": {"panel": "data/panel.csv", "units": "data/units.csv", "family": "binomial",
                 "levels": ["collaborative", "site"]},
        "indicators": {"codes": [{"path": "data/indicators.csv"}],
                       "codebook": "data/codebook.yaml", "consensus": "majority"},
        "model": {"trend": "linear"},
        "estimands": {"horizons": [6]},
        "sampler": {"backend": "pymc", "chains": 2, "draws": 30, "tune": 10, "seed": 7,
                    "progress": False},
        "report": {"frequentist": False},
    }
    path = tmp_path / "analysis.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_run_writes_a_complete_folder(mock_pymc, config, tmp_path):
    out = tmp_path / "runs" / "small"
    res = run(config, out=out)
    assert res.folder == out.resolve()
    files = {p.name for p in out.iterdir()}
    expected = set(RUN_FILES) - {"frequentist.csv", "sensitivity_by_coder.csv"}
    assert expected <= files
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 7 and manifest["verdict"] in ("pass", "warn", "fail")
    assert len(manifest["config_hash"]) == 64 and len(manifest["data_hash"]) == 64
    assert "pymc" in manifest["versions"]
    import pandas as pd

    est = pd.read_csv(out / "estimands.csv")
    assert tuple(est.columns) == ESTIMAND_COLUMNS
    assert {"overall", "collaborative", "unit", "indicator"} <= set(est["scope"])
    assert (est["lower"] <= est["upper"]).all()
    from qicstats.results.identification import IDENTIFICATION_COLUMNS

    ident = pd.read_csv(out / "identification.csv")
    assert tuple(ident.columns) == IDENTIFICATION_COLUMNS
    # the default effect with comparison units: the exposure-time curve, one row per horizon
    assert ident["parameter"].str.startswith("effect_curve[h=").all() and len(ident) > 1
    # prior draws (the mock sampler) barely contract: weak, and the gate says so first
    assert ident["weak"].any() and manifest["verdict"] in ("warn", "fail")
    assert manifest["diagnostics"]["identification_reasons"]
    # no partial folders are left next to the run
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]
    # one sampling call with the config's settings
    assert mock_pymc[0]["random_seed"] == 7 and mock_pymc[0]["chains"] == 2


def test_existing_folder_is_not_overwritten_without_asking(mock_pymc, config, tmp_path):
    out = tmp_path / "runs" / "small"
    run(config, out=out, report=False)
    stamp = (out / "manifest.json").read_text()
    with pytest.raises(RunExistsError, match="--overwrite"):
        run(config, out=out, report=False)
    assert (out / "manifest.json").read_text() == stamp
    run(config, out=out, overwrite=True)
    assert (out / "report.html").exists()


def test_interrupted_run_leaves_nothing_that_looks_complete(mock_pymc, config, tmp_path,
                                                            monkeypatch):
    import qicstats.report as report

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "render_run_report", boom)
    out = tmp_path / "runs" / "small"
    with pytest.raises(KeyboardInterrupt):
        run(config, out=out)
    assert not out.exists()
    # nothing is left: no partial folder, and the runs/ folder the run created is gone too
    assert not (tmp_path / "runs").exists()


def test_same_config_and_seed_give_identical_tables(mock_pymc, config, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    run(config, out=a, report=False)
    run(config, out=b, report=False)
    for name in ("estimands.csv", "summary.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_inputs_are_not_modified(mock_pymc, config, tmp_path):
    before = {p.name: p.read_bytes() for p in (tmp_path / "data").iterdir()}
    run(config, out=tmp_path / "r", report=False)
    after = {p.name: p.read_bytes() for p in (tmp_path / "data").iterdir()}
    assert before == after


def test_run_folder_loads_back_and_checks_the_data(mock_pymc, config, tmp_path):
    out = tmp_path / "r"
    res = run(config, out=out, report=False)
    back = load_run(out)
    np.testing.assert_allclose(back.result.estimands()["mean"], res.result.estimands()["mean"])
    # change the data: the stored posterior no longer belongs to them
    panel = tmp_path / "data" / "panel.csv"
    lines = panel.read_text().splitlines()
    head, first = lines[0].split(","), lines[1].split(",")
    first[head.index("numerator")] = str(int(first[head.index("numerator")]) + 1)
    lines[1] = ",".join(first)
    panel.write_text("\n".join(lines) + "\n")
    from qicstats.errors import IdentityError

    with pytest.raises(IdentityError):
        load_run(out)


def test_typo_in_config_fails_before_sampling(mock_pymc, config, capsys):
    cfg = yaml.safe_load(config.read_text())
    cfg["model"]["trned"] = "spline"
    config.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as err:
        prepare(config)
    assert "model.trned" in str(err.value) and "trend" in str(err.value)
    assert main(["run", str(config), "--quiet"]) == 2
    assert "trned" in capsys.readouterr().err
    assert mock_pymc == []


def test_cli_run_exit_codes_follow_the_gate(mock_pymc, config, tmp_path, capsys):
    code = main(["run", str(config), "--out", str(tmp_path / "cli"), "--quiet"])
    res = load_run(tmp_path / "cli")
    verdict = res.result.verdict
    strict = 1 if verdict == "fail" else 0
    assert code == strict
    out = capsys.readouterr().out
    assert "diagnostics:" in out.splitlines()[0]
    # a second report from the run folder
    html = tmp_path / "again.html"
    assert main(["report", str(tmp_path / "cli"), "-o", str(html)]) == 0
    assert html.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
    assert main(["report", str(tmp_path / "cli"), "-o", str(html)]) == 2  # exists


def test_validate_config_verb(mock_pymc, config, capsys):
    assert main(["validate", str(config)]) == 0
    assert "valid" in capsys.readouterr().out
    assert mock_pymc == []
