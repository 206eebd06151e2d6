"""Residual structures (AR(1) residuals): lmmjax beside nlme ``lme`` in the same run.

Cases
-----
* Ovary, ``corAR1(form = ~ 1 | Mare)``, diagonal random intercept + sin slope (REML);
* BodyWeight, ``corAR1(form = ~ 1 | Rat)``, ``(Time | Rat)`` (REML);
* a simulated design: ``--subjects`` subjects × 10 visits, random intercept, AR(1)
  residuals with φ = 0.5 (REML); nlme is run with a time limit;
* a 2,000-replicate parametric bootstrap of the Ovary model.

lmmjax: one fresh process with an empty compilation cache; first call =
compilation + fit, warm = best of two further fits (three for the simulated
design: its first fits in a process pay for fresh memory pages, 0.7–2.2 s).  nlme: median of 5 fits
(1 for the simulated design) with its default lmeControl.

Run: ``python benchmarks/residual_speed.py [--subjects 100000] [--nlme-timeout 600]``
(writes its section of RESULTS.md).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import markdown_table, run_python, run_r, write_section  # noqa: E402

OVARY = "follicles ~ np.sin(2*np.pi*Time) + np.cos(2*np.pi*Time) + (1 + np.sin(2*np.pi*Time) || Mare)"

PY = """
import time, warnings, numpy as np, pandas as pd, lmmjax as lmm
warnings.simplefilter("ignore")
RESULT = {}
def timed(key, fn, warm=2):
    t = time.perf_counter(); out = fn(); RESULT[key + "_first"] = time.perf_counter() - t
    best = float("inf")
    for _ in range(warm):
        t = time.perf_counter(); out = fn(); best = min(best, time.perf_counter() - t)
    RESULT[key + "_warm"] = best
    return out
ov, bw = lmm.datasets.load("ovary"), lmm.datasets.load("bodyweight")
f = timed("ovary", lambda: lmm.lmer(OVARY, ov, correlation=lmm.AR1(group="Mare")))
RESULT["ovary_loglik"], RESULT["ovary_phi"] = f.loglik, float(f.residual_params["phi"])
g = timed("bw", lambda: lmm.lmer("weight ~ Time * Diet + (Time | Rat)", bw, correlation=lmm.AR1(group="Rat")))
RESULT["bw_loglik"], RESULT["bw_phi"] = g.loglik, float(g.residual_params["phi"])
b = timed("boot", lambda: f.bootstrap(2000, seed=1), warm=1)
rng = np.random.default_rng(1)
S, V = SUBJECTS, 10
e = np.empty((S, V)); e[:, 0] = rng.normal(size=S)
for k in range(1, V):
    e[:, k] = 0.5 * e[:, k - 1] + np.sqrt(0.75) * rng.normal(size=S)
big = pd.DataFrame({"subject": np.repeat(np.arange(S), V).astype(str), "visit": np.tile(np.arange(V), S)})
big["y"] = 1 + 0.2 * big["visit"] + rng.normal(size=S)[np.repeat(np.arange(S), V)] + e.ravel()
big.to_csv(BIG_CSV, index=False)
h = timed("big", lambda: lmm.lmer("y ~ visit + (1 | subject)", big, correlation=lmm.AR1(group="subject")), warm=3)
RESULT["big_loglik"], RESULT["big_phi"] = h.loglik, float(h.residual_params["phi"])
RESULT["big_evals"] = h.optsummary.n_evaluations
from lmmjax.model import build_model
t = time.perf_counter(); build_model("y ~ visit + (1 | subject)", big, correlation=lmm.AR1(group="subject"))
RESULT["big_build"] = time.perf_counter() - t
RESULT["big_engine"] = type(h.model.dims.residual.engine).__name__
"""

R_SMALL = """
suppressPackageStartupMessages({library(nlme); library(jsonlite)})
data(Ovary, BodyWeight, package = "nlme")
tm <- function(f) median(sapply(1:5, function(i) system.time(f())[["elapsed"]]))
fo <- function() lme(follicles ~ sin(2*pi*Time) + cos(2*pi*Time), data = Ovary,
                     random = list(Mare = pdDiag(~ sin(2*pi*Time))), correlation = corAR1(form = ~ 1 | Mare))
fb <- function() lme(weight ~ Time * Diet, data = BodyWeight, random = ~ Time | Rat,
                     correlation = corAR1(form = ~ 1 | Rat))
cat(toJSON(list(ovary = tm(fo), bw = tm(fb), ovary_loglik = as.numeric(logLik(fo())),
                bw_loglik = as.numeric(logLik(fb()))), auto_unbox = TRUE, digits = NA), "\\n")
