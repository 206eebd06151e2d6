"""GLMM speed: lmmjax.glmer, its bootstrap and power against lme4, side by side in one run.

Cases
-----
1. Single fits (lme4's examples): cbpp ``cbind(incidence, size - incidence)
   ~ period + (1 | herd)`` (binomial), grouseticks ``TICKS ~ YEAR + cHEIGHT +
   (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)`` (Poisson), VerbAgg ``r2 ~
   Anger + Gender + btype + situ + (1 | id) + (1 | item)`` (7,584 Bernoulli
   rows). lmmjax: "first" is the first fit in a fresh interpreter with an
   empty compilation cache (tracing and compiling included), "warm" the best
   of three further fits; each fit includes the standard errors (``vcov``).
   lme4: default ``glmerControl()``, best of three ``glmer`` + ``vcov``.
2. cbpp parametric bootstrap, 1,000 replicates: ``fit.bootstrap(1000)``
   (first = compilation included, warm = best of two more) against
   ``bootMer(m, nsim = …)`` (``--r-boot-nsim`` replicates, default 100,
   time scaled to 1,000).
3. Binary-outcome power, 1,000 simulations, likelihood-ratio test (2,000
   fits): 40 groups × 10 rows, x alternating 0/1 within groups, truth
   logit P(y = 1) = −0.5 + 0.5 x + b_g, sd(b) = 0.8 (the design of
   tests/reference/make_glmer_bootstrap_reference.R). lme4: the same loop
   by hand (simr's powerSim does this), ``--r-power-nsim`` simulations
   (default 50), time scaled to 1,000.
4. A 1e6-row Bernoulli fit ``y ~ x + (1 | a) + (1 | b)`` (a: 20,000
   levels, b: 2,000, uniform; ``--large-rows`` to change), on the CPU:
   time and the process's peak memory; lme4 beside it under a time-out
   (``--r-timeout``).

Run: ``python benchmarks/glmm_speed.py [--no-r] [--no-large]`` (writes its
section of RESULTS.md; the load average before and after is recorded);
``--large-only --no-r --large-warm`` runs only case 4 and prints it.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from common import markdown_table, run_python, run_r, write_section  # noqa: E402

MODELS = {
    "cbpp (56 rows, binomial)": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", "cbpp",
                                 "cbpp"),
    "grouseticks (403 rows, Poisson, 3 random intercepts)": (
        "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", "poisson", "grouseticks",
        "grouseticks"),
    "VerbAgg (7,584 rows, crossed)": ("r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", "binomial",
                                      "verbagg", "VerbAgg"),
}
CBPP = MODELS["cbpp (56 rows, binomial)"][0]
NSIM = 1000
LARGE = "y ~ x + (1 | a) + (1 | b)"


def fit_code(formula: str, family: str, dataset: str) -> str:
    return f"""
import time, warnings
import lmmjax as lmm
warnings.simplefilter("ignore")
df = lmm.datasets.load({dataset!r})
def once():
    t = time.perf_counter(); fit = lmm.glmer({formula!r}, df, family={family!r}); fit.vcov
    return time.perf_counter() - t, fit
first, fit = once()
warm = min(once()[0] for _ in range(3))
RESULT = dict(first=first, warm=warm, loglik=fit.loglik, converged=fit.converged)
"""


def r_fit_code(formula: str, family: str, rdata: str) -> str:
    return f"""
suppressMessages(library(lme4)); d <- {rdata}
ts <- sapply(1:3, function(i) system.time({{m <<- glmer({formula}, d, {family}); v <- vcov(m)}})[["elapsed"]])
cat(jsonlite::toJSON(list(time = min(ts), loglik = as.numeric(logLik(m)), feval = m@optinfo$feval),
    auto_unbox = TRUE, digits = NA), "\\n")
"""


PY_BOOT = f"""
import time, warnings
import lmmjax as lmm
warnings.simplefilter("ignore")
fit = lmm.glmer({CBPP!r}, lmm.datasets.load("cbpp"), family="binomial")
def once(seed):
    t = time.perf_counter(); boot = fit.bootstrap({NSIM}, seed=seed)
    return time.perf_counter() - t, boot
