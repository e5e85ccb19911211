"""Tests of the HTML reports and paper tables (``qicstats.report``), on a stored posterior.

No sampling: the fit is ``tests/data/posteriors/tiny_binomial.nc`` (a short, unconverged run,
so its diagnostics fail: the red banner).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from qicstats.errors import ConfigError, DataValidationError
from qicstats.report import (
    SECTIONS,
    RunView,
    config_differences,
    estimands_latex,
    estimands_markdown,
    markdown_table,
    render_comparison_report,
    render_run_report,
    write_tables,
)
from qicstats.results import FitResult

POSTERIORS = Path(__file__).parent / "data" / "posteriors"
DATE = "2026-11-20"
EVIL = "<script>alert(1)</script>"
CONFIG_TEXT = "model:\n  trend: linear\nsampler:\n  seed: 11\n"


def _model():
    sys.path.insert(0, str(POSTERIORS))
    try:
        from make_posteriors import tiny_binomial_model
    finally:
        sys.path.remove(str(POSTERIORS))
    return tiny_binomial_model()


@pytest.fixture(scope="module")
def tiny():
    data, im, qm = _model()
    idata = xr.open_datatree(POSTERIORS / "tiny_binomial.nc", engine="h5netcdf").load()
    return data, im, qm, idata


@pytest.fixture(scope="module")
def fr(tiny):
    data, im, qm, idata = tiny
    return FitResult(qm, idata, name="tiny")


@pytest.fixture(scope="module")
def baselines(tiny):
    from qicstats.compare import frequentist_baselines

    return frequentist_baselines(tiny[0])


@pytest.fixture(scope="module")
def html(tiny, fr, baselines):
    data, im, _, _ = tiny
    return render_run_report(fr, data=data, indicators=im, baselines=baselines,
                             provenance={"date": DATE}, config_text=CONFIG_TEXT)


def _row(*cells: str) -> str:
    """A regex for consecutive table cells with these (escaped) texts, any classes."""
    return "".join(rf"<td[^>]*>{re.escape(c)}</td>" for c in cells)


def _sections_in(page: str) -> list[str]:
    return re.findall(r'data-section="([a-z]+)"', page)


# --------------------------------------------------------------------------------------
# structure
# --------------------------------------------------------------------------------------
def test_banner_is_first_and_red_for_the_failed_fit(html):
    assert html.startswith("<!DOCTYPE html>")
    banner = html.index('<section class="banner fail"')
    assert banner < html.index('id="headline"') < html.index('class="report-section"')
    # nothing of substance precedes the banner: only the page title
    body = html[html.index("<main>"):banner]
    assert "<table" not in body and "<figure" not in body and "<section" not in body
    assert "Diagnostics FAILED" in html
    assert "The estimates below must not be trusted yet" in html
    # the numbers of the gate (max R-hat, ESS, divergences, MCSE of the headline)
    assert "max R-hat: <b>1.053</b>" in html
    assert "min bulk ESS: <b>79</b>" in html
    assert "min tail ESS: <b>51</b>" in html
    assert "divergences: <b>0 of 300 draws</b>" in html
    assert "MCSE of headline: <b>0.13 pp</b>" in html
    assert "What to do:" in html and "reparameterise" in html.lower()
    assert "provisional: diagnostics failed" in html


@pytest.mark.parametrize("verdict", ["pass", "warn", "fail"])
def test_banner_class_follows_the_verdict(fr, tiny, monkeypatch, verdict):
    dg = fr.diagnostics()
    reasons = {"pass": [], "warn": ["3 divergent transitions"], "fail": dg.reasons}[verdict]
    fake = dataclasses.replace(dg, verdict=verdict, reasons=reasons)
    monkeypatch.setattr(fr, "diagnostics", lambda: fake)
    page = render_run_report(fr, data=tiny[0], sections=["diagnostics"],
                             provenance={"date": DATE})
    first = re.search(r'<section class="banner (\w+)"', page)
    assert first is not None and first.group(1) == verdict
    assert f'data-verdict="{verdict}"' in page
    others = {"pass", "warn", "fail"} - {verdict}
    assert not any(f'class="banner {o}"' in page for o in others)
    if verdict == "pass":
        assert "must not be trusted" not in page and "What to do:" not in page
        assert "class=\"provisional" not in page
    else:
        assert "must not be trusted yet" in page and "What to do:" in page
    if verdict == "warn":
        assert "target_accept" in page  # divergences -> raise target_accept


def test_failed_banner_lists_fail_reasons_first_then_warnings(fr, tiny, monkeypatch):
    from qicstats.results.diagnostics import Thresholds, compute_diagnostics

    _, _, qm, idata = tiny
    # R-hat 1.053 and bulk ESS 79 only warn under these limits; tail ESS 51 fails
    th = Thresholds(rhat_warn=1.01, rhat_fail=1.2, ess_warn=400, ess_fail=60)
    dg = compute_diagnostics(idata, qm.free_parameter_names(), thresholds=th)
    monkeypatch.setattr(fr, "diagnostics", lambda: dg)
    page = _diagnostics_page(fr, tiny)
    ban = page[page.index('<section class="banner fail"'):page.index("</section>")]
    assert "<h2>Diagnostics FAILED</h2>" in ban
    failed = "<b>Failed:</b> min tail ESS 51 &lt; 60 (v_slope_unit_z).</p>"
    warned = ("<b>Warnings:</b> max R-hat 1.053 &gt; 1.01 (v_slope_unit_z); min bulk ESS 79 "
              "&lt; 400 (sd_level_unit).</p>")
    assert failed in ban and warned in ban
    assert ban.index(failed) < ban.index(warned)
    assert "<b>Why:</b>" not in ban
    # the fit's own gate (three fail-level reasons, no warnings): no Warnings line
    monkeypatch.undo()
    own = _diagnostics_page(fr, tiny)
    assert "<b>Warnings:</b>" not in own
    assert ("<b>Failed:</b> max R-hat 1.053 &gt; 1.05 (v_slope_unit_z); min bulk ESS 79 "
            "&lt; 100 (sd_level_unit); min tail ESS 51 &lt; 100 (v_slope_unit_z).") in own


def _diagnostics_page(fr, tiny) -> str:
    return render_run_report(fr, data=tiny[0], sections=["diagnostics"],
                             provenance={"date": DATE})


def test_every_section_in_order(html):
    assert _sections_in(html) == list(SECTIONS)
    assert "could not be rendered" not in html
    assert "could not be drawn" not in html


def test_sections_select_and_the_verdict_stays_first(fr, tiny):
    page = render_run_report(fr, data=tiny[0], sections=["units", "estimands"],
                             provenance={"date": DATE})
    assert _sections_in(page) == ["estimands", "units"]  # page order, not call order
    # the trust verdict is shown even without the diagnostics section (compactly)
    assert page.index('class="banner fail compact"') < page.index('data-section="estimands"')
    assert 'id="headline"' not in page


def test_unknown_section_is_a_config_error(fr, tiny):
    with pytest.raises(ConfigError) as ei:
        render_run_report(fr, data=tiny[0], sections=["estimands", "appendix"])
    assert "appendix" in str(ei.value)
    assert "choose among" in str(ei.value)
    with pytest.raises(ConfigError):
        render_run_report(fr, data=tiny[0], sections=[])


def test_headline_answers_the_question_in_plain_words(html):
    head = html[html.index('id="headline"'):html.index("</section>", html.index('id="headline"'))]
    # att overall 0.1191 (0.0744, 0.1578), all 300 draws positive
    assert "<span class=\"answer\">Yes.</span>" in head
    assert "changed by +11.9 percentage points (95% interval +7.4 to +15.8)" in head
    assert "probability of an improvement is &gt;99%" in head
    # trend change 0.0445 (0.0232, 0.0614)
    assert "secular trend alone changed the outcome by +4.5 percentage points" in head
    # collaboratives: C1 +12.8 is the most improved, C2 +10.8 the least
    assert "Most: C1 (+12.8" in head and "least: C2 (+10.8" in head
    assert "2 of 2 collaboratives improved with probability ≥ 90%" in head
    assert "8 of 8 participating units" in head
    # strongest indicator contrast: coordinator main effect, P(>0) = 0.817
    assert "coordinator: yes vs no" in head and "+3.2 percentage points" in head
    assert "82%" in head
    assert "1.27 times" in head  # att_ratio


def test_data_section(html):
    sec = html[html.index('data-section="data"'):html.index('data-section="trajectories"')]
    assert "11 (8 participating, 3 comparison)" in sec
    assert "12 month periods, 2024-01 to 2024-12" in sec
    assert "collaborative &gt; site &gt; unit" in sec
    assert re.search(_row("C1", "4", "2024-04", "2024-05", "48"), sec)
    assert "3 comparison units never join" in sec and "k1, k2, k3" in sec
    assert "every unit is observed in all 12 periods" in sec
    assert sec.count("<svg") == 1  # the join schedule; the SPC charts have their section
    assert "in the section &#39;Statistical process control&#39; below" in sec


def test_spc_section(html, fr, tiny):
    sec = html[html.index('data-section="spc"'):html.index('data-section="frequentist"')]
    assert sec.count("<svg") == 1 and "p-charts (qicharts2 conventions" in sec
    assert "11 of 11 units" in sec
    # one row per unit and phase: 8 participating units x 2 phases + 3 comparison units
    assert sec.count("before joining</td>") == 11 and sec.count("after joining</td>") == 8
    assert "0 of 11 series show a runs signal; after joining 0 of 8" in sec
    # c1u1 before joining: 3 points, 35.6% (numerators 17 + 17 + 8 over 53 + 41 + 24)
    assert re.search(_row("c1u1", "before joining", "3", "35.6%"), sec)
    # without the spc section, the data section carries the small multiples itself
    page = render_run_report(fr, data=tiny[0], sections=["data"], provenance={"date": DATE})
    data_sec = page[page.index('data-section="data"'):]
    assert data_sec.count("<svg") == 2 and "p-charts" in data_sec


def test_estimands_units_indicators_ppc_sections(html):
    est = html[html.index('data-section="estimands"'):html.index('data-section="units"')]
    assert "<td>Improvement beyond the secular trend</td>" in est
    assert "+7.4 to +15.8" in est and ">pp<" in est
    assert re.search(_row("C1", "+12.8 (+6.9 to +17.5)", "&gt;99%"), est)
    units = html[html.index('data-section="units"'):html.index('data-section="indicators"')]
    assert "<svg" in units and "rank (interval)" in units
    # c1u2 is ranked first (mean rank 2.29), rank interval 1 to 5
    first_row = re.search(r"<tbody>\s*<tr[^>]*>(.*?)</tr>", units, re.S).group(1)
    assert re.search(_row("c1u2", "C1", "+16.4 (+8.6 to +24.9)", "&gt;99%", "2 (1 to 5)"),
                     first_row)
    ind = html[html.index('data-section="indicators"'):html.index('data-section="ppc"')]
    assert "support: strong vs weak" in ind and "support=moderate" in ind
    assert "No coder agreement" in ind
    # two support codes imputed, one coordinator code uncertain
    assert re.search(_row("support", "18", "2", "0", "0"), ind)
    assert re.search(_row("coordinator", "10", "0", "1", "0"), ind)
    ppc = html[html.index('data-section="ppc"'):html.index('data-section="spc"')]
    assert "<svg" in ppc and "outside the 90% interval" in ppc
    assert "No unit&#39;s residuals show special-cause variation" in ppc


def _frequentist(page: str) -> str:
    return page[page.index('data-section="frequentist"'):page.index('data-section="methods"')]


def test_frequentist_section(html, tiny, fr, baselines):
    sec = _frequentist(html)
    assert "Bayesian (this model)" in sec and "glm_fe" in sec and "twfe_did" in sec
    assert "The Bayesian level change on the logit scale is 0.551" in sec
    # glm_fe inside the Bayesian interval: alone, or with mixedlm (whose optimiser converges
    # on some machines and stops on a singular matrix on others) as "both ... lie within it"
    assert re.search(r"(glm_fe \(0\.485\) lies within it"
                     r"|both frequentist estimates lie within it: glm_fe \(0\.485\))", sec)
    # a failed baseline is shown, not hidden: mixedlm as it fails where it fails
    failed = baselines.copy()
    bad = failed["method"] == "mixedlm"
    failed.loc[bad, ["estimate", "se", "lower", "upper", "p_value"]] = np.nan
    failed.loc[bad, "status"] = "failed: LinAlgError: Singular matrix"
    page = render_run_report(fr, data=tiny[0], indicators=tiny[1], baselines=failed,
                             provenance={"date": DATE}, config_text=CONFIG_TEXT)
    sec = _frequentist(page)
    assert "failed: LinAlgError" in sec
    assert "glm_fe (0.485) lies within it" in sec


def test_methods_and_provenance(html, fr):
    sec = html[html.index('data-section="methods"'):]
    assert "logit(p<sub>it</sub>) = η<sub>it</sub>" in sec
    assert "Binomial(n<sub>it</sub>, p<sub>it</sub>)" in sec
    assert "u<sup>collaborative</sup>" in sec and "v<sup>L,site</sup>" in sec
    assert re.search(_row("sd_slope_unit", "HalfNormal(sigma=0.0625)"), sec)
    assert "Dirichlet(1, …, 1)" in sec
    assert "comparison units (3 units, 36 unit-periods)" in sec
    assert "before they joined (36 unit-periods)" in sec
    assert "after joining (60 unit-periods)" in sec
    cfg_hash = hashlib.sha256(CONFIG_TEXT.encode()).hexdigest()
    assert cfg_hash in sec
    assert fr.idata.attrs["qicstats_data_hash"] in sec
    assert "the posterior was fitted to the model&#39;s data" in sec
    assert f"<dt>date</dt><dd>{DATE}</dd>" in sec
    assert "<dt>seed</dt><dd>11</dd>" in sec
    assert "<dt>pymc</dt><dd>6.4.0</dd>" in sec
    assert "<pre>model:\n  trend: linear" in sec


def test_missing_inputs_are_said_not_failed(fr):
    light = ["data", "indicators", "spc", "frequentist", "methods"]  # sections with inputs
    page = render_run_report(fr, sections=light, provenance={"date": DATE})
    assert _sections_in(page) == light
    assert page.count("No panel data were supplied") == 2  # data and spc
    assert "Frequentist baselines were not supplied" in page
    assert "The indicator matrix was not supplied" in page
    assert "could not be rendered" not in page
    assert "config hash</dt><dd>not recorded" in page


def test_pipeline_provenance_keys(fr):
    # the keys qicstats.pipeline passes: created/name stand in for date/run
    prov = {"created": "2026-11-20T10:00:00Z", "name": "demo run", "config_hash": "abc123",
            "data_hash": None, "seed": 7, "versions": {"qicstats": "9.9", "pymc": "6.4.0"}}
    page = render_run_report(fr, sections=["methods"], provenance=prov)
    assert "report date 2026-11-20T10:00:00Z" in page
    assert "<dt>run</dt><dd>demo run</dd>" in page
    assert "<dt>config hash</dt><dd>abc123</dd>" in page
    assert "<dt>seed</dt><dd>7</dd>" in page  # overrides the seed stamped in the posterior
    assert "<dt>qicstats</dt><dd>9.9</dd>" in page
    # a None value falls back to the posterior's record
    assert f"<dd>{fr.idata.attrs['qicstats_data_hash']}</dd>" in page


# --------------------------------------------------------------------------------------
# self-contained, safe, deterministic
# --------------------------------------------------------------------------------------
def test_no_network_references_no_scripts(html):
    low = html.lower()
    assert "http://" not in low and "https://" not in low
    assert "<script" not in low and "<link" not in low and "@import" not in low
    assert "<iframe" not in low and "<object" not in low
    for ref in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html):
        assert ref.startswith("#") or ref.startswith("data:image/png;base64,"), ref
    for ref in re.findall(r"url\(([^)]*)\)", html):
        assert ref.startswith("#"), ref


def test_figures_present_and_not_empty(html):
    n_svg = html.count("<svg")
    n_img = html.count("<img")
    # join schedule, SPC, 4 trajectories, effect by exposure time, caterpillar, ppc
    assert n_svg + n_img == 9
    assert not re.search(r'<img[^>]*src=""', html)
    assert all(len(m) > 1000 for m in re.findall(r"<svg.*?</svg>", html, re.S))
    # element ids are unique across the inline SVGs
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))


def test_size_is_reasonable(html):
    assert len(html.encode("utf-8")) < 3_000_000


def test_deterministic_for_the_same_inputs(tiny, fr, baselines, html):
    data, im, _, _ = tiny
    again = render_run_report(fr, data=data, indicators=im, baselines=baselines,
                              provenance={"date": DATE}, config_text=CONFIG_TEXT)
    assert again == html
    other_day = render_run_report(fr, data=data, sections=["diagnostics"],
                                  provenance={"date": "2027-01-01"})
    assert "report date 2027-01-01" in other_day


def test_title_is_escaped(fr, tiny):
    page = render_run_report(fr, data=tiny[0], title=EVIL, sections=["diagnostics"],
                             provenance={"date": DATE})
    assert EVIL not in page
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt;</title>" in page
    assert "<h1>&lt;script&gt;alert(1)&lt;/script&gt;</h1>" in page


@pytest.fixture(scope="module")
def evil(tiny):
    """The same fit with unit c1u1 renamed to a script tag and C1 to an HTML fragment."""
    data, im, qm, idata = tiny
    bad_coll = "<b>C1</b> & co"
    names = tuple(EVIL if n == "c1u1" else n for n in qm.design.unit_names)
    colls = tuple(bad_coll if c == "C1" else c for c in qm.design.collaborative)
    design = dataclasses.replace(qm.design, unit_names=names, collaborative=colls)
    qm2 = dataclasses.replace(qm, design=design)
    units = data.units.copy()
    units["unit"] = units["unit"].replace({"c1u1": EVIL})
    units["collaborative"] = units["collaborative"].replace({"C1": bad_coll})
    panel = data.panel.copy()
    panel["unit"] = panel["unit"].replace({"c1u1": EVIL})
    data2 = dataclasses.replace(data, units=units, panel=panel)
    fr2 = FitResult(qm2, idata, name=EVIL)
    return fr2, data2, bad_coll


def test_unit_and_collaborative_names_are_escaped(evil):
    fr2, data2, bad_coll = evil
    page = render_run_report(fr2, data=data2, provenance={"date": DATE, "run": EVIL},
                             sections=["diagnostics", "data", "estimands", "units"])
    assert "could not be rendered" not in page
    assert "<script" not in page.lower()
    assert "<b>C1</b>" not in page
    esc = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert re.search(_row(esc, "&lt;b&gt;C1&lt;/b&gt; &amp; co"), page)  # rank table
    assert re.search(_row("&lt;b&gt;C1&lt;/b&gt; &amp; co", "+12.8 (+6.9 to +17.5)"), page)
    assert f"Run <b>{esc}</b>" in page
    assert "Most: &lt;b&gt;C1&lt;/b&gt; &amp; co (+12.8" in page


def test_estimands_table_with_hostile_groups_is_escaped(fr, tiny, monkeypatch):
    est = fr.estimands()
    est.loc[est["scope"] == "collaborative", "group"] = est.loc[
        est["scope"] == "collaborative", "group"].replace({"C1": EVIL})
    fr.diagnostics()   # the gate reads the real estimands (cached before the patch)
    every = pd.Series(True, index=est.index)
    monkeypatch.setattr(fr, "estimands", lambda estimand=None, scope=None: est[
        ((est["estimand"] == estimand) if estimand else every)
        & ((est["scope"] == scope) if scope else every)].reset_index(drop=True))
    page = render_run_report(fr, data=tiny[0], title=EVIL,
                             sections=["diagnostics", "estimands"], provenance={"date": DATE})
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --------------------------------------------------------------------------------------
# Markdown and LaTeX
# --------------------------------------------------------------------------------------
def test_estimands_markdown(fr):
    md = estimands_markdown(fr.estimands(scope="overall"))
    lines = md.splitlines()
    assert len(lines) == 2 + 6  # header, separator, six overall estimands
    assert lines[0].startswith("| Estimand ") and lines[0].rstrip().endswith("| Unit   |")
    assert re.fullmatch(r"\|[:\-|]+\|", lines[1])
    row = [c.strip() for c in lines[2].strip("|").split("|")]
    assert row[:5] == ["Improvement beyond the secular trend", "overall", "all", "+11.9",
                       "+7.4 to +15.8"]
    assert row[-1] == "pp"
    ratio = [c.strip() for c in lines[3].strip("|").split("|")]
    assert ratio[3:5] == ["1.27", "1.16 to 1.40"] and ratio[-1] == "ratio"
    fitted = [c.strip() for c in lines[5].strip("|").split("|")]
    assert fitted[3] == "55.7" and fitted[-1] == "%"
    # the input is not modified
    assert "Estimate" not in fr.estimands().columns


def test_markdown_escapes_pipes():
    md = markdown_table(pd.DataFrame({"a": ["x|y"], "b": [1.5]}))
    assert md.splitlines()[2] == "| x\\|y | 1.5 |"
    assert md.splitlines()[1] == "|:-----|----:|"


def test_estimands_latex(fr):
    tex = estimands_latex(fr.estimands(scope="overall"), caption="Fit 5% & more",
                          label="tab:my fit")
    assert "\\begin{tabular}{lllrlrrrrrl}" in tex
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "\\caption{Fit 5\\% \\& more}" in tex and "\\label{tab:my-fit}" in tex
    assert ("Improvement beyond the secular trend & overall & all & +11.9 & +7.4 to +15.8 & "
            "\\textgreater{}99\\% & \\textgreater{}99\\% & 0.13 & 284 & 60 & pp \\\\") in tex
    assert "& -- &" in tex  # missing P(improved) of the fitted mean
    assert "–" not in tex


def test_bad_table_input_is_a_validation_error():
    with pytest.raises(DataValidationError) as ei:
        estimands_markdown(pd.DataFrame({"estimand": ["att"]}))
    assert "lacks the column" in str(ei.value)
    with pytest.raises(DataValidationError):
        estimands_latex("not a table")  # type: ignore[arg-type]


def test_write_tables(fr, tmp_path):
    paths = write_tables(fr, tmp_path / "tables")
    md = paths["markdown"].read_text(encoding="utf-8")
    tex = paths["latex"].read_text(encoding="utf-8")
    assert paths["markdown"].name == "estimands.md" and paths["latex"].name == "estimands.tex"
    assert md.startswith("Diagnostics verdict: fail. These estimates must not be trusted yet.")
    assert md.endswith(estimands_markdown(fr.estimands()))
    assert tex.startswith("% Diagnostics verdict: fail.")
    assert "\\label{tab:estimands-tiny}" in tex
    assert md.count("\n") == 2 + 2 + len(fr.estimands())


# --------------------------------------------------------------------------------------
# comparison report
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_runs(fr):
    # the same stored posterior twice, under two names and configs
    return [RunView("linear", fr, {"model": {"trend": "linear", "ar1": False},
                                   "sampler": {"draws": 150, "seed": 11}}),
            RunView("random walk", fr, {"model": {"trend": "rw", "ar1": False},
                                       "sampler": {"draws": 150, "seed": 11},
                                       "extra": {"note": "x"}})]


@pytest.fixture(scope="module")
def comparison(two_runs):
    return render_comparison_report(two_runs, title="Trend choice", date=DATE)


def test_config_differences(two_runs):
    diff = config_differences(two_runs)
    assert list(diff.columns) == ["key", "linear", "random walk"]
    assert diff["key"].tolist() == ["extra.note", "model.trend"]
    assert diff.iloc[0].tolist() == ["extra.note", "(not set)", "x"]
    assert diff.iloc[1].tolist() == ["model.trend", "linear", "rw"]


def test_comparison_report(comparison):
    page = comparison
    assert page.index('class="banner fail compact"') < page.index('class="banner fail"')
    assert page.index('id="verdict-run-2"') < page.index('class="report-section"')
    assert "linear: Diagnostics FAILED" in page and "random walk: Diagnostics FAILED" in page
    assert re.findall(r'data-section="([a-z]+)"', page) == ["config", "loo", "estimands",
                                                           "headline"]
    cfg = page[page.index('data-section="config"'):page.index('data-section="loo"')]
    assert re.search(_row("model.trend", "linear", "rw"), cfg)
    loo = page[page.index('data-section="loo"'):page.index('data-section="estimands"')]
    # the stored fit has 99 unit-periods (4 with k > 0.7: 3 in (0.7, 1], 1 above 1)
    assert "one unit-period" in loo and "one unit" in loo
    assert "Leave-one-unit-out is then the reliable comparison" in loo
    assert "leave-one-collaborative-out refits are the gold standard" in loo
    assert "arviz.compare, leaving out one unit-period" in loo
    assert "arviz.compare, leaving out one unit" in loo
    assert "-343.55" in loo and "-342.41" in loo
    est = page[page.index('data-section="estimands"'):page.index('data-section="headline"')]
    assert est.count("+11.9 (+7.4 to +15.8), &gt;99%") == 2
    assert "support: strong vs weak" in est
    head = page[page.index('data-section="headline"'):]
    assert head.count("<svg") == 1
    assert "could not be rendered" not in page
    assert "http://" not in page and "<script" not in page


def test_comparison_is_deterministic(two_runs, comparison):
    assert render_comparison_report(two_runs, title="Trend choice", date=DATE) == comparison


def test_comparison_without_configs_uses_the_recorded_spec(fr):
    runs = [RunView("a", fr), RunView(EVIL, fr)]
    page = render_comparison_report(runs, date=DATE)
    assert "recorded with the fit are compared instead" in page
    assert "The configurations do not differ." in page
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;: Diagnostics" in page


def test_comparison_input_errors(two_runs):
    with pytest.raises(ConfigError) as ei:
        render_comparison_report([two_runs[0], two_runs[0]])
    assert "unique" in str(ei.value)
    with pytest.raises(ConfigError):
        render_comparison_report([])
    with pytest.raises(ConfigError):
        render_comparison_report([two_runs[0].result])  # type: ignore[list-item]


# --------------------------------------------------------------------------------------
# identification, the effect by exposure time, headline words (issue 16)
# --------------------------------------------------------------------------------------
def test_identification_subsection_of_the_stored_fit(html):
    sec = html[html.index('data-section="diagnostics"'):html.index('data-section="data"')]
    assert "Identification: is the effect told apart from the secular trend?" in sec
    assert "Which horizons the ATT averages: Every observed exposure time (0..8) has " \
           "concurrent comparisons." in sec
    # level_change: prior sd 1, posterior sd 0.29 (contraction 0.91), corr -0.09 with the slope
    assert re.search(_row("level_change", "1", "0.551 (0.29)", "0.91", "-0.09 (trend_slope)",
                          "identified"), sec)
    assert re.search(_row("slope_change", "0.125"), sec)
    # the gate's own row: nothing weak
    assert re.search(_row("weakly identified effects", "0"), sec)
    assert "reasons-ident" not in html


@pytest.fixture(scope="module")
def weak_fr(tiny):
    """The stored fit with level_change redrawn to correlate -0.97 with trend_slope."""
    import numpy as np

    _, _, qm, idata = tiny
    post = idata.posterior.to_dataset()
    slope = post["trend_slope"].values
    z = (slope - slope.mean()) / slope.std()
    rng = np.random.default_rng(0)
    lc = 0.5 + 0.1 * (-0.97 * z + np.sqrt(1 - 0.97**2) * rng.standard_normal(z.shape))
    post["level_change"] = (post["level_change"].dims, lc)
    tree = idata.copy()
    tree["posterior"] = xr.DataTree(post)
    return FitResult(qm, tree, name="weak")


def test_weak_identification_is_said_first_with_its_remedy(weak_fr, tiny):
    page = render_run_report(weak_fr, data=tiny[0], sections=["diagnostics"],
                             provenance={"date": DATE})
    ban = page[page.index('<section class="banner fail"'):page.index("</section>")]
    ident = ban.index('class="reasons-ident"')
    assert ident < ban.index("<b>Failed:</b>")
    assert "Weak identification of level_change against the secular trend" in ban
    assert "with trend_slope" in ban and "model.trend: period" in ban
    # listed once: not again among the warnings
    assert ban.count("weak identification of level_change") == 0
    todo = ban[ban.index("What to do:"):]
    first = re.search(r"<li>(.*?)</li>", todo, re.S).group(1)
    assert first.startswith("The effect is weakly identified against the secular trend")
    assert re.search(_row("weakly identified effects", "1"), page)
    assert "st-warn" in page[page.index("Identification: is the effect"):]


def test_identification_alone_makes_a_converged_fit_warn(fr, tiny, monkeypatch):
    from qicstats.results.diagnostics import with_identification

    dg = fr.diagnostics()
    clean = dataclasses.replace(dg, verdict="pass", reasons=[], reason_levels=[])
    reason = ("weak identification of slope_change against the secular trend: posterior "
              "correlation -0.95 with trend_slope (beyond ±0.9: effect and trend trade off). "
              "Remedy: a simpler effect shape (model.effect: step) or more pre-join periods.")
    weak = with_identification(clean, [reason])
    monkeypatch.setattr(fr, "diagnostics", lambda: weak)
    page = _diagnostics_page(fr, tiny)
    assert 'class="banner warn"' in page
    assert "the sampler converged, but the effect is weakly identified" in page
    assert "Reparameterise" not in page and "<b>Why:</b>" not in page
    assert "a simpler effect shape (model.effect: step) or more pre-join periods." in page


@pytest.fixture(scope="module")
def curve_fr():
    """A stepped wedge with phases fitted (prior draws, PyMC's mock sampler) with period
    effects and the exposure-time curve: exposure times past 2 have no concurrent
    comparison."""
    import numpy as np
    import pytensor
    from pymc.testing import mock_sample

    from qicstats.compare import frequentist_baselines
    from qicstats.models import ModelSpec, build
    from qicstats.testing import tiny_panel

    data = tiny_panel(sites=False, n_comparison=0)
    units = data.units.copy()
    units["end_t"] = (units["join_t"] + 1).astype("Int64")
    data = dataclasses.replace(data, units=units)
    qm = build(data, ModelSpec(trend="period", effect="curve"))
    with pytensor.config.change_flags(mode="FAST_COMPILE"):
        idata = mock_sample(draws=100, chains=2, model=qm.model, random_seed=3,
                            sample_stats={"diverging": lambda size: np.zeros(size, bool)})
    return data, FitResult(qm, idata, name="curve"), frequentist_baselines(data)


@pytest.fixture(scope="module")
def curve_html(curve_fr):
    data, fr, base = curve_fr
    return render_run_report(fr, data=data, baselines=base, provenance={"date": DATE},
                             sections=["diagnostics", "estimands", "frequentist", "methods"])


def test_curve_report_effect_by_exposure_time(curve_fr, curve_html):
    _, fr, _ = curve_fr
    assert "could not be" not in curve_html
    est = curve_html[curve_html.index('data-section="estimands"'):
                     curve_html.index('data-section="frequentist"')]
    assert "Improvement by time since joining" in est
    assert "The ATT averages exposure times 0..2" in est
    assert "Exposure times 3..8 have no concurrent comparison" in est
    assert 'aria-label="Improvement by exposure time"' in est
    rows = fr.att_rows()
    exp = rows[rows["estimand"] == "att_exposure"]
    assert exp["exposure_time"].tolist() == [0, 1, 2] and exp["in_att"].all()
    r0 = exp.iloc[0]
    f = lambda v: f"{100 * v:+.1f}"  # noqa: E731
    assert re.search(_row("0", f"{f(r0['mean'])} ({f(r0['lower'])} to {f(r0['upper'])})"),
                     est)
    # phases: a table of both phases
    assert "Improvement by phase" in est
    assert re.search(r"<td[^>]*>intervention</td>", est)
    assert re.search(r"<td[^>]*>sustainability</td>", est)
    # exposure and phase rows are not repeated among "all other estimands"
    other = est[est.index("All other estimands"):]
    assert ">exposure<" not in other and ">phase<" not in other


def test_curve_report_identification_and_frequentist(curve_fr, curve_html):
    _, fr, _ = curve_fr
    rep = fr.identification()
    # prior draws: nothing contracts, every horizon in the ATT and the phase are weak
    assert rep.table["parameter"].tolist() == ["effect_curve[h=0]", "effect_curve[h=1]",
                                               "effect_curve[h=2]", "phase_change"]
    assert rep.table["weak"].all()
    ban = curve_html[:curve_html.index("</section>")]
    assert ban.index("reasons-ident") < ban.index("<b>Failed:</b>")
    assert "And 1 more weakly identified effect parameter (see" in ban
    assert "comparison units (units observed untreated in the same periods)" in ban
    freq = curve_html[curve_html.index('data-section="frequentist"'):
                      curve_html.index('data-section="methods"')]
    assert "The model&#39;s effect is an exposure-time curve" in freq
    assert "effect_curve[0]" in freq and "level change on the logit scale is" not in freq
    assert "The Bayesian ATT (improvement beyond the secular trend) on the probability " \
           "scale is" in freq
    meth = curve_html[curve_html.index('data-section="methods"'):]
    assert "Design choices and why" in meth and "free period effects" in meth
    assert "γ<sub>h</sub>" in meth and "P<sub>it</sub>·β<sub>P</sub>" in meth
    assert "the ATT averages exposure times 0..2" in meth
    assert re.search(_row("sd_curve", "HalfNormal(sigma=0.1768)",
                          "step sd of the exposure-time curve (its random walk)"), meth)
    assert re.search(_row("phase_change"), meth)


def _rate_table(att=-0.00019, cf=0.0015, events=-12.0, horizon_1=True):
    base = {"sd": 0.0, "prob_positive": 0.1, "prob_improved": 0.9, "prob_above_mid": None,
            "mcse": 1e-6, "ess_bulk": 500.0, "n_rows": 40}
    rows = [
        {"estimand": "att", "scope": "overall", "group": "all", "mean": att,
         "lower": att * 2, "upper": att / 4, "scale": "rate"},
        {"estimand": "counterfactual_mean", "scope": "overall", "group": "all", "mean": cf,
         "lower": cf * 0.8, "upper": cf * 1.2, "scale": "rate", "prob_improved": None},
        {"estimand": "events_gained", "scope": "overall", "group": "all", "mean": events,
         "lower": events * 2, "upper": -events, "scale": "events"},
    ]
    if horizon_1:
        rows.append({"estimand": "att_horizon_1", "scope": "overall", "group": "all",
                     "mean": att, "lower": att * 2, "upper": att / 4, "scale": "rate"})
    return pd.DataFrame([{**base, **r} for r in rows])


class _FakeResult:
    """What ``headline`` reads of a FitResult: estimands and options."""

    def __init__(self, est, direction="decrease"):
        from qicstats.results import EstimandOptions

        self._est = est
        self.options = EstimandOptions(direction=direction)

    def estimands(self, estimand=None, scope=None):
        return self._est

    def positive_deviance(self):
        raise RuntimeError("not needed")


def test_rates_are_stated_per_a_readable_exposure():
    from qicstats.report.gate import headline
    from qicstats.report.tables import format_estimands, rate_per

    est = _rate_table()
    assert rate_per(est) == 100_000            # 0.0015 -> 150 per 100,000
    shown = format_estimands(est)
    att = shown.iloc[0]
    assert (att["Estimate"], att["Interval"], att["Unit"]) == ("-19", "-38 to -4.75",
                                                                "per 100,000")
    assert shown.iloc[1]["Estimate"] == "150"
    assert "-0.00019" not in estimands_markdown(est)
    # the tidy table (and so the CSV) keeps raw units
    assert est.iloc[0]["mean"] == -0.00019
    h = headline(_FakeResult(est))
    assert "changed by -19 per 100,000 of exposure (95% interval -38 to -4.75)" in h["lead"]
    # rates of at least 1 per unit of exposure are left alone
    assert rate_per(_rate_table(att=-0.5, cf=3.0)) == 1


def test_headline_words_agree_with_the_numbers():
    from qicstats.report.gate import headline

    # events fall while the ATT is an increase: said, and why
    h = headline(_FakeResult(_rate_table(att=0.0002, events=-12.0), direction="increase"))
    how = dict(h["items"])["How much?"]
    assert "12 fewer events in total than without the collaborative" in how
    assert "gained" not in how and "-12 gained" not in how
    assert "the sign differs from the improvement above" in how
    assert "1 period after joining" in how and "1 periods" not in how
    # the same sign: no explanation
    h = headline(_FakeResult(_rate_table(att=-0.0002, events=-1.0)))
    how = dict(h["items"])["How much?"]
    assert "1 fewer event in total" in how and "sign differs" not in how


def test_fitresult_headline_has_no_exact_certainty(fr):
    # all 300 draws improve: ">99%", never "100%"
    assert "is >99%." in fr.headline() and "100%" not in fr.headline()
