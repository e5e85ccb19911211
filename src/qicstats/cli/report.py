"""``qicstats report RUN [RUN ...] -o FILE.html``: (re)render one run or compare several."""

from __future__ import annotations

import argparse
import os
import uuid
from pathlib import Path

HTML_SUFFIXES = (".html", ".htm")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``report`` verb."""
    p = sub.add_parser(
        "report", help="render a run's report, or a comparison report across runs",
        description="With one RUN folder: re-render its report. With several: a comparison "
        "report (config differences, PSIS-LOO with Pareto-k diagnostics, estimands side by "
        "side). The data the runs name must be unchanged (their hashes are checked). The "
        "output is an .html file; it never replaces an input file of the runs.")
    p.add_argument("runs", nargs="+", help="run folders written by 'qicstats run'")
    p.add_argument("-o", "--output", required=True, help="the HTML file to write")
    p.add_argument("--title", help="report title")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return p


def check_output_file(out: Path, *, suffixes: tuple[str, ...], inputs: list[Path],
                      overwrite: bool, what: str) -> None:
    """Refuse an output that is not a ``suffixes`` file, is a folder or device, exists
    without ``overwrite``, or is one of ``inputs`` (never written over, even with
    ``--overwrite``).

    Raises
    ------
    OutputError, RunExistsError
    """
    from qicstats.errors import OutputError, RunExistsError

    if out.suffix.lower() not in suffixes:
        raise OutputError(f"-o {out}: the {what} must be a {' or '.join(suffixes)} file")
    for p in inputs:
        try:
            same = out.exists() and p.exists() and os.path.samefile(out, p)
        except OSError:
            same = False
        if same or os.path.abspath(out) == os.path.abspath(p):
            raise OutputError(f"-o {out} is an input file ({p}); qicstats never writes over "
                              "its inputs: give another output name")
    if out.exists() and (out.is_dir() or not out.is_file()):
        raise OutputError(f"-o {out} exists and is not a regular file")
    if out.exists() and not overwrite:
        raise RunExistsError(f"{out} exists; use --overwrite to replace it")


def atomic_write_text(out: Path, text: str) -> None:
    """Write ``text`` next to ``out`` under a temporary name and rename it into place (an
    interrupted write leaves no half file; the temporary file is removed on any error).
    """
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    """Load the runs and write the report."""
    from qicstats.errors import OutputError
    from qicstats.pipeline import load_run, read_manifest, render_runs_report

    out = Path(args.output)
    inputs: list[Path] = []
    for r in args.runs:
        folder = Path(r)
        read_manifest(folder)  # a missing or non-run folder fails before anything else
        for name in ("config.resolved.yaml", "manifest.json", "posterior.nc"):
            inputs.append(folder / name)
        inputs += _run_inputs(folder)
    check_output_file(out, suffixes=HTML_SUFFIXES, inputs=inputs, overwrite=args.overwrite,
                      what="report")
    if not out.parent.is_dir():
        raise OutputError(f"-o {out}: the folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK):
        raise OutputError(f"-o {out}: the folder {out.parent} is not writable")
    runs = [load_run(r) for r in args.runs]
    html = render_runs_report(runs, title=args.title)
    try:
        atomic_write_text(out, html)
    except OSError as err:
        raise OutputError(f"cannot write {out}: {err.strerror or err}") from None
    print(f"wrote {out}")
    return 0


def _run_inputs(folder: Path) -> list[Path]:
    """The data files a run folder's config names (best effort: for the -o check)."""
    try:
        import json

        from qicstats.config import load_config

        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        base = manifest.get("config_base_dir")
        if isinstance(base, str) and base and not os.path.isabs(base):
            base = os.path.normpath(os.path.join(os.path.abspath(folder), base))
        cfg = load_config(folder / "config.resolved.yaml", base_dir=base or None,
                          check_files=False)
        return [p for _, p in cfg.paths.items()] + ([cfg.source] if cfg.source else [])
    except Exception:  # noqa: BLE001 - load_run reports a broken folder properly
        return []