first, boot = once(1)
runs = [once(s) for s in (2, 3)]
warm = min(r[0] for r in runs)
RESULT = dict(first=first, warm=warm, n_converged=int(boot.n_converged),
              n_iter_max=int(boot.n_iter.max()), n_iter_mean=float(boot.n_iter.mean()))
"""

R_BOOT = """
suppressMessages(library(lme4))
m <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial)
FUN <- function(x) c(fixef(x), theta = getME(x, "theta"))
t <- system.time(suppressWarnings(suppressMessages(b <- bootMer(m, FUN, nsim = %d, seed = 1))))[["elapsed"]]
cat(jsonlite::toJSON(list(time = t, nsim = %d), auto_unbox = TRUE, digits = NA), "\\n")
"""

POWER_DESIGN = """
import numpy as np, pandas as pd
ng, per = 40, 10
d = pd.DataFrame({"g": pd.Categorical([f"g{i + 1:02d}" for i in range(ng) for _ in range(per)]),
                  "x": np.tile([0.0, 1.0], ng * per // 2)})
rng = np.random.default_rng(0)
eta = -0.5 + 0.5 * d["x"] + rng.normal(0.0, 0.8, ng)[d["g"].cat.codes]
d["y"] = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta)))
"""

PY_POWER = POWER_DESIGN + f"""
import time, warnings
import lmmjax as lmm
warnings.simplefilter("ignore")
fit = lmm.glmer("y ~ x + (1 | g)", d, family="binomial")
truth = dict(fixef={{"Intercept": -0.5, "x": 0.5}}, varcorr={{"g": 0.8}})
def once(seed):
    t = time.perf_counter(); res = lmm.power(fit, test="x", method="lrt", nsim={NSIM}, seed=seed, **truth)
    return time.perf_counter() - t, res
first, res = once(1)
warm = min(once(s)[0] for s in (2, 3))
RESULT = dict(first=first, warm=warm, power=res.power, n_failed=res.n_failed,
              n_not_converged=res.n_not_converged)
"""

R_POWER = """
suppressMessages(library(lme4))
ng <- 40L; per <- 10L
design <- data.frame(g = factor(sprintf("g%%02d", rep(seq_len(ng), each = per))), x = rep(c(0, 1), ng * per / 2))
set.seed(1); n <- %d; p <- numeric(n)
t <- system.time(for (i in seq_len(n)) {
  b <- rnorm(ng, 0, 0.8)
  d <- transform(design, y = rbinom(nrow(design), 1, plogis(-0.5 + 0.5 * design$x + b[as.integer(design$g)])))
  f1 <- suppressWarnings(suppressMessages(glmer(y ~ x + (1 | g), d, binomial)))
  f0 <- suppressWarnings(suppressMessages(glmer(y ~ 1 + (1 | g), d, binomial)))
  p[i] <- pchisq(max(0, 2 * as.numeric(logLik(f1) - logLik(f0))), 1, lower.tail = FALSE)
})[["elapsed"]]
cat(jsonlite::toJSON(list(time = t, nsim = n, power = mean(p < 0.05)), auto_unbox = TRUE, digits = NA), "\\n")
"""


def large_data(path: Path, n_rows: int, n_a: int = 20_000, n_b: int = 2_000, seed: int = 1) -> None:
    """Bernoulli rows: a, b uniform; logit P(y = 1) = −0.5 + 0.3 x + a_j + b_k (sd 0.6, 0.4)."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(n_a, size=n_rows), rng.integers(n_b, size=n_rows)
    x = np.round(rng.normal(size=n_rows), 4)
    eta = -0.5 + 0.3 * x + rng.normal(0, 0.6, n_a)[a] + rng.normal(0, 0.4, n_b)[b]
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta)))
    pd.DataFrame({"y": y, "x": x, "a": [f"a{v}" for v in a], "b": [f"b{v}" for v in b]}).to_csv(path, index=False)


