"""Power-simulation speed: lmm.power / lmm.power_curve against the lme4 refit loop.

Cases
-----
1. Sleepstudy design, ``Reaction ~ Days + (Days | Subject)``, truth = the
   REML fit with the Days effect set to 5; likelihood-ratio test (ML fits
   of H1 and H0 to each simulated response): 1,000 simulations = 2,000 fits.
   lmmjax: first call in a fresh interpreter (includes JIT compilation) and
   warm (best of two further calls with other seeds). lme4: the
   hand-written loop of ``tests/reference/make_power_reference.R``
   (simulate, ``lmer`` H1 and H0 with ``REML = FALSE``, LRT).
2. Power curve on a subjects × items crossed design (20 items, a
   counterbalanced within condition ``cond`` = ±0.5),
   ``y ~ cond + (1 + cond | Subject) + (1 | Item)``, 10 to 50 subjects,
   1,000 simulations per size, LRT — one fresh interpreter, compilation
   included (all sizes share the largest design's compiled shapes). lme4 runs the same loop with fewer simulations per size
   (``--r-curve-nsim``, default 100) and its time is scaled to 1,000.

Run: ``python benchmarks/power_speed.py [--r-curve-nsim 100] [--no-r]``
(writes its section of RESULTS.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import markdown_table, run_python, run_r, write_section  # noqa: E402

NSIM = 1000
SIZES = [10, 20, 30, 40, 50]
N_ITEMS = 20
CURVE_TRUTH = dict(fixef={"Intercept": 0.0, "cond": 0.25},
                   varcorr={"Subject": {"sd": [0.5, 0.3], "cor": 0.2}, "Item": 0.4}, sigma=1.0)
CURVE_FORMULA = "y ~ cond + (1 + cond | Subject) + (1 | Item)"

PY_SLEEP = f"""
import time, warnings
import lmmjax as lmm
warnings.simplefilter("ignore")
fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
def run(seed):
    t = time.perf_counter()
    res = lmm.power(fit, "Days", "lrt", fixef={{"Days": 5}}, nsim={NSIM}, seed=seed, progress=False)
    return time.perf_counter() - t, res
first, res = run(1)
warm = []
for seed in (2, 3):
    w, r = run(seed)
    warm.append(w)
from lmmjax.powersim import engine
RESULT = dict(first=first, warm=min(warm), power=res.power, n_failed=res.n_failed,
              n_not_converged=res.n_not_converged, n_singular=res.n_singular,
              engine=engine.ENGINE)
"""

PY_CURVE = f"""
import time, warnings
import lmmjax as lmm
from lmmjax.powersim import crossed
warnings.simplefilter("ignore")
d = crossed(10, {N_ITEMS}, within={{"cond": [-0.5, 0.5]}})
t = time.perf_counter()
curve = lmm.power_curve(d, along="Subject", sizes={SIZES}, test="cond", method="lrt",
                        formula={CURVE_FORMULA!r}, nsim={NSIM}, seed=1, progress=False, **{CURVE_TRUTH!r})
total = time.perf_counter() - t
tab = curve.table
RESULT = dict(total=total, sizes=tab["size"].tolist(), power=tab["power"].tolist(),
              seconds=tab["seconds"].tolist(), smallest=curve.smallest(0.8),
              n_failed=int(tab["n_failed"].sum()))