"""

R_BIG = """
suppressPackageStartupMessages({library(nlme); library(jsonlite)})
d <- read.csv("%s")
d$subject <- factor(d$subject)
t <- system.time(m <- lme(y ~ visit, data = d, random = ~ 1 | subject, correlation = corAR1(form = ~ 1 | subject)))
cat(toJSON(list(big = t[["elapsed"]], big_loglik = as.numeric(logLik(m))), auto_unbox = TRUE, digits = NA), "\\n")
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=100_000)
    ap.add_argument("--nlme-timeout", type=int, default=600)
    args = ap.parse_args()
    big_csv = "/tmp/lmmjax_residual_big.csv"
    code = f"OVARY = {OVARY!r}\nSUBJECTS = {args.subjects}\nBIG_CSV = {big_csv!r}\n" + PY
    py = run_python(code, timeout=3600)
    r = run_r(R_SMALL) or {}
    try:
        rb = run_r(R_BIG % big_csv, timeout=args.nlme_timeout) or {}
    except subprocess.TimeoutExpired:
        rb = {"big": None}
    n_big = args.subjects * 10
    nlme_big = f"{rb['big']:.1f}" if rb.get("big") is not None else f"> {args.nlme_timeout} (stopped)"
    rows = [
        ["Ovary, AR(1) in row order, pdDiag intercept + sin slope (REML)", f"{py['ovary_first']:.2f}",
         f"{py['ovary_warm']:.3f}", f"{r.get('ovary', float('nan')):.3f}",
         f"{r.get('ovary', float('nan')) / py['ovary_warm']:.1f}×", f"{py['ovary_loglik'] - r.get('ovary_loglik', 0):+.1e}"],
        ["BodyWeight, AR(1), (Time \\| Rat) (REML)", f"{py['bw_first']:.2f}", f"{py['bw_warm']:.3f}",
         f"{r.get('bw', float('nan')):.3f}", f"{r.get('bw', float('nan')) / py['bw_warm']:.1f}×",
         f"{py['bw_loglik'] - r.get('bw_loglik', 0):+.1e}"],
        [f"{args.subjects:,} subjects × 10 visits ({n_big:,} rows), (1 \\| subject), AR(1) (REML)",
         f"{py['big_first']:.2f}", f"{py['big_warm']:.2f}", nlme_big,
         f"{rb['big'] / py['big_warm']:.0f}×" if rb.get("big") is not None else "–",
         f"{py['big_loglik'] - rb['big_loglik']:+.1e}" if rb.get("big_loglik") is not None else "–"],
        ["Ovary model, parametric bootstrap, 2,000 replicates", f"{py['boot_first']:.2f}", f"{py['boot_warm']:.2f}",
         "–", "–", "–"],
    ]
    table = markdown_table(["case", "lmmjax first call s", "lmmjax warm s", "nlme s", "nlme s / lmmjax warm s",
                            "logLik lmmjax − nlme"], rows)
    load = os.getloadavg()[0]
    text = ("## Residual structures (`benchmarks/residual_speed.py`)\n\n" + table + "\n\n"
            f"φ̂: Ovary {py['ovary_phi']:.4f}, BodyWeight {py['bw_phi']:.4f}, simulated {py['big_phi']:.4f} "
            f"(true 0.5; {py['big_evals']} deviance evaluations in its last search). AR(1) without VarIdent uses the engine "
            f"`{py['big_engine']}` (lmmjax/objective/residual_lag.py): the cross-product sets of the first rows and, "
            "per time step, of the rows, their predecessors and the differences are computed once per fit, and "
            "an evaluation combines them with weights in φ (no pass over the rows); building the simulated "
            f"model (`build_model`: formula, pattern, row links and those sets) takes {py['big_build']:.2f} s of "
            "its warm time. "
            "The fits include lmmjax's profile of the deviance over a grid of φ (fitting/phi_profile.py): "
            "Ovary and BodyWeight minimise it at 11 grid values in one vmapped trust-region Newton run, then "
            "search from the best grid point; the simulated design searches from the usual start, continues "
            "the profile at 6 grid values from that optimum, and searches again only if a grid point is "
            "better (L-BFGS-B runs with scipy's OpenBLAS on one thread, blas_threads.py). "
            "nlme: median of 5 fits, default lmeControl; one fit "
            f"of the simulated design. Load average at the start of the run: {load:.1f} on 2 cores "
            "(a shared machine: timings are noisy).\n")
    write_section("residual_speed", text)
    print(text)


if __name__ == "__main__":
    main()