def py_large(csv: str, warm: bool) -> str:
    return f"""
import os, time, warnings, resource
import pandas as pd, lmmjax as lmm
warnings.simplefilter("ignore")
df = pd.read_csv({csv!r}, dtype={{"a": "category", "b": "category"}})
t = time.perf_counter(); fit = lmm.glmer({LARGE!r}, df, family="binomial"); fit.vcov
first = time.perf_counter() - t
peak_first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
warm = None
if {warm!r}:
    t = time.perf_counter(); fit = lmm.glmer({LARGE!r}, df, family="binomial"); fit.vcov
    warm = time.perf_counter() - t
RESULT = dict(first=first, warm=warm, peak_first_mb=peak_first,
              loglik=fit.loglik,
              converged=fit.converged, theta=[float(t) for t in fit.theta], se=[float(v) for v in fit.coef_table()["std_error"]],
              n_evaluations=fit.optsummary.n_evaluations, load=os.getloadavg())
"""


def large_fit(args):
    """The large fit in a fresh interpreter: a dict (first, warm, peak memory, logLik, θ, csv) or None on time-out."""
    csv = Path(tempfile.mkdtemp()) / "bernoulli.csv"
    large_data(csv, int(args.large_rows))
    try:
        return dict(run_python(py_large(str(csv), warm=args.large_warm), timeout=args.py_timeout), csv=str(csv))
    except subprocess.TimeoutExpired:
        return None


def r_large(csv: str) -> str:
    return f"""
suppressMessages(library(lme4))
d <- read.csv({csv!r}, colClasses = c("numeric", "numeric", "factor", "factor"))
t <- system.time({{m <- glmer({LARGE}, d, binomial); v <- vcov(m)}})[["elapsed"]]
cat(jsonlite::toJSON(list(time = t, loglik = as.numeric(logLik(m)), theta = unname(getME(m, "theta"))),
    auto_unbox = TRUE, digits = NA), "\\n")
"""


def load_average() -> str:
    return "{:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())


