"""Render a run report in headless Chromium: it must draw without console errors, show its
figures, and put the diagnostics banner on the first screen.

Skipped where no Chromium binary exists (``.ci/run`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _stored_posterior import load_tiny_binomial  # noqa: E402


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


CHROMIUM = _chromium()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on this machine"),
]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    from qicstats.report import render_run_report
    from qicstats.results import FitResult

    data, im, qm, idata = load_tiny_binomial()
    fr = FitResult(qm, idata, name="tiny")
    html = render_run_report(fr, data=data, indicators=im, provenance={"date": "2026-11-20"},
                             title="Browser check <script>alert(1)</script>")
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(html, encoding="utf-8")
    return path


def _screenshot(html_path: Path, tmp: Path) -> tuple[Path, str]:
    shot = tmp / "shot.png"
    profile = tmp / "profile"
    profile.mkdir()
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
           "--window-size=1280,2000", html_path.resolve().as_uri()]
    env = dict(os.environ, HOME=str(tmp))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return shot, proc.stderr


def test_report_renders_in_chromium(report_file, tmp_path):
    html = report_file.read_text(encoding="utf-8")
    shot, log = _screenshot(report_file, tmp_path)
    # no script errors (the page has no scripts; the injected title must stay text)
    console = [ln for ln in log.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert not console, "\n".join(console)
    # figures: inline SVG or PNG, none empty
    n_fig = html.count("<svg") + html.count("<img")
    assert n_fig >= 8
    assert not re.search(r'<img[^>]*src=""', html)
    assert not re.search(r"<svg[^>]*>\s*</svg>", html)
    # a real, non-blank screenshot of the first screen
    assert shot.exists() and shot.stat().st_size > 20_000
    from matplotlib.image import imread

    img = imread(str(shot))
    assert img.shape[0] == 2000 and img.shape[1] == 1280
    rgb = img[..., :3]
    assert float(rgb.std()) > 0.05
    # the red banner (fail) is on the first screen, near the top
    red = (np.abs(rgb[..., 0] - 0xb2 / 255) < 0.04) & (np.abs(rgb[..., 1] - 0x18 / 255) < 0.04) \
        & (np.abs(rgb[..., 2] - 0x2b / 255) < 0.04)
    rows = np.flatnonzero(red.sum(axis=1) > 3)
    assert rows.size and rows.min() < 400


def test_print_stylesheet_and_no_network(report_file):
    html = report_file.read_text(encoding="utf-8")
    assert "@media print" in html
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html
