"""Parametric bootstrap and batched refits: lmmjax vs lme4's bootMer, side by side.

Cases
-----
* sleepstudy ``Reaction ~ Days + (Days | Subject)`` (REML), 10,000 replicates;
* Penicillin ``diameter ~ 1 + (1 | plate) + (1 | sample)`` (crossed, REML), 2,000;
* InstEval ``y ~ 1 + service + (1|s) + (1|d) + (1|dept)`` (ML), 200 replicates
  (``--insteval-n`` to change; about a second per replicate here);
* ``refit_many`` on 1,000 responses of the sleepstudy design.

lmmjax runs each case in a fresh interpreter: "first call" includes JIT
compilation, "warm" is the best of two further calls, compile ≈ first − warm.
lme4 (bootMer, use.u = FALSE, default lmerControl; refits with ``refit``) runs
via Rscript when R is installed, with fewer replicates so that each R run
stays under ~2 minutes; its time is scaled per replicate (stated in the table).

Run: ``python benchmarks/bootstrap_speed.py [--insteval-n N] [--skip-insteval]``
(writes its section of benchmarks/RESULTS.md).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import markdown_table, run_python, run_r, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

SLEEP = "Reaction ~ Days + (Days | Subject)"
PENICILLIN = "diameter ~ 1 + (1 | plate) + (1 | sample)"
INSTEVAL = "y ~ 1 + service + (1|s) + (1|d) + (1|dept)"


def boot_code(dataset: str, formula: str, reml: bool, n: int, repeats: int = 2) -> str:
    return f"""
import time, warnings
import numpy as np, jax, lmmjax as lmm
warnings.simplefilter("ignore")
fit = lmm.lmer({formula!r}, lmm.datasets.load({dataset!r}), reml={reml})
t = time.perf_counter(); b = fit.bootstrap({n}, seed=1, progress=False); first = time.perf_counter() - t
warm = []
for _ in range({repeats}):
    t = time.perf_counter(); b = fit.bootstrap({n}, seed=1, progress=False); warm.append(time.perf_counter() - t)
ci = b.ci()
RESULT = dict(first=first, warm=min(warm), n={n}, converged=b.n_converged, singular=b.n_singular,
              iter_mean=float(np.mean(b.n_iter)), iter_max=int(np.max(b.n_iter)),
              devices=len(jax.devices()), ci=dict(lower=ci["lower"].to_dict(), upper=ci["upper"].to_dict()))
"""


def refit_code(n: int) -> str:
    return f"""
import time, warnings
import numpy as np, lmmjax as lmm
warnings.simplefilter("ignore")
fit = lmm.lmer({SLEEP!r}, lmm.datasets.load("sleepstudy"))
Y = fit.simulate({n}, seed=3).T
t = time.perf_counter(); tab = fit.refit_many(Y, progress=False); first = time.perf_counter() - t
warm = []
for _ in range(2):
    t = time.perf_counter(); tab = fit.refit_many(Y, progress=False); warm.append(time.perf_counter() - t)
RESULT = dict(first=first, warm=min(warm), n={n}, converged=int(tab.converged.sum()))
"""


def r_boot(load: str, formula: str, reml: bool, nsim: int) -> str:
    return f"""
suppressMessages(library(lme4))
{load}
m <- lmer({formula}, d, REML = {str(reml).upper()})
FUN <- function(x) c(fixef(x), sigma = sigma(x), theta = getME(x, "theta"))
t <- system.time(b <- suppressWarnings(suppressMessages(
  bootMer(m, FUN, nsim = {nsim}, seed = 1, use.u = FALSE, type = "parametric"))))[["elapsed"]]
cat(jsonlite::toJSON(list(time = t, nsim = {nsim}), auto_unbox = TRUE, digits = NA), "\\n")
"""


def r_refit(nsim: int) -> str:
    return f"""