"""

R_SLEEP = """
suppressMessages(library(lme4))
NSIM <- %d
fit0 <- lmer(Reaction ~ Days + (Days | Subject), data = sleepstudy)
beta0 <- unname(fixef(fit0)[1]); sigma0 <- sigma(fit0); th <- getME(fit0, "theta")
Lchol <- sigma0 * matrix(c(th[1], th[2], 0, th[3]), 2, 2)
d <- sleepstudy[, c("Days", "Subject")]; subj <- as.integer(d$Subject); n <- nrow(d)
set.seed(1)
t <- system.time({
  p <- numeric(NSIM)
  for (i in seq_len(NSIM)) {
    b <- t(Lchol %%*%% matrix(rnorm(36), 2, 18))
    d$Reaction <- beta0 + 5 * d$Days + b[subj, 1] + b[subj, 2] * d$Days + rnorm(n, 0, sigma0)
    f1 <- suppressWarnings(suppressMessages(lmer(Reaction ~ Days + (Days | Subject), d, REML = FALSE)))
    f0 <- suppressWarnings(suppressMessages(lmer(Reaction ~ 1 + (Days | Subject), d, REML = FALSE)))
    p[i] <- pchisq(max(0, deviance(f0) - deviance(f1)), 1, lower.tail = FALSE)
  }
})[["elapsed"]]
cat(jsonlite::toJSON(list(time = t, power = mean(p < 0.05), nsim = NSIM), auto_unbox = TRUE), "\\n")
"""

R_CURVE = """
suppressMessages(library(lme4))
NSIM <- %d; SIZES <- c(%s); NI <- %d
set.seed(1)
times <- numeric(0); pw <- numeric(0)
for (ns in SIZES) {
  d <- expand.grid(Item = factor(seq_len(NI)), Subject = factor(seq_len(ns)))
  d$cond <- ifelse((as.integer(d$Subject) + as.integer(d$Item)) %%%% 2 == 0, -0.5, 0.5)
  S <- matrix(c(0.25, 0.2 * 0.5 * 0.3, 0.2 * 0.5 * 0.3, 0.09), 2, 2); L <- t(chol(S))
  s <- as.integer(d$Subject); it <- as.integer(d$Item); n <- nrow(d)
  tt <- system.time({
    p <- numeric(NSIM)
    for (i in seq_len(NSIM)) {
      b <- t(L %%*%% matrix(rnorm(2 * ns), 2, ns)); c <- rnorm(NI, 0, 0.4)
      d$y <- 0.25 * d$cond + b[s, 1] + b[s, 2] * d$cond + c[it] + rnorm(n)
      f1 <- suppressWarnings(suppressMessages(lmer(y ~ cond + (1 + cond | Subject) + (1 | Item), d, REML = FALSE)))
      f0 <- suppressWarnings(suppressMessages(lmer(y ~ 1 + (1 + cond | Subject) + (1 | Item), d, REML = FALSE)))
      p[i] <- pchisq(max(0, deviance(f0) - deviance(f1)), 1, lower.tail = FALSE)
    }
  })[["elapsed"]]
  times <- c(times, tt); pw <- c(pw, mean(p < 0.05))
}
cat(jsonlite::toJSON(list(time = sum(times), times = times, power = pw, nsim = NSIM), auto_unbox = TRUE), "\\n")
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--r-curve-nsim", type=int, default=100)
    ap.add_argument("--no-r", action="store_true")
    args = ap.parse_args()

    sleep = run_python(PY_SLEEP, timeout=3600)
    print("sleepstudy lmmjax:", sleep, flush=True)
    r_sleep = None if args.no_r else run_r(R_SLEEP % NSIM, timeout=3600)
    print("sleepstudy lme4:", r_sleep, flush=True)
    curve = run_python(PY_CURVE, timeout=3600)
    print("curve lmmjax:", curve, flush=True)
    r_curve = None if args.no_r else run_r(R_CURVE % (args.r_curve_nsim, ", ".join(map(str, SIZES)), N_ITEMS),
                                            timeout=7200)
    print("curve lme4:", r_curve, flush=True)

    rows = []
    r_time = f"{r_sleep['time']:.1f}" if r_sleep else "R absent"
    speed = f"{r_sleep['time'] / sleep['warm']:.0f}×" if r_sleep else ""
    rows.append([f"sleepstudy, LRT, {NSIM:,} simulations (2,000 fits)", f"{sleep['first']:.2f}",
                 f"{sleep['warm']:.2f}", r_time, speed,
                 f"{sleep['power']:.3f}" + (f" / {r_sleep['power']:.3f}" if r_sleep else ""), "≤ 3 s warm"])
    if r_curve:
        r_scaled = r_curve["time"] * NSIM / r_curve["nsim"]
        r_txt = f"{r_scaled:.0f} (measured {r_curve['time']:.0f} s for {r_curve['nsim']} per size)"
        speed_c = f"{r_scaled / curve['total']:.0f}×"
        r_pw = " / " + ", ".join(f"{p:.2f}" for p in r_curve["power"])
    else:
        r_txt, speed_c, r_pw = "R absent", "", ""
    rows.append([f"crossed power curve: {len(SIZES)} sizes ({SIZES[0]}–{SIZES[-1]} subjects × {N_ITEMS} items), "
                 f"LRT, {NSIM:,} simulations each", f"{curve['total']:.1f}", "", r_txt, speed_c,
                 ", ".join(f"{p:.2f}" for p in curve["power"]) + r_pw, "< 60 s incl. compilation"])
    header = ["case", "lmmjax first call s", "lmmjax warm s", "lme4 loop s", "speed-up", "power lmmjax / lme4",
              "target"]
    table = markdown_table(header, rows)
    per_size = ", ".join(f"{s}: {t:.1f} s" for s, t in zip(curve["sizes"], curve["seconds"]))
    notes = (
        f"Fitting engine: `{sleep['engine']}`. First call = fresh interpreter, JIT compilation included; "
        "warm = best of two further runs (other seeds). The power curve is one call in a fresh interpreter; "
        "every size runs on the largest design's compiled shapes (rows of the other subjects deleted from the "
        "cross-products), so the H1 and H0 fits compile once and each size costs what 50 subjects cost; "
        f"per size: {per_size}; smallest size with power ≥ 0.8: "
        f"{curve['smallest']}. lme4: default lmerControl, the hand-written simulate-refit-LRT loop "
        "(as `tests/reference/make_power_reference.R`); for the curve it ran "
        f"{r_curve['nsim'] if r_curve else '-'} simulations per size, scaled to {NSIM:,}. "
        f"Failed simulations (lmmjax): sleepstudy {sleep['n_failed']}, curve {curve['n_failed']}; "
        f"sleepstudy fits not converged {sleep['n_not_converged']}, singular {sleep['n_singular']}. "
        "Power estimates differ within Monte Carlo error (different random numbers)."
    )
    print(table)
    write_section("power_speed", "## Power simulation speed (`benchmarks/power_speed.py`)\n\n" + table + "\n\n" + notes)


if __name__ == "__main__":
    main()