def r_or_none(code: str, use_r: bool, timeout: int = 1200):
    if not use_r:
        return None
    try:
        return run_r(code, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--no-large", action="store_true")
    ap.add_argument("--large-rows", type=float, default=1e6)
    ap.add_argument("--r-boot-nsim", type=int, default=100)
    ap.add_argument("--r-power-nsim", type=int, default=50)
    ap.add_argument("--r-timeout", type=int, default=600)
    ap.add_argument("--py-timeout", type=int, default=1800)
    ap.add_argument("--large-warm", action="store_true", help="also time a second (warm) large fit")
    ap.add_argument("--large-only", action="store_true",
                    help="only the large fit (printed, RESULTS.md left alone): `--large-only --no-r --large-warm`")
    args = ap.parse_args()
    if args.large_only:
        big = large_fit(args)
        print("large", big, flush=True)
        return
    use_r = not args.no_r
    load_before = load_average()
    print("load average before:", load_before, flush=True)

    fit_rows = []
    for label, (formula, family, dataset, rdata) in MODELS.items():
        ours = run_python(fit_code(formula, family, dataset))
        ref = r_or_none(r_fit_code(formula, family, rdata), use_r)
        print(label, ours, ref, flush=True)
        fit_rows.append([label, f"{ours['first']:.2f}", f"{ours['warm']:.3f}",
                         f"{ref['time']:.3f}" if ref else "–",
                         f"{ref['time'] / ours['warm']:.1f}×" if ref else "–",
                         f"{ours['loglik'] - ref['loglik']:+.2e}" if ref else "–"])

    boot = run_python(PY_BOOT)
    rboot = r_or_none(R_BOOT % (args.r_boot_nsim, args.r_boot_nsim), use_r)
    print("bootstrap", boot, rboot, flush=True)
    power = run_python(PY_POWER)
    rpower = r_or_none(R_POWER % args.r_power_nsim, use_r)
    print("power", power, rpower, flush=True)
    batch_rows = []
    for label, ours, ref, extra in (
            ("cbpp parametric bootstrap, 1,000 replicates", boot, rboot,
             f"{boot['n_converged']} / 1,000 converged"),
            ("binary power, 1,000 simulations, LRT (2,000 fits)", power, rpower,
             f"power {power['power']:.3f}" + (f" (lme4 {rpower['power']:.2f} of {rpower['nsim']})" if rpower else "")
             + f"; {power['n_failed']} failed, {power['n_not_converged']} not converged")):
        r_1000 = ref["time"] * NSIM / ref["nsim"] if ref else None
        batch_rows.append([label, f"{ours['first']:.2f}", f"{ours['warm']:.2f}",
                           f"{r_1000:.1f} ({ref['nsim']} run, ×{NSIM // ref['nsim']})" if ref else "–",
                           f"{r_1000 / ours['warm']:.0f}×" if ref else "–", extra])

    write_section("glmm_speed", section(fit_rows, batch_rows, [], load_before, load_average()))
    if args.no_large:
        return
    n_rows = int(args.large_rows)
    label = f"{n_rows:,} Bernoulli rows, {LARGE.replace('|', chr(92) + '|')} (20,000 × 2,000 levels)"
    big = large_fit(args)
    csv = big.pop("csv") if big else None
    print("large", big, flush=True)
    rbig = r_or_none(r_large(str(csv)), use_r and csv is not None, timeout=args.r_timeout)
    print("large lme4", rbig, flush=True)
    if rbig == "timeout":
        r_cells = [f"time-out ({args.r_timeout} s)", "–", "–"]
    elif rbig:
        r_cells = [f"{rbig['time']:.1f}", f"{rbig.get('peak_mb', float('nan')):.0f}",
                   f"{big['loglik'] - rbig['loglik']:+.2e}" if big else "–"]
    else:
        r_cells = ["–", "–", "–"]
    if big is None:
        ours = [f"time-out ({args.py_timeout} s)", "–", "–"]
    else:
        ours = [f"{big['first']:.1f}", f"{big['warm']:.1f}" if big["warm"] is not None else "–",
                f"{big['peak_first_mb']:.0f}" + (f" ({big['peak_mb']:.0f} after the warm fit)" if big["warm"] else "")]
    write_section("glmm_speed", section(fit_rows, batch_rows, [[label] + ours + r_cells], load_before,
                                        load_average()))


def section(fit_rows, batch_rows, large_rows, load_before, load_after) -> str:
    """The markdown of the GLMM section."""
    print("load average after:", load_after, flush=True)
    text = ["## GLMM speed (`benchmarks/glmm_speed.py`)", "",
            markdown_table(["model (Laplace)", "lmmjax first call s", "lmmjax warm s", "lme4 s", "speed-up warm",
                            "logLik lmmjax − lme4"], fit_rows), "",
            markdown_table(["batch", "lmmjax first call s", "lmmjax warm s", "lme4 s (scaled to 1,000)",
                            "speed-up warm", "notes"], batch_rows)]
    if large_rows:
        text += ["", markdown_table(["large fit", "lmmjax first call s", "lmmjax warm s", "lmmjax peak MB",
                                     "lme4 s", "lme4 peak MB", "logLik lmmjax − lme4"], large_rows)]
    text += ["", "lmmjax: first = a fresh interpreter with an empty compilation cache (tracing and compiling "
             "included); warm = best of the further calls in that process. Every fit includes its standard "
             "errors (`vcov`). lme4 1.1: default `glmerControl()`, `glmer` + `vcov`, best of three; its bootstrap "
             "(`bootMer`) and power loop run fewer replicates, scaled to 1,000. The power design is 40 groups × "
             "10 rows, logit P(y = 1) = −0.5 + 0.5 x + b_g, sd(b) = 0.8. "
             f"Load average (1/5/15 min) before the run {load_before}, after {load_after}, on a 2-core machine "
             "shared with other work: timings are noisy."]
    return "\n".join(text)


if __name__ == "__main__":
    main()