suppressMessages(library(lme4))
m <- lmer({SLEEP}, sleepstudy)
Y <- simulate(m, {nsim}, seed = 3)
t <- system.time(for (i in seq_len({nsim})) suppressWarnings(suppressMessages(refit(m, newresp = Y[[i]]))))[["elapsed"]]
cat(jsonlite::toJSON(list(time = t, nsim = {nsim}), auto_unbox = TRUE, digits = NA), "\\n")
"""


def fmt(x, digits=2):
    return f"{x:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--insteval-n", type=int, default=200)
    ap.add_argument("--skip-insteval", action="store_true")
    args = ap.parse_args()
    cases = [
        ("sleepstudy (REML), bootstrap", "sleepstudy", SLEEP, True, 10_000, 500,
         "d <- sleepstudy"),
        ("Penicillin, crossed (REML), bootstrap", "penicillin", PENICILLIN, True, 2_000, 300,
         "data(Penicillin, package = 'lme4'); d <- Penicillin"),
    ]
    if not args.skip_insteval:
        cases.append(("InstEval (ML), bootstrap", "insteval", INSTEVAL, False, args.insteval_n, 2,
                      "data(InstEval, package = 'lme4'); d <- InstEval"))
    rows, details = [], {}
    for label, ds, formula, reml, n, r_n, r_load in cases:
        ours = run_python(boot_code(ds, formula, reml, n, repeats=1 if ds == "insteval" else 2), timeout=3600)
        print(label, "lmmjax:", json.dumps({k: v for k, v in ours.items() if k != "ci"}), flush=True)
        ref = run_r(r_boot(r_load, formula, reml, r_n), timeout=900)
        print(label, "lme4:", ref, flush=True)
        details[label] = ours
        per_ours = ours["warm"] / n
        row = [label, f"{n:,}", fmt(ours["first"]), fmt(ours["warm"]), fmt(ours["first"] - ours["warm"]),
               f"{1e3 * per_ours:.3f}", f"{ours['converged']:,} / {ours['singular']:,}",
               f"{ours['iter_mean']:.1f} / {ours['iter_max']}"]
        if ref:
            per_r = ref["time"] / ref["nsim"]
            row += [f"{1e3 * per_r:.1f} (nsim={ref['nsim']})", f"{per_r / per_ours:.0f}×",
                    f"{per_r * n:.0f}"]
        else:
            row += ["R absent", "", ""]
        rows.append(row)
    ours = run_python(refit_code(1000))
    print("refit_many lmmjax:", ours, flush=True)
    ref = run_r(r_refit(200), timeout=900)
    print("refit_many lme4:", ref, flush=True)
    per_ours = ours["warm"] / 1000
    row = ["sleepstudy design, refit_many (REML)", "1,000", fmt(ours["first"]), fmt(ours["warm"]),
           fmt(ours["first"] - ours["warm"]), f"{1e3 * per_ours:.3f}", f"{ours['converged']:,} / –", "–"]
    if ref:
        per_r = ref["time"] / ref["nsim"]
        row += [f"{1e3 * per_r:.1f} (refit × {ref['nsim']})", f"{per_r / per_ours:.0f}×", f"{per_r * 1000:.0f}"]
    else:
        row += ["R absent", "", ""]
    rows.append(row)
    header = ["case", "replicates", "lmmjax first call s", "lmmjax warm s", "compile ≈ s",
              "lmmjax ms / replicate (warm)", "converged / singular", "iterations mean / max",
              "lme4 ms / replicate", "speed-up (warm)", "lme4 s for the same n (scaled)"]
    table = markdown_table(header, rows)
    print(table)
    # sleepstudy intervals next to bootMer's (fixture: 2,000 replicates)
    ci_md = ""
    fixture = ROOT / "tests" / "reference" / "fixtures" / "bootstrap" / "sleep_bootmer.json"
    sleep = details.get("sleepstudy (REML), bootstrap")
    if fixture.exists() and sleep:
        ref = json.loads(fixture.read_text())
        pct = ref["percentile_95_quantile7"]
        names = {"(Intercept)": "Intercept", "Days": "Days", "sigma": "sigma",
                 "sd_intercept": "sd(Intercept|Subject)", "sd_days": "sd(Days|Subject)",
                 "cor": "cor(Intercept,Days|Subject)"}
        ci_rows = []
        for r_name, lo, hi in zip(pct["names"], pct["lower"], pct["upper"]):
            ours_name = names[r_name]
            ci_rows.append([ours_name.replace("|", "\\|"), f"{sleep['ci']['lower'][ours_name]:.4g}",
                            f"{sleep['ci']['upper'][ours_name]:.4g}",
                            f"{lo:.4g}", f"{hi:.4g}"])
        ci_md = ("\n\nsleepstudy 95% percentile intervals: lmmjax (10,000 replicates) and lme4 bootMer "
                 f"(the test fixture, 2,000 replicates, {ref['elapsed_s']:.1f} s there):\n\n"
                 + markdown_table(["parameter", "lmmjax lower", "lmmjax upper", "bootMer lower", "bootMer upper"],
                                  ci_rows)
                 + "\n\n(bootMer's correlation is θ₂/√(θ₂²+θ₃²); the tests compare the distributions with a "
                   "Monte Carlo tolerance, see tests/simulate/test_bootstrap.py.)")
    write_section("bootstrap_speed", "## Parametric bootstrap and batched refits (`benchmarks/bootstrap_speed.py`)\n\n"
                  + table + "\n\n"
                  "lmmjax: each case in a fresh process; first call = JIT compilation + run, warm = best of two "
                  "further calls (one for InstEval), compile ≈ the difference. Replicates are simulated on the "
                  "device and refitted with the batched trust-region Newton method, warm-started at θ̂, "
                  f"sharded over {sleep['devices'] if sleep else 1} device(s). "
                  "lme4: `bootMer(use.u = FALSE)` with default lmerControl (and a loop of `refit(m, newresp)` "
                  "for refit_many) on fewer replicates, timed and scaled per replicate (nsim given in the "
                  "table). The 2-core machine is shared with other jobs: timings are noisy." + ci_md)


if __name__ == "__main__":
    main()
