"""GLMM fit speed: lmmjax.glmer vs lme4::glmer side by side, same machine, same run.

Models (lme4's examples): cbpp ``cbind(incidence, size - incidence) ~ period
+ (1 | herd)`` (binomial), grouseticks ``TICKS ~ YEAR + cHEIGHT + (1 | BROOD)
+ (1 | INDEX) + (1 | LOCATION)`` (Poisson), VerbAgg ``r2 ~ Anger + Gender +
btype + situ + (1 | id) + (1 | item)`` (7,584 Bernoulli rows).

lmmjax: "first" is the first fit in this process (tracing and compiling,
with whatever the persistent compilation cache holds), "warm" the best of
three further fits (model building + optimisation + the standard errors).
lme4: default ``glmerControl()``, best of three ``glmer`` + ``vcov`` calls.
It prints a table; it does not edit RESULTS.md.

Run: ``python benchmarks/glmm_speed.py``
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import numpy as np

import lmmjax as lmm

MODELS = {
    "cbpp": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", "cbpp", "cbpp"),
    "grouseticks": ("TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", "poisson",
                    "grouseticks", "grouseticks"),
    "VerbAgg": ("r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", "binomial", "verbagg", "VerbAgg"),
}


def time_lmmjax(formula, family, dataset):
    df = lmm.datasets.load(dataset)
    t = time.perf_counter()
    fit = lmm.glmer(formula, df, family=family)
    fit.vcov
    first = time.perf_counter() - t
    warm = []
    for _ in range(3):
        t = time.perf_counter()
        fit = lmm.glmer(formula, df, family=family)
        fit.vcov
        warm.append(time.perf_counter() - t)
    return first, min(warm), fit.loglik


def time_lme4(formula, family, rdata):
    if not shutil.which("Rscript"):
        return None, None
    code = f"""suppressMessages(library(lme4)); d <- {rdata}
ts <- sapply(1:3, function(i) system.time({{m <<- glmer({formula}, d, {family}); v <- vcov(m)}})[["elapsed"]])
cat(jsonlite::toJSON(list(warm = min(ts), loglik = as.numeric(logLik(m))), digits = NA))"""
    out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, timeout=1200)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return res["warm"][0], res["loglik"][0]


def main():
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'model':12s} {'lmmjax first':>13s} {'lmmjax warm':>12s} {'lme4 warm':>10s} {'logLik lmmjax':>15s} {'logLik lme4':>15s}")
    for name, (formula, family, dataset, rdata) in MODELS.items():
        first, warm, ll = time_lmmjax(formula, family, dataset)
        r_warm, r_ll = time_lme4(formula, family, rdata)
        print(f"{name:12s} {first:13.2f} {warm:12.3f} {r_warm if r_warm is not None else np.nan:10.3f} "
              f"{ll:15.6f} {r_ll if r_ll is not None else np.nan:15.6f}")


if __name__ == "__main__":
    main()
