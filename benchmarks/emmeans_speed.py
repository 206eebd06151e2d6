"""Marginal means speed: lmmjax's emmeans + Tukey pairs with Satterthwaite df vs R's emmeans.

Model (REML): InstEval ``y ~ service * lectage + (1 | s) + (1 | d) + (1 | dept)``
(73,421 rows, 12 fixed effects, q = 4,114 random effects); means of ``lectage``
by ``service`` (12 means) and their Tukey-adjusted pairwise comparisons
(2 × 15 contrasts), every row with its own Satterthwaite df.

lmmjax runs in a fresh interpreter: "first" includes JIT compilation (the
fit's and the Satterthwaite Hessian/Jacobian program's); "warm" is the same
call again on the same fit with the per-fit cache cleared (compiled code
kept), so the Satterthwaite derivatives are recomputed.

R: ``lmerTest::lmer`` (whose fit computes lmerTest's numerical Hessian and
Jacobian), then ``emmeans(m, "lectage", by = "service", lmer.df =
"satterthwaite")`` and ``pairs()`` with ``emm_options(lmerTest.limit = 1e6)``
(by default emmeans switches to asymptotic df above 3,000 rows). R runs under
a time-out (600 s by default); its time or the time-out is reported.

Run: ``python benchmarks/emmeans_speed.py [timeout_seconds]`` (writes its
section of RESULTS.md).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import markdown_table, run_python, run_r, write_section  # noqa: E402

FORMULA = "y ~ service * lectage + (1 | s) + (1 | d) + (1 | dept)"

PY = f"""
import time, warnings
import lmmjax as lmm
from lmmjax import memo
warnings.simplefilter("ignore")
df = lmm.datasets.load("insteval")
def timed(f):
    t = time.perf_counter(); out = f(); return time.perf_counter() - t, out
fit_first, fit = timed(lambda: lmm.lmer({FORMULA!r}, df))
def means_and_pairs():
    em = fit.emmeans("lectage", by="service")
    return em, em.pairs(adjust="tukey")
em_first, (em, pr) = timed(means_and_pairs)
memo.clear(fit)
em_warm, (em, pr) = timed(means_and_pairs)
em_cached, (em, pr) = timed(means_and_pairs)
memo.clear(fit)
kr_first, emk = timed(lambda: fit.emmeans("lectage", by="service", ddf="kenward-roger"))
RESULT = dict(fit_first=fit_first, em_first=em_first, em_warm=em_warm, em_cached=em_cached, kr_first=kr_first,
              reml_crit=fit.deviance,
              emmean=list(em.table.emmean), se=list(em.table.std_error), df=list(em.table.df),
              pair_est=list(pr.table.estimate), pair_df=list(pr.table.df), pair_p=list(pr.table.p_value))
"""

R = f"""
suppressMessages({{library(lme4); library(lmerTest); library(emmeans)}})
emm_options(lmerTest.limit = 1e6, pbkrtest.limit = 1e6)
d <- lme4::InstEval
d$lectage <- factor(d$lectage, ordered = FALSE)
el <- function(e) system.time(e)[["elapsed"]]
t_fit <- el(m0 <- lme4::lmer({FORMULA}, d, REML = TRUE))
t_lt <- el(m <- lmerTest::lmer({FORMULA}, d, REML = TRUE))
t_em <- el({{em <- emmeans(m, "lectage", by = "service", lmer.df = "satterthwaite")
             s <- as.data.frame(summary(em)); p <- as.data.frame(summary(pairs(em)))}})
cat(jsonlite::toJSON(list(fit = t_fit, lmertest_fit = t_lt, emmeans = t_em, reml_crit = REMLcrit(m),
                          emmean = s$emmean, se = s$SE, df = s$df,
                          pair_est = p$estimate, pair_df = p$df, pair_p = p$p.value),
                     auto_unbox = TRUE, digits = NA), "\\n")
