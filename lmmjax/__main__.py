"""Command line.

``python -m lmmjax fit DATA.csv "FORMULA" [--ml] [--bootstrap N] [--out DIR]``
    Fits the model, prints the summary, the red flags and the methods-and-results
    report; with ``--out DIR`` writes the diagnostic plots as PNG files (and the
    report as Markdown) into DIR. Unreadable input (missing, empty or binary
    file, an --out path that is a file, a bad formula) is one line on stderr,
    before any analysis output, and exit code 2.
``python -m lmmjax warmup [--power] [--quiet]``
    Compiles the common small-model programs into the persistent compilation
    cache, so that later processes skip compilation (see :mod:`lmmjax.warmup`).

Examples
--------
$ python -m lmmjax fit sleepstudy.csv "Reaction ~ Days + (Days | Subject)" --out diag/
$ python -m lmmjax warmup
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from . import config
from .errors import ModelSpecError
from .lazy import lazy_module
from .lmer import lmer
from .methods import bootstrap, summary

# loaded only by the command that needs them (``warmup`` does not draw plots)
diagnostics = lazy_module("lmmjax.diagnostics")
warmup_module = lazy_module("lmmjax.warmup")

PLOTS = ("diagnostics", "residuals_fitted", "qq", "scale_location", "ranef_qq", "ranef_density",
         "caterpillar", "cooks_distance")


def _whole(text: str, hint: str) -> int:
    """A whole number ≥ 0 for argparse (``hint`` says what a negative one should be)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; {hint}")
    return value


def _count(text: str) -> int:
    """A number of replicates for argparse: a whole number ≥ 0."""
    return _whole(text, "give 0 (no bootstrap) or more")


def _seed(text: str) -> int:
    """A random seed for argparse: a whole number ≥ 0."""
    return _whole(text, "a seed is a whole number, 0 or more")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lmmjax",
                                description="Linear mixed models with lme4 formulas (lmmjax).")
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="fit a model to a CSV file and report on it",
                       description="Fit FORMULA to DATA.csv; print the summary, red flags and report.")
    f.add_argument("data", help="CSV file with a header row")
    f.add_argument("formula", help='lme4 formula, e.g. "Reaction ~ Days + (Days | Subject)"')
    f.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    f.add_argument("--bootstrap", type=_count, default=0, metavar="N",
                   help="parametric bootstrap with N replicates for the intervals")
    f.add_argument("--seed", type=_seed, default=0, help="seed of the bootstrap (default 0)")
    f.add_argument("--out", metavar="DIR", help="write the diagnostic plots (PNG) and report.md here")
    f.add_argument("--format", choices=("text", "markdown"), default="text", help="report format")
    w = sub.add_parser("warmup", help="compile the common small-model programs into the persistent cache",
                       description="Fit the everyday small models (REML and ML), their summaries and the "
                                   "bootstrap once, so that their compiled programs land in the persistent "
                                   "compilation cache and later processes skip compilation.")
    w.add_argument("--power", action="store_true", help="also compile lmm.power (LRT) on sleepstudy (slow)")
    w.add_argument("--quiet", action="store_true", help="print nothing but errors")
    w.add_argument("--if-cold", action="store_true",
                   help="do nothing when this lmmjax and jax version already warmed the cache")
    return p


def _write_plots(fit, out: Path, infl=None) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for name in PLOTS:
        fn = getattr(diagnostics.plots, name)
        try:
            fig = fn(infl) if (name == "cooks_distance" and infl is not None) else fn(fit)
        except Exception as exc:  # one failing plot should not lose the others
            print(f"warning: could not draw {name}: {exc}", file=sys.stderr)
            continue
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


class InputError(Exception):
    """A problem with the command's input, reported as one line before any analysis."""


def _read_csv(path: Path):
    """The data of a CSV file, or :class:`InputError` saying why it cannot be read."""
    import pandas as pd

    if not path.exists():
        raise InputError(f"no such file: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not a CSV file")
    try:
        with path.open("rb") as fh:
            head = fh.read(8192)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not head.strip():
        raise InputError(f"{path} is empty; it needs a header row and data rows")
    if b"\0" in head:
        raise InputError(f"{path} is a binary file, not a CSV text file")
    try:
        data = pd.read_csv(path)
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text; save it as a UTF-8 CSV file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path} cannot be read as CSV: {first}") from None
    if data.empty:
        raise InputError(f"{path} has a header row but no data rows")
    return data


def _output_dir(out) -> Path | None:
    """The --out directory, created now so that a bad path fails before any analysis."""
    if not out:
        return None
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is an existing file; give a directory (it is created if needed)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the --out directory {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK):
        raise InputError(f"the --out directory {out} is not writable")
    return out


def run_fit(args) -> int:
    try:
        data = _read_csv(Path(args.data))
        out = _output_dir(args.out)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = lmer(args.formula, data, reml=not args.ml)
    except ModelSpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for w in caught:
        print(f"{w.category.__name__}: {w.message}", file=sys.stderr)
    print(summary(fit))
    print("\n== Red flags ==")
    print(diagnostics.check(fit))
    boot = None
    if args.bootstrap > 0:
        boot = bootstrap(fit, args.bootstrap, seed=args.seed)
        print(f"\n== Parametric bootstrap: {args.bootstrap} replicates, seed {args.seed} ==")
        print(boot.ci().round(4).to_string())
    print("\n== Report ==")
    text = diagnostics.report(fit, format=args.format, bootstrap=boot)
    print(text)
    markdown = text if args.format == "markdown" else None
    if out is not None:
        infl = diagnostics.influence(fit)
        written = _write_plots(fit, out, infl)
        if markdown is None:
            markdown = diagnostics.report(fit, format="markdown", bootstrap=boot)
        (out / "report.md").write_text(markdown + "\n")
        print(f"\nWrote {len(written)} plots and report.md to {out}/")
    return 0


def run_warmup(args) -> int:
    cache = config.compilation_cache_dir()
    if cache is None:
        print("warning: the persistent compilation cache is off (LMMJAX_NO_COMPILATION_CACHE or "
              "LMMJAX_COMPILATION_CACHE=0): the warmup helps this process only.", file=sys.stderr)
    elif args.if_cold and (cache / warmup_module.stamp_name()).exists():
        if not args.quiet:
            print(f"The compilation cache in {cache} is already warm.")
        return 0
    elif not args.quiet:
        print(f"Compiling the common small-model programs into {cache} (once per machine)...")
    steps = warmup_module.warmup(power=args.power, verbose=not args.quiet)
    if cache is not None:
        (cache / warmup_module.stamp_name()).touch()
    if not args.quiet:
        print(f"Done: {len(steps)} steps in {sum(s.seconds for s in steps):.1f} s.")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "fit":
        return run_fit(args)
    if args.command == "warmup":
        return run_warmup(args)
    return 2  # pragma: no cover - argparse enforces the sub-command


if __name__ == "__main__":
    sys.exit(main())