"""


def rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def absdiff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, float) - np.asarray(b, float))))


def main(timeout: int = 600) -> None:
    load_before = os.getloadavg()[0]
    ours = run_python(PY)
    print("lmmjax:", {k: v for k, v in ours.items() if not isinstance(v, list)}, flush=True)
    try:
        ref = run_r(R, timeout=timeout)
        r_text = None
    except subprocess.TimeoutExpired:
        ref, r_text = None, f"timed out after {timeout} s"
    except RuntimeError as exc:
        ref, r_text = None, f"failed: {str(exc)[-200:]}"
    if ref:
        print("R:", {k: v for k, v in ref.items() if not isinstance(v, list)}, flush=True)
        r_fit = f"{ref['fit']:.1f}"
        r_sat = f"{ref['lmertest_fit'] - ref['fit']:.1f}"
        r_em = f"{ref['emmeans']:.1f}"
        r_total = f"{ref['lmertest_fit'] + ref['emmeans']:.1f}"
    else:
        r_fit = r_sat = r_em = "—"
        r_total = r_text or "R not found"
    rows = [[
        "InstEval (73,421 rows; q = 4,114)", f"{ours['fit_first']:.1f}",
        f"{ours['em_first']:.2f} / {ours['em_warm']:.2f} / {ours['em_cached']:.2f}", f"{ours['kr_first']:.1f}",
        r_fit, r_sat, r_em, r_total, f"{ours['peak_mb']:.0f}",
    ]]
    header = ["model (REML)", "lmmjax fit s (first)", "lmmjax emmeans + Tukey pairs s first / warm / derivatives cached",
              "lmmjax emmeans with Kenward-Roger s", "lme4 fit s", "lmerTest derivatives s (lmerTest::lmer − lme4::lmer)",
              "R emmeans + pairs s", "R total s (lmerTest fit + emmeans)", "lmmjax peak MB"]
    table = markdown_table(header, rows)
    agree = ""
    if ref:
        agree = ("Agreement with R in the same run: means max rel. diff "
                 f"{rel(ours['emmean'], ref['emmean']):.1e}, SE {rel(ours['se'], ref['se']):.1e}, "
                 f"df {rel(ours['df'], ref['df']):.1e}; pairs estimates {rel(ours['pair_est'], ref['pair_est']):.1e}, "
                 f"df {rel(ours['pair_df'], ref['pair_df']):.1e}, Tukey p max abs. diff "
                 f"{absdiff(ours['pair_p'], ref['pair_p']):.1e}. R's `lmer` stops at its default tolerances: REML "
                 f"criterion lmmjax − R = {ours['reml_crit'] - ref['reml_crit']:+.1e} (a flat optimum: θ, hence SE and df, "
                 "differ more than the criterion; against tightly fitted R models lmmjax agrees to 1e-6, see "
                 "tests/inference/test_emmeans.py).\n\n")
    print(table)
    print(agree)
    text = ("## Marginal means speed (`benchmarks/emmeans_speed.py`)\n\n"
            f"`fit.emmeans(\"lectage\", by=\"service\")` and `.pairs(adjust=\"tukey\")` on `{FORMULA}`, "
            "Satterthwaite df for every mean and contrast; R: emmeans with `lmer.df = \"satterthwaite\"` and "
            "`lmerTest.limit = 1e6` (its default switches to asymptotic df above 3,000 rows).\n\n"
            + table + "\n\n" + agree +
            "lmmjax first = fresh interpreter including JIT compilation (the Satterthwaite program compiles once per "
            "model structure); warm = again on the same fit with the per-fit cache cleared (the Satterthwaite "
            "derivatives are recomputed: compare with R's derivatives + emmeans); derivatives cached = a third call "
            "(compare with R's emmeans + pairs; most of it is scipy's studentized range). R's Satterthwaite "
            "machinery (numDeriv Hessian and Jacobian) runs inside `lmerTest::lmer`, so the R total is that fit "
            f"plus emmeans. R ran under a {timeout} s time-out. Timings on a shared 2-core machine are noisy "
            f"(1-minute load average {load_before:.1f} before the run, {os.getloadavg()[0]:.1f} after).")
    write_section("emmeans_speed", text)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 600)
